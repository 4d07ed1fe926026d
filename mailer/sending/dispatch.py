"""The send engine: claim a batch, hand it to the backend, record each result, again.

It knows the campaign store and the backend interface, never a concrete backend or SQL. Several
worker threads (the configured concurrency) each hold their own backend (an SMTP connection, an
HTTP session) and share one rate limit. Every batch is recorded as soon as the backend answers,
so a crash can repeat at most the batches that were in flight, and never loses anybody.

A message handed over whole with no answer (UNCERTAIN) may have arrived: it counts as an attempt
and stays out of the queue until somebody asks for it again (`mailer send --resend-uncertain`),
unless the service, asked at the start and the end of the run (reconciling.py), says what it was.

Asked to stop (SIGTERM, Ctrl-C: core/stopping.py), the workers end after the batches in hand, each
recorded, and the campaign stays running for the next run to continue: nothing is in flight.

Temporary failures go back in the queue with exponential backoff and jitter (at least what
Retry-After asked), up to max_attempts. A backend that refuses everything, or refuses the
credentials, pauses the campaign with the reason instead of burning through the list.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from mailer.core.errors import DatabaseUnavailable
from mailer.core.lifecycle import Status
from mailer.delivery.base import Backend, BackendError, Outcome, Outgoing, Result
from mailer.render.message import HeaderInjection, MessageTemplate, header_safe
from mailer.sending.journal import Journal
from mailer.sending.patience import patiently
from mailer.sending.reconciling import Reconciled, Reconciliation
from mailer.store.campaigns import (
    Campaign,
    Campaigns,
    CampaignStatus,
    Claimed,
    DeliveryRecord,
    DeliveryState,
)
from mailer.store.schema import utcnow

P = ParamSpec("P")
T = TypeVar("T")

PAUSE_AFTER_MESSAGES = 50
"""A run of this many messages with none accepted (and at least three batches) pauses."""
PAUSE_AFTER_BATCHES = 3
FIRST_BATCH = 10
"""A worker starts with batches this small and doubles them while messages are accepted, so
that a service refusing everything is noticed before the list is used up."""


@dataclass(frozen=True)
class Pace:
    rate: float = 0.0
    """Messages per second at most, over all workers; 0 is unlimited."""
    concurrency: int = 4
    max_attempts: int = 5
    retry_backoff: float = 2.0
    lease: dt.timedelta = dt.timedelta(minutes=5)
    batch_size: int = 0
    """Recipients claimed at a time; 0 takes the backend's own batch size."""
    database_patience: float = 60.0
    """Seconds to wait for a database that went away before pausing (see patience.py)."""


@dataclass
class Tally:
    """What this run did so far; shared by the workers."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    bounced: int = 0
    uncertain: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.uncertain


@dataclass(frozen=True)
class RunReport:
    campaign: Campaign
    tally: Tally
    elapsed: float
    counts: dict[DeliveryState, int]
    reconciled: Reconciled = field(default_factory=Reconciled)
    """What asking the service settled of the uncertain deliveries."""
    stopped: bool = False
    """The process was asked to stop during the run (whatever is left: left_for_later), so
    nothing more is to be started after it."""

    @property
    def left_for_later(self) -> bool:
        """Stopped as asked before the campaign's end: the rest waits for the next run."""
        return self.stopped and self.campaign.status == CampaignStatus.RUNNING

    @property
    def rate(self) -> float:
        return self.tally.sent / self.elapsed if self.elapsed > 0 else 0.0


class RateLimit:
    """A token bucket shared by the workers: `take(n)` waits until n messages may go."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.lock = threading.Lock()
        self.next_free = clock()

    def take(self, count: int) -> None:
        """Wait until `count` more messages may go: the last of them at its own slot."""
        if self.rate <= 0 or count <= 0:
            return
        with self.lock:
            now = self.clock()
            start = max(now, self.next_free)
            self.next_free = start + count / self.rate
        wait = start + (count - 1) / self.rate - now
        if wait > 0:
            time.sleep(wait)

    def batch_limit(self, size: int) -> int:
        """A batch size that keeps a burst within a tenth of a second of the rate."""
        return size if self.rate <= 0 else max(1, min(size, int(self.rate / 10)))


class Paused(Exception):
    """Stop every worker and pause the campaign, saying why."""


class Dispatcher:
    def __init__(
        self,
        campaigns: Campaigns,
        template: MessageTemplate,
        make_backend: Callable[[], Backend],
        outgoing: Callable[[int, str, str, str, str], Outgoing],
        pace: Pace,
        worker: str,
        journal: Journal,
        clock: Callable[[], dt.datetime] = utcnow,
        reconciliation: Reconciliation | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.campaigns = campaigns
        self.journal = journal
        self.reconciliation = reconciliation
        """Asks the service about uncertain deliveries, where it can be asked."""
        self.clock = clock
        """This machine's clock: when a retry falls due. Leases go by the database's."""
        self.template = template
        self.make_backend = make_backend
        self.outgoing = outgoing
        """A claimed subscriber's message (id, link secret, email, name, Message-ID): their
        links and envelope sender (Newsletter.outgoing)."""
        self.pace = pace
        self.worker = worker
        self.limit = RateLimit(pace.rate)
        self.tally = Tally()
        self.stop = threading.Event()
        """Set to end the workers: a pause, or the process asked to stop."""
        self.stopping = stopping or threading.Event()
        """Set when the process is asked to stop (see core/stopping.py)."""
        self.pause_reason = ""
        self.database_gone = False
        """The pause is the database's: it may need room made to be written down."""
        self.failing_messages = 0
        self.failing_batches = 0
        self.unreachable = 0
        """Failures in a row of the service to take anything at all (see _unreachable)."""
        self.unreachable_reason = ""
        self.failure_seen_at = 0.0
        """time.monotonic() when the last counted failure of the service was seen."""
        self.service_back_at = 0.0
        """time.monotonic() before which no worker hands anything over: the service failed or
        asked for a pause (Retry-After)."""
        self.workers = [f"{worker}/{n}" for n in range(pace.concurrency)]

    def run(
        self, campaign: Campaign, progress: Callable[[Tally], None] = lambda _: None
    ) -> RunReport:
        """Send what remains of `campaign`; returns when it is done, paused or cancelled."""
        with self.campaigns.presence(self.worker) as still_here:
            return self._run(campaign, progress, still_here)

    def _db(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`call` on the store, waiting out a database that went away (see patience.py)."""
        return patiently(self.pace.database_patience, call, *args, **kwargs)

    def _run(
        self,
        campaign: Campaign,
        progress: Callable[[Tally], None],
        still_here: Callable[[], None],
    ) -> RunReport:
        """Ask about what earlier runs left uncertain, send, ask about what this run left; again
        while asking queued some for sending (attempts bound that)."""
        started = time.monotonic()
        reconciled = self._reconcile(campaign)
        while True:
            self._send(campaign, progress, still_here)
            if self.pause_reason or self.stopping.is_set():
                break
            asked = self._reconcile(campaign)
            reconciled += asked
            if not asked.again:
                break
        if self.pause_reason:
            if self.database_gone:
                self.campaigns.make_room()
            self._db(
                self.campaigns.set_status, campaign.id, CampaignStatus.PAUSED, self.pause_reason
            )
        elif self._status(campaign) == CampaignStatus.RUNNING and not self._db(
            self.campaigns.unfinished, campaign.id
        ):
            self._db(self.campaigns.set_status, campaign.id, CampaignStatus.DONE)
        final = self._db(self.campaigns.get, campaign.id) or campaign
        counts = self._db(self.campaigns.counts, final.id)
        elapsed = time.monotonic() - started
        return RunReport(final, self.tally, elapsed, counts, reconciled, self.stopping.is_set())

    def _reconcile(self, campaign: Campaign) -> Reconciled:
        """Ask the service about the campaign's uncertain deliveries, where it can be asked."""
        if self.reconciliation is None:
            return Reconciled()
        try:
            return self._db(self.reconciliation, self.campaigns, campaign.id)
        except DatabaseUnavailable as error:
            self.database_gone = True
            self._pause(str(error))
            return Reconciled()

    def _send(
        self,
        campaign: Campaign,
        progress: Callable[[Tally], None],
        still_here: Callable[[], None],
    ) -> None:
        """Every worker, until nothing is left to claim or the campaign stops."""
        threads = [
            threading.Thread(target=self._work, args=(campaign, name), daemon=True)
            for name in self.workers
        ]
        for thread in threads:
            thread.start()
        renewed = time.monotonic()
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.2)
            if self.stopping.is_set():
                self.stop.set()  # each worker ends once its batch in hand is recorded
            progress(self.tally)
            if time.monotonic() - renewed > min(self.pace.lease.total_seconds() / 3, 5.0):
                still_here()  # a restarted database forgot who is alive: say so again
                # Batches still being handed over keep their lease: nobody takes them over.
                try:
                    self._db(
                        self.campaigns.renew_leases, campaign.id, self.workers, self.pace.lease
                    )
                except DatabaseUnavailable as error:
                    self.database_gone = True
                    self._pause(str(error))
                renewed = time.monotonic()
        progress(self.tally)

    def _status(self, campaign: Campaign) -> CampaignStatus:
        current = self._db(self.campaigns.get, campaign.id)
        return current.status if current else CampaignStatus.CANCELLED

    # A worker thread ---------------------------------------------------------------------------

    def _work(self, campaign: Campaign, worker: str) -> None:
        backend = self.make_backend()
        largest = self.limit.batch_limit(self.pace.batch_size or backend.batch_size)
        size = min(FIRST_BATCH, largest)
        try:
            backend.open()  # closed in `finally`, however the worker ends
            with self.journal.entries(worker) as entries:
                while not (self.stop.is_set() or self.stopping.is_set()):
                    if self._status(campaign) != CampaignStatus.RUNNING:
                        return
                    claimed = self._db(
                        self.campaigns.claim, campaign.id, worker, size, self.pace.lease
                    )
                    if not claimed:
                        if not self._wait_for_more(campaign):
                            return
                        continue
                    try:
                        outcomes, refusing = self._deliver(
                            backend, claimed, lambda outcome: entries.add(campaign.id, outcome)
                        )
                    except Paused as pause:
                        self._db(self.campaigns.release, campaign.id, worker)
                        if not self.stopping.is_set():  # asked to stop: the campaign goes on
                            self._pause(str(pause))
                        return
                    ours = self._db(self.campaigns.record, campaign.id, worker, outcomes)
                    entries.clear()
                    # A delivery whose lease another worker took over is theirs to count.
                    self._count([o for o in outcomes if o.subscriber_id in ours])
                    if any(o.state == DeliveryState.SENT for o in outcomes):
                        size = min(size * 2, largest)
                    if not self._keep_going(outcomes, refusing):
                        return
        except DatabaseUnavailable as error:  # what went is in the journal: nothing is lost
            self.database_gone = True
            self._pause(str(error))
        except Exception as error:  # a worker must never die silently: pause and say why
            self._pause(f"mailer stopped on an unexpected error: {error!r}")
            sys.stderr.write(f"mailer: sending stopped: {error!r}\n")
        finally:
            backend.close()

    def _keep_going(self, outcomes: list[DeliveryRecord], refusing: str) -> bool:
        """False, having paused the campaign, when the service refuses everything or cannot be
        reached."""
        if refusing:
            self._pause(refusing)
            return False
        if self.unreachable >= self.pace.max_attempts:
            self._pause(f"{self.unreachable_reason} ({self.unreachable} times in a row)")
            return False
        return True

    def _backoff(self, attempt: int, at_least: float = 0.0) -> float:
        """Seconds before attempt number `attempt + 1`: doubling, with jitter."""
        delay = self.pace.retry_backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
        return float(max(delay, at_least))

    def _wait_for_more(self, campaign: Campaign) -> bool:
        """Nothing to claim now: wait for retries or other workers' batches; False when done."""
        if not self._db(self.campaigns.unfinished, campaign.id):
            return False
        due = self._db(self.campaigns.next_retry, campaign.id)
        now = self.clock()
        wait = 0.2 if due is None else min(max((due - now).total_seconds(), 0.02), 0.5)
        self.stop.wait(wait)
        return not self.stop.is_set()

    def _pause(self, reason: str) -> None:
        with self.tally.lock:
            if not self.pause_reason:
                self.pause_reason = reason
        self.stop.set()

    def _deliver(
        self, backend: Backend, claimed: list[Claimed], journal: Callable[[DeliveryRecord], None]
    ) -> tuple[list[DeliveryRecord], str]:
        """Hand the batch over: what became of each claimed delivery (each handed message's
        outcome given to `journal` the moment it is known), and why to pause if the service
        seems to take nothing."""
        outcomes: list[DeliveryRecord] = []
        outgoing: list[Outgoing] = []
        attempts: dict[int, int] = {}
        for person in claimed:
            refusal = self._refusal(person)
            if refusal is not None:
                outcomes.append(refusal)
                continue
            attempts[person.subscriber_id] = person.attempts + 1
            outgoing.append(
                self.outgoing(
                    person.subscriber_id,
                    person.link_secret,
                    person.email,
                    person.name,
                    self.template.message_id(),
                )
            )
        if not outgoing:
            return outcomes, ""
        settled: dict[int, DeliveryRecord] = {}

        def settle(message: Outgoing, result: Result) -> None:
            subscriber_id = message.subscriber_id
            settled[subscriber_id] = self._recorded(subscriber_id, attempts[subscriber_id], result)
            journal(settled[subscriber_id])

        self._wait_for_the_service()
        self.limit.take(len(outgoing))
        outgoing = self._still_subscribed(outgoing, attempts, outcomes)
        if not outgoing:
            return outcomes, ""
        handed_at = time.monotonic()
        try:
            results = backend.send(self.template, outgoing, settle)
        except BackendError as error:
            if not error.temporary:
                raise Paused(str(error)) from None
            return outcomes + self._unreachable(claimed, outgoing, error, handed_at), ""
        self.unreachable = 0
        handed = [
            settled.get(message.subscriber_id)
            or self._recorded(message.subscriber_id, attempts[message.subscriber_id], result)
            for message, result in zip(outgoing, results, strict=True)
        ]
        return outcomes + handed, self._nothing_accepted(handed)

    def _wait_for_the_service(self) -> None:
        """Hold the hand-over while the service is being waited for (a backoff after it failed,
        its Retry-After); raises Paused if the campaign stops meanwhile."""
        wait = self.service_back_at - time.monotonic()
        if wait > 0 and self.stop.wait(wait):
            raise Paused(self.pause_reason or "stopped while waiting for the service")

    def _still_subscribed(
        self, outgoing: list[Outgoing], attempts: dict[int, int], outcomes: list[DeliveryRecord]
    ) -> list[Outgoing]:
        """The messages whose recipients are still active now, just before the hand-over: an
        unsubscribe answered while the batch waited (for the rate limit, a slow server) is never
        mailed. The others are added to `outcomes` as skipped. One query per batch."""
        now = self._db(self.campaigns.statuses, [m.subscriber_id for m in outgoing])
        still: list[Outgoing] = []
        for message in outgoing:
            status = now.get(message.subscriber_id)
            if status == Status.ACTIVE:
                still.append(message)
                continue
            outcomes.append(
                DeliveryRecord(
                    message.subscriber_id,
                    DeliveryState.SKIPPED,
                    attempts[message.subscriber_id] - 1,  # not handed over: no attempt
                    error=f"{status.value if status else 'erased'} while the campaign ran",
                )
            )
        return still

    @staticmethod
    def _refusal(person: Claimed) -> DeliveryRecord | None:
        """Why this recipient gets nothing (no longer active, a header-forging name or
        address), or None."""
        if person.status != Status.ACTIVE:
            return DeliveryRecord(
                person.subscriber_id,
                DeliveryState.SKIPPED,
                person.attempts,
                error=f"{person.status.value} while the campaign ran",
            )
        try:
            header_safe(person.name, "the name")
            header_safe(person.email, "the address")
        except HeaderInjection as error:
            return DeliveryRecord(
                person.subscriber_id, DeliveryState.FAILED, person.attempts, error=str(error)
            )
        return None

    def _unreachable(
        self,
        claimed: list[Claimed],
        outgoing: list[Outgoing],
        error: BackendError,
        handed_at: float,
    ) -> list[DeliveryRecord]:
        """Nothing of the batch was handed over: back in the queue, no attempt counted (the
        service failed, not the message). The service is judged, not the connection: failures of
        batches handed over before the last failure was seen (other connections' at the same
        moment) count once with it, every connection waits before trying again, and enough
        failures in a row pause the campaign."""
        with self.tally.lock:
            now = time.monotonic()
            if handed_at >= self.failure_seen_at:  # tried after the last failure was seen
                self.unreachable += 1
                self.failure_seen_at = now
                delay = self._backoff(self.unreachable, error.retry_after or 0.0)
                self.service_back_at = max(self.service_back_at, now + delay)
            # What the service asked for holds every connection, not only this one.
            self.service_back_at = max(self.service_back_at, now + (error.retry_after or 0.0))
            self.unreachable_reason = str(error)
            back_in = self.service_back_at - now
        when = self.clock() + dt.timedelta(seconds=back_in)
        waiting = {message.subscriber_id for message in outgoing}
        return [
            DeliveryRecord(
                p.subscriber_id, DeliveryState.QUEUED, p.attempts, error=str(error), not_before=when
            )
            for p in claimed
            if p.subscriber_id in waiting
        ]

    def _recorded(self, subscriber_id: int, attempts: int, result: Result) -> DeliveryRecord:
        if result.outcome == Outcome.SENT:
            return DeliveryRecord(
                subscriber_id, DeliveryState.SENT, attempts, message_id=result.message_id
            )
        if result.outcome == Outcome.UNCERTAIN:
            return DeliveryRecord(
                subscriber_id,
                DeliveryState.UNCERTAIN,
                attempts,
                message_id=result.message_id,
                error=result.reason,
                batch=result.batch,
            )
        if result.outcome == Outcome.RETRY:
            if attempts < self.pace.max_attempts:
                delay = self._backoff(attempts, result.retry_after or 0.0)
                when = self.clock() + dt.timedelta(seconds=delay)
                return DeliveryRecord(
                    subscriber_id,
                    DeliveryState.QUEUED,
                    attempts,
                    error=result.reason,
                    not_before=when,
                )
            return DeliveryRecord(
                subscriber_id,
                DeliveryState.FAILED,
                attempts,
                error=f"gave up after {attempts} attempts: {result.reason}",
            )
        return DeliveryRecord(
            subscriber_id,
            DeliveryState.FAILED,
            attempts,
            error=result.reason,
            bounced=result.outcome == Outcome.BOUNCED,
        )

    def _nothing_accepted(self, handed: list[DeliveryRecord]) -> str:
        """Why to pause when the service has accepted nothing for a good while, else ""."""
        with self.tally.lock:
            if any(o.state == DeliveryState.SENT for o in handed):
                self.failing_messages = self.failing_batches = 0
                return ""
            self.failing_messages += len(handed)
            self.failing_batches += 1
            if (
                self.failing_messages < PAUSE_AFTER_MESSAGES
                or self.failing_batches < PAUSE_AFTER_BATCHES
            ):
                return ""
            return (
                f"the last {self.failing_messages} messages were all refused or failed; the last "
                f"reason: {handed[-1].error}"
            )

    def _count(self, outcomes: list[DeliveryRecord]) -> None:
        with self.tally.lock:
            for outcome in outcomes:
                if outcome.state == DeliveryState.SENT:
                    self.tally.sent += 1
                elif outcome.state == DeliveryState.FAILED:
                    self.tally.failed += 1
                    self.tally.bounced += outcome.bounced
                elif outcome.state == DeliveryState.SKIPPED:
                    self.tally.skipped += 1
                elif outcome.state == DeliveryState.UNCERTAIN:
                    self.tally.uncertain += 1
                else:
                    self.tally.retried += 1
