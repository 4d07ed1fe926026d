"""The counts the dashboard shows, kept so that a page does not count a million rows each time.

Subscribers per list are counted again in the background once the last count is older than
LIST_COUNTS_FOR (the page shows the stale count meanwhile, saying when it was made); a finished
campaign's deliveries no longer change, so their count is kept until its status does.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

from mailer.console.accounts import Clock
from mailer.store.campaigns import Campaign, CampaignStatus, DeliveryState
from mailer.store.database import Store
from mailer.store.lists import ListSummary

LIST_COUNTS_FOR = dt.timedelta(seconds=60)
FINISHED = (CampaignStatus.DONE, CampaignStatus.CANCELLED, CampaignStatus.MISSED)


@dataclass(frozen=True)
class ListCounts:
    lists: list[ListSummary]
    counted_at: dt.datetime


@dataclass
class Counts:
    store: Store
    clock: Clock
    _lists: ListCounts | None = None
    _counting: threading.Lock = field(default_factory=threading.Lock)
    _campaigns: dict[tuple[int, CampaignStatus, dt.datetime | None], dict[DeliveryState, int]] = (
        field(default_factory=dict)
    )

    def lists(self) -> ListCounts:
        """Subscribers per list: counted now the first time, then at most LIST_COUNTS_FOR old
        but for the count under way."""
        known = self._lists
        if known is None:
            with self._counting:
                return self._lists or self._count_lists()
        if self.clock() - known.counted_at > LIST_COUNTS_FOR and self._counting.acquire(False):
            threading.Thread(target=self._recount, name="list counts", daemon=True).start()
        return known

    def _recount(self) -> None:
        try:
            self._count_lists()
        finally:
            self._counting.release()

    def _count_lists(self) -> ListCounts:
        counted_at = self.clock()
        self._lists = ListCounts(self.store.lists.summaries(), counted_at)
        return self._lists

    def campaign(self, campaign: Campaign) -> dict[DeliveryState, int]:
        """The campaign's deliveries by state: counted each time until it has finished."""
        if campaign.status not in FINISHED:
            return self.store.campaigns.counts(campaign.id)
        kept = (campaign.id, campaign.status, campaign.finished_at)
        if kept not in self._campaigns:
            self._campaigns[kept] = self.store.campaigns.counts(campaign.id)
        return self._campaigns[kept]
