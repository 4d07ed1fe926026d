"""Events of providers' webhooks and of the bounce mailbox: recorded once each, and applied to
subscribers and the send log.

A hard bounce makes the subscriber bounced and fails the delivery it came from (found by the
provider's message id in the send log, else the subscriber's latest delivery that went out); a
complaint makes them complained and notes it on that delivery, which stays sent (the message did
arrive); an unsubscription through the provider makes them unsubscribed. Deliveries are recorded
only. Soft bounces are scored: the one that makes `SoftBounces.limit` within `SoftBounces.days`,
none of them followed by a reported delivery, makes the subscriber bounced as a hard bounce
would. Everything one request carried is applied in one transaction, and an
event seen before (same provider, same event id) changes nothing more, however often it comes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailer.core.addresses import SuppressionHash, as_stored, key
from mailer.core.events import MAILMAN_DEFAULTS, Event, Kind, SoftBounces
from mailer.core.lifecycle import Reason, Status
from mailer.store.campaigns import DeliveryState
from mailer.store.schema import deliveries, events, subscribers, utcnow, webhook_tokens
from mailer.store.subscribers import change_status
from mailer.store.suppressions import erased_keys

TOKENS_KEPT = dt.timedelta(days=1)
MAX_REASON = 1000
MAX_ID = 255

_STATUS_OF = {
    Kind.COMPLAINED: (Status.COMPLAINED, Reason.COMPLAINT),
    Kind.UNSUBSCRIBED: (Status.UNSUBSCRIBED, Reason.PROVIDER),
}


class Replayed(Exception):
    """A single-use webhook token came a second time: the request is refused, nothing changed."""


@dataclass
class Applied:
    """What applying one request's events did."""

    recorded: int = 0
    duplicates: int = 0
    unknown: int = 0
    """Events about an address that is no subscriber's (recorded all the same)."""
    erased: int = 0
    """Events about an erased address: dropped, since recording them would store it again."""
    changed: list[tuple[int, Status]] = field(default_factory=list)
    """(subscriber id, new status) of every change of status."""
    deliveries: int = 0
    """Send log entries failed or annotated."""

    def __iadd__(self, other: Applied) -> Applied:
        """What another request's events did, added to this."""
        self.recorded += other.recorded
        self.duplicates += other.duplicates
        self.unknown += other.unknown
        self.erased += other.erased
        self.changed += other.changed
        self.deliveries += other.deliveries
        return self


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store keeps it."""

    provider: str
    event_id: str
    kind: str
    severity: str | None
    subscriber_id: int | None
    message_id: str | None
    reason: str
    occurred_at: dt.datetime | None
    received_at: dt.datetime
    raw: dict[str, Any]


class Events:
    def __init__(
        self,
        engine: Engine,
        hashes: SuppressionHash,
        soft_bounces: SoftBounces = MAILMAN_DEFAULTS,
    ) -> None:
        self.engine = engine
        self.hashes = hashes
        self.soft_bounces = soft_bounces

    def apply(self, events: Sequence[Event], replay_token: str = "", provider: str = "") -> Applied:
        """Record and apply the events of one request, all or nothing. With `replay_token`,
        the token is spent first: seen before (by any process), Replayed, and nothing changes."""
        applied = Applied()
        with self.engine.begin() as connection:
            now = utcnow()
            # A write first: on SQLite it takes the write lock at once, so that a concurrent
            # request waits for its turn rather than failing when its reads turn into writes.
            connection.execute(
                delete(webhook_tokens).where(webhook_tokens.c.received_at < now - TOKENS_KEPT)
            )
            if replay_token:
                _spend(connection, provider, replay_token, now)
            for event in events:
                _apply(connection, event, now, applied, self.hashes, self.soft_bounces)
        return applied

    def of_subscriber(self, subscriber_id: int) -> list[StoredEvent]:
        """Every event recorded about this subscriber, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(*_COLUMNS)
                .where(events.c.subscriber_id == subscriber_id)
                .order_by(events.c.id)
            ).all()
        return [_recorded(row) for row in rows]

    def sent_to(self, message_id: str) -> int | None:
        """The subscriber a message with this Message-ID went to, by the send log."""
        with self.engine.connect() as connection:
            found: int | None = connection.scalar(
                select(deliveries.c.subscriber_id)
                .where(deliveries.c.message_id.in_(message_id_forms(message_id)))
                .order_by(deliveries.c.campaign_id.desc())
                .limit(1)
            )
        return found


_COLUMNS = (
    events.c.provider,
    events.c.event_id,
    events.c.kind,
    events.c.severity,
    events.c.subscriber_id,
    events.c.message_id,
    events.c.reason,
    events.c.occurred_at,
    events.c.received_at,
    events.c.raw,
)


def _recorded(row: Any) -> StoredEvent:
    return StoredEvent(
        provider=row.provider,
        event_id=row.event_id,
        kind=row.kind,
        severity=row.severity,
        subscriber_id=row.subscriber_id,
        message_id=row.message_id,
        reason=row.reason,
        occurred_at=row.occurred_at,
        received_at=row.received_at,
        raw=json.loads(row.raw),
    )


def _insert_new(connection: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT unless a row with the same unique key exists (then False). Concurrent requests
    agree: the database decides, not a look-up before the insert."""
    keys = {"events": ["provider", "event_id"], "webhook_tokens": ["provider", "token_hash"]}
    dialect = connection.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).values(**values)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).values(**values)
    else:  # pragma: no cover - mailer supports SQLite and PostgreSQL
        raise NotImplementedError(dialect)
    statement = statement.on_conflict_do_nothing(index_elements=keys[table.name]).returning(
        table.c.provider
    )
    return connection.execute(statement).first() is not None


def _spend(connection: Connection, provider: str, token: str, now: dt.datetime) -> None:
    token_hash = hashlib.sha256(token.encode("utf-8")).hexdigest()
    values = {"provider": provider, "token_hash": token_hash, "received_at": now}
    if not _insert_new(connection, webhook_tokens, values):
        raise Replayed(f"{provider} token seen before")


def _apply(
    connection: Connection,
    event: Event,
    now: dt.datetime,
    applied: Applied,
    hashes: SuppressionHash,
    soft_bounces: SoftBounces,
) -> None:
    address = as_stored(event.recipient)
    subscriber_id = connection.scalar(
        select(subscribers.c.id).where(subscribers.c.email_key == key(address))
    )
    if subscriber_id is None and erased_keys(connection, [key(address)], hashes):
        applied.erased += 1  # a late report about someone erased: nothing of it is kept
        return
    reason = event.reason[:MAX_REASON]
    row = {
        "provider": event.provider,
        "event_id": event.event_id[:MAX_ID],
        "kind": event.kind.value,
        "severity": event.severity.value if event.severity else None,
        "subscriber_id": subscriber_id,
        "email_hash": None if subscriber_id is not None else hashes(address),
        "message_id": event.message_id[:MAX_ID] or None,
        "reason": reason,
        "occurred_at": event.at,
        "received_at": now,
        "raw": json.dumps(event.raw, ensure_ascii=False, sort_keys=True),
    }
    if not _insert_new(connection, events, row):
        applied.duplicates += 1
        return
    applied.recorded += 1
    if subscriber_id is None:
        applied.unknown += 1
        return
    detail = f"{event.provider} {event.label}" + (f": {reason}" if reason else "")
    if event.hard_bounce:
        new, why = Status.BOUNCED, Reason.BOUNCE
    elif event.kind in _STATUS_OF:
        new, why = _STATUS_OF[event.kind]
    elif event.kind is Kind.BOUNCED:
        scored = _soft_bounces(connection, subscriber_id, now, soft_bounces)
        if scored < soft_bounces.limit:
            return
        new, why = Status.BOUNCED, Reason.BOUNCE
        detail += f" ({scored} soft bounces within {soft_bounces.days} days)"
    else:
        return  # delivered: recorded only
    if change_status(connection, subscriber_id, new, why, detail):
        applied.changed.append((subscriber_id, new))
    if event.kind is not Kind.UNSUBSCRIBED:
        applied.deliveries += _mark_delivery(connection, subscriber_id, event, detail, now)


def _soft_bounces(
    connection: Connection, subscriber_id: int, now: dt.datetime, rule: SoftBounces
) -> int:
    """The soft bounces of this subscriber within the rule's days and since the latest delivery
    a provider reported (a delivery in between shows the mailbox works again)."""
    when = func.coalesce(events.c.occurred_at, events.c.received_at)
    mine = events.c.subscriber_id == subscriber_id
    delivered = connection.scalar(
        select(func.max(when)).where(mine, events.c.kind == Kind.DELIVERED.value)
    )
    since = now - dt.timedelta(days=rule.days)
    if delivered is not None and delivered > since:
        since = delivered
    return (
        connection.scalar(
            select(func.count()).where(
                mine,
                events.c.kind == Kind.BOUNCED.value,
                func.coalesce(events.c.severity, "soft") != "hard",
                when > since,
            )
        )
        or 0
    )


def _mark_delivery(
    connection: Connection, subscriber_id: int, event: Event, detail: str, now: dt.datetime
) -> int:
    """Fail (hard bounce) or annotate (complaint) the delivery the event is about; 0 or 1."""
    sent = select(deliveries.c.campaign_id).where(
        deliveries.c.subscriber_id == subscriber_id, deliveries.c.state == DeliveryState.SENT.value
    )
    newest = deliveries.c.campaign_id.desc()
    campaign_id = None
    if event.message_id:
        campaign_id = connection.scalar(
            sent.where(deliveries.c.message_id.in_(message_id_forms(event.message_id)))
            .order_by(newest)
            .limit(1)
        )
    if campaign_id is None:
        campaign_id = connection.scalar(sent.order_by(newest).limit(1))
    if campaign_id is None:
        return 0
    values: dict[str, Any] = {"error": detail[:MAX_REASON], "updated_at": now}
    if event.hard_bounce:
        values["state"] = DeliveryState.FAILED.value
    return connection.execute(
        update(deliveries)
        .where(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.subscriber_id == subscriber_id,
            deliveries.c.state == DeliveryState.SENT.value,
        )
        .values(**values)
    ).rowcount


def message_id_forms(message_id: str) -> list[str]:
    """A message id as a provider reports it and as the send log may hold it: with and without
    angle brackets (Mailgun answers `<id>` and reports `id`)."""
    bare = message_id.strip().strip("<>")
    return sorted({message_id, bare, f"<{bare}>"} - {"", "<>"})
