"""The counts the console shows often, kept so that a page does not count a million rows each time.

The recipients an issue would have on a list are counted again in the background once the last
count is older than FRESH_FOR (the page shows the kept count meanwhile, saying when it was
made). A finished campaign's deliveries no longer change, so their count is kept until its
status does. Subscribers per list are not kept here: the store reads them from the counts the
database keeps (audience_joins), a few rows whatever the lists' size, so the dashboard's table
always agrees with the charts beside it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mailer.console.accounts import Clock
from mailer.store.campaigns import Campaign, CampaignStatus, DeliveryState
from mailer.store.database import Store

FRESH_FOR = dt.timedelta(seconds=60)
FINISHED = (CampaignStatus.DONE, CampaignStatus.CANCELLED, CampaignStatus.MISSED)
Value = TypeVar("Value")


@dataclass(frozen=True)
class Counted(Generic[Value]):
    value: Value
    at: dt.datetime


@dataclass
class Kept(Generic[Value]):
    """A count made now the first time, then at most FRESH_FOR old but for the count under way."""

    count: Callable[[], Value]
    clock: Clock
    known: Counted[Value] | None = None
    counting: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> Counted[Value]:
        known = self.known
        if known is None:
            with self.counting:
                return self.known or self._count()
        if self.clock() - known.at > FRESH_FOR and self.counting.acquire(blocking=False):
            threading.Thread(target=self._recount, name="console counts", daemon=True).start()
        return known

    def _recount(self) -> None:
        try:
            self._count()
        finally:
            self.counting.release()

    def _count(self) -> Counted[Value]:
        at = self.clock()
        self.known = Counted(self.count(), at)
        return self.known


@dataclass
class Counts:
    store: Store
    clock: Clock
    _recipients: dict[tuple[str, str], Kept[int]] = field(default_factory=dict)
    _campaigns: dict[tuple[int, CampaignStatus, dt.datetime | None], dict[DeliveryState, int]] = (
        field(default_factory=dict)
    )

    def recipients(
        self, list_name: str, issue: str, languages: Callable[[], Sequence[str] | None]
    ) -> Counted[int]:
        """Whom of the list an issue would go to now (weekly-digest readers aside; with
        `languages`, only those reading one of them): the store's count_readers, kept per list
        and issue (finding the languages reads the whole folder)."""
        kept = self._recipients.setdefault(
            (list_name, issue),
            Kept(lambda: self.store.subscribers.count_readers(list_name, languages()), self.clock),
        )
        return kept.get()

    def campaign(self, campaign: Campaign) -> dict[DeliveryState, int]:
        """The campaign's deliveries by state: counted each time until it has finished."""
        if campaign.status not in FINISHED:
            return self.store.campaigns.counts(campaign.id)
        kept = (campaign.id, campaign.status, campaign.finished_at)
        if kept not in self._campaigns:
            self._campaigns[kept] = self.store.campaigns.counts(campaign.id)
        return self._campaigns[kept]
