"""Asking the service what became of uncertain deliveries before anything is decided about them.

A batch whose answer never came may have been taken whole, in part or not at all. Where the
provider can be asked (a Reconciler: Mailgun's events, Postmark's message search, by the label the
batch went under), the engine asks at the start of a run (what earlier runs left uncertain) and
at its end (what this run left): a recipient the service took is sent; one it does not know once
its record is complete (Reconciler.settle after the hand-over) never reached it and is queued
again, while attempts are left. Every other one stays uncertain, and so does everyone when the
service cannot be asked: nothing is sent again on a guess.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from mailer.core.clock import Clock
from mailer.delivery.base import BackendError, Reconciler
from mailer.store.campaigns import Campaigns, Uncertain


@dataclass
class Reconciled:
    """What asking the service settled."""

    service: str = ""
    """Who was asked (the provider's name)."""
    asked: int = 0
    """Uncertain deliveries the service answered about."""
    taken: int = 0
    """Of those, the ones it took: now sent."""
    again: int = 0
    """The ones it never had: queued to be sent again."""
    unasked: int = 0
    """Uncertain deliveries the service could not be asked about: they stay uncertain."""
    unanswered: str = ""
    """Why the service could not be asked, when it could not."""

    @property
    def untold(self) -> int:
        """Those it answered about but cannot tell of yet: they stay uncertain."""
        return self.asked - self.taken - self.again

    def __iadd__(self, other: Reconciled) -> Reconciled:
        self.service = other.service or self.service
        self.asked += other.asked
        self.taken += other.taken
        self.again += other.again
        self.unasked += other.unasked
        self.unanswered = other.unanswered or self.unanswered
        return self


@dataclass(frozen=True)
class Reconciliation:
    """Asks `reconciler` about a campaign's uncertain deliveries and records what it says."""

    reconciler: Reconciler
    clock: Clock
    """Now, for whether a batch's record at the service is complete (Reconciler.settle)."""
    max_attempts: int
    """A delivery that had this many attempts is not queued again, whatever the service says."""

    def __call__(self, campaigns: Campaigns, campaign_id: int) -> Reconciled:
        """Ask batch by batch; once the service could not be asked, the rest are not asked
        either (a service that cannot be reached would hold the run one time-out per batch)."""
        service = self.reconciler
        found = Reconciled(service.name)
        labelled = [u for u in campaigns.uncertain(campaign_id) if service.sent_through(u.batch)]
        try:
            for _, batch in itertools.groupby(labelled, key=lambda u: u.batch):
                people = list(batch)
                if found.unanswered:
                    found.unasked += len(people)
                else:
                    found += self._batch(campaigns, campaign_id, people)
        finally:
            service.close()
        return found

    def _batch(self, campaigns: Campaigns, campaign_id: int, people: list[Uncertain]) -> Reconciled:
        service = self.reconciler
        try:
            taken = service.accepted(people[0].batch, [person.email for person in people])
        except BackendError as error:
            return Reconciled(service.name, unasked=len(people), unanswered=str(error))
        complete = self.clock() - max(p.recorded_at for p in people) >= service.settle
        took = [p.subscriber_id for p in people if p.email in taken]
        never = [
            p.subscriber_id
            for p in people
            if complete and p.email not in taken and p.attempts < self.max_attempts
        ]
        minutes = service.settle.total_seconds() / 60
        campaigns.settle_uncertain(
            campaign_id,
            took,
            never,
            f"{service.name} never had it (asked more than {minutes:g} minutes after)",
        )
        return Reconciled(service.name, len(people), len(took), len(never))
