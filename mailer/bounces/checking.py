"""One pass over the bounce mailbox (`mailer bounces check`, and what the scheduler runs): read
each message, record what it says, take it out of the mailbox once recorded.

Recording comes first and is idempotent (an event is keyed by the report's own Message-ID), so a
pass cut short anywhere repeats nothing on the next one: a message recorded but not yet moved is
seen again, found a duplicate, and moved then.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mailer.bounces.mailbox import Mailbox
from mailer.bounces.reading import Report, Verdict, read_report
from mailer.core.events import Event
from mailer.core.lifecycle import Status
from mailer.core.tokens import Links
from mailer.core.wording import count
from mailer.store.database import Store
from mailer.store.events import Applied
from mailer.store.subscribers import Subscriber

PROVIDER = "mailbox"
"""The events' provider: what the bounce mailbox records is told apart from webhooks by it."""

log = logging.getLogger("mailer.bounces")


@dataclass(frozen=True)
class Left:
    """A message left in the mailbox for a person to read, and why."""

    key: str
    subject: str
    why: str


@dataclass
class Pass:
    applied: Applied = field(default_factory=Applied)
    """What the reports recorded did, as a webhook's events would."""
    delays: int = 0
    """Warnings that delivery is still being tried: taken out, nothing recorded."""
    gone: int = 0
    """Reports about somebody no longer held (erased): taken out, nothing recorded."""
    left: list[Left] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """What the pass did, in one sentence (no addresses: it goes to logs too)."""
        applied = self.applied
        bounced = sum(1 for _, status in applied.changed if status is Status.BOUNCED)
        complained = sum(1 for _, status in applied.changed if status is Status.COMPLAINED)
        return (
            f"{count(applied.recorded, 'report')} recorded ({bounced} bounced, {complained} "
            f"complained), {applied.duplicates} seen before, "
            f"{count(self.delays, 'delay warning')}, {self.gone} about subscribers no longer "
            f"held, {len(self.left)} left in the mailbox."
        )

    @property
    def quiet(self) -> bool:
        """Nothing was in the mailbox."""
        applied = self.applied
        return not (applied.recorded or applied.duplicates or self.delays or self.gone or self.left)


def check_mailbox(mailbox: Mailbox, store: Store, links: Links, bounce_address: str) -> Pass:
    """Read every message of the mailbox once; raises MailboxError when it cannot be read."""
    done = Pass()
    with mailbox:
        for key, data in mailbox.messages():
            report = read_report(data)
            why = _handle(report, store, links, bounce_address, done)
            if why:
                done.left.append(Left(key, report.subject, why))
                log.warning("bounces: left message %s in the mailbox: %s", key, why)
                continue
            mailbox.processed(key)
    return done


def _handle(report: Report, store: Store, links: Links, bounce_address: str, done: Pass) -> str:
    """Record what the report says; why it must stay in the mailbox, or "" when it is done."""
    if report.verdict is Verdict.UNREADABLE:
        return report.reason
    if report.verdict is Verdict.DELAY:
        done.delays += 1
        return ""
    subscriber = _whom(report, store, links, bounce_address)
    if subscriber is None:
        return (
            f"a {report.verdict.value} that names nobody mailer sent to (no VERP token of ours, "
            "no Message-ID in the send log)"
        )
    if isinstance(subscriber, _Gone):
        done.gone += 1
        return ""
    done.applied += store.events.apply([_event(report, subscriber)])
    return ""


class _Gone:
    """A report about somebody mailer sent to, no longer held (erased, or the id reused)."""


def _whom(
    report: Report, store: Store, links: Links, bounce_address: str
) -> Subscriber | _Gone | None:
    """The subscriber a report is about: by the VERP token it was sent to, else by the
    original's Message-ID in the send log; None when it names nobody mailer sent to."""
    if bounce_address:
        for address in report.addressed_to:
            link = links.bounced(bounce_address, address)
            if link is None:
                continue
            found = store.subscribers.get(link.subscriber_id)
            if found is None or not links.names(link, found.link_secret, found.created_at):
                return _Gone()
            return found
    if report.original_message_id:
        subscriber_id = store.events.sent_to(report.original_message_id)
        if subscriber_id is not None:
            return store.subscribers.get(subscriber_id) or _Gone()
    return None


def _event(report: Report, subscriber: Subscriber) -> Event:
    return Event(
        provider=PROVIDER,
        kind=report.kind,
        recipient=subscriber.email,
        event_id=report.event_id,
        message_id=report.original_message_id,
        at=report.at,
        reason=report.reason,
        raw=dict(report.detail),
        severity=report.severity,
    )
