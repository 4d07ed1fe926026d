"""Campaigns and their send log: one row per recipient, claimed in batches under a lease.

Starting a campaign fixes its recipients: the active members of the list at that moment, copied
into `deliveries` by one INSERT … SELECT. A worker claims a batch by marking it `sending` under its
name with a lease; when the batch is done it records each result. If the worker dies, its batch
stays `sending` until the lease runs out (or, on SQLite, where only one worker runs, until the
next run), and is then claimed again: those messages may go twice, nobody is lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from mailer.lifecycle import Reason, Status
from mailer.store.lists import Lists
from mailer.store.schema import (
    UtcDateTime,
    campaigns,
    deliveries,
    lists,
    memberships,
    subscribers,
    utcnow,
)
from mailer.store.subscribers import change_status


class CampaignStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class State(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Campaign:
    id: int
    issue: str
    """The slugs of the issue's commentaries, the lead first, separated by spaces."""
    list_name: str
    subject: str
    status: CampaignStatus
    status_detail: str
    recipients: int
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def slugs(self) -> list[str]:
        return self.issue.split()


@dataclass(frozen=True)
class Claimed:
    """A recipient of a claimed batch, as they are now."""

    subscriber_id: int
    email: str
    name: str
    status: Status
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery."""

    subscriber_id: int
    state: State
    attempts: int
    message_id: str = ""
    error: str = ""
    not_before: dt.datetime | None = None
    bounced: bool = False
    """A hard bounce: the subscriber is marked bounced too."""


class Campaigns:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Reading -----------------------------------------------------------------------------------

    def _query(self) -> Any:
        return select(
            campaigns.c.id,
            campaigns.c.issue,
            lists.c.name,
            campaigns.c.subject,
            campaigns.c.status,
            campaigns.c.status_detail,
            campaigns.c.recipients,
            campaigns.c.created_at,
            campaigns.c.finished_at,
        ).join(lists, lists.c.id == campaigns.c.list_id)

    @staticmethod
    def _campaign(row: Any) -> Campaign:
        return Campaign(
            id=row.id,
            issue=row.issue,
            list_name=row.name,
            subject=row.subject,
            status=CampaignStatus(row.status),
            status_detail=row.status_detail,
            recipients=row.recipients,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )

    def get(self, campaign_id: int) -> Campaign | None:
        with self.engine.connect() as connection:
            row = connection.execute(self._query().where(campaigns.c.id == campaign_id)).first()
        return self._campaign(row) if row else None

    def all(self) -> list[Campaign]:
        with self.engine.connect() as connection:
            rows = connection.execute(self._query().order_by(campaigns.c.id.desc())).all()
        return [self._campaign(row) for row in rows]

    def latest(self, issue: str, list_name: str) -> Campaign | None:
        """The newest campaign of this issue to this list, if there is one."""
        query = (
            self._query()
            .where(campaigns.c.issue == issue, lists.c.name == list_name)
            .order_by(campaigns.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return self._campaign(row) if row else None

    def counts(self, campaign_id: int) -> dict[State, int]:
        query = (
            select(deliveries.c.state, func.count())
            .where(deliveries.c.campaign_id == campaign_id)
            .group_by(deliveries.c.state)
        )
        with self.engine.connect() as connection:
            found = {State(state): count for state, count in connection.execute(query)}
        return {state: found.get(state, 0) for state in State}

    def failures(self, campaign_id: int, limit: int = 50) -> list[tuple[str, str]]:
        """(address, reason) of failed deliveries, at most `limit`."""
        query = (
            select(subscribers.c.email, deliveries.c.error)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.campaign_id == campaign_id, deliveries.c.state == State.FAILED)
            .order_by(deliveries.c.subscriber_id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [(email, error or "") for email, error in connection.execute(query)]

    def next_retry(self, campaign_id: int) -> dt.datetime | None:
        """When the earliest delivery waiting to be retried falls due."""
        query = select(func.min(deliveries.c.not_before)).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.state == State.QUEUED
        )
        with self.engine.connect() as connection:
            value: dt.datetime | None = connection.execute(query).scalar()
        return value

    def unfinished(self, campaign_id: int) -> int:
        """Deliveries still queued or being sent."""
        query = select(func.count()).where(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.state.in_([State.QUEUED.value, State.SENDING.value]),
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # Changing ----------------------------------------------------------------------------------

    def start(self, issue: str, list_name: str, subject: str) -> Campaign:
        """A new campaign to the active members of `list_name` as they are now."""
        now = utcnow()
        with self.engine.begin() as connection:
            list_id = Lists.find(connection, list_name)
            if list_id is None:
                raise LookupError(list_name)
            campaign_id = connection.execute(
                insert(campaigns)
                .values(
                    issue=issue,
                    list_id=list_id,
                    subject=subject,
                    status=CampaignStatus.RUNNING.value,
                    status_detail="",
                    recipients=0,
                    created_at=now,
                )
                .returning(campaigns.c.id)
            ).scalar_one()
            recipients = (
                select(
                    memberships.c.subscriber_id,
                    literal(campaign_id),
                    literal(State.QUEUED.value),
                    literal(0),
                    literal(now, UtcDateTime),
                )
                .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
                .where(memberships.c.list_id == list_id, subscribers.c.status == Status.ACTIVE)
            )
            added = connection.execute(
                insert(deliveries).from_select(
                    ["subscriber_id", "campaign_id", "state", "attempts", "updated_at"], recipients
                )
            ).rowcount
            connection.execute(
                update(campaigns).where(campaigns.c.id == campaign_id).values(recipients=added)
            )
        campaign = self.get(campaign_id)
        assert campaign is not None
        return campaign

    def set_status(self, campaign_id: int, status: CampaignStatus, detail: str = "") -> None:
        values: dict[str, Any] = {"status": status.value, "status_detail": detail}
        if status in (CampaignStatus.DONE, CampaignStatus.CANCELLED):
            values["finished_at"] = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                update(campaigns).where(campaigns.c.id == campaign_id).values(**values)
            )

    def release(self, campaign_id: int, worker: str | None = None) -> int:
        """Put `sending` deliveries back in the queue: a dead worker's (or, with None, anyone's,
        for SQLite, where the only worker is the one asking)."""
        query = update(deliveries).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.state == State.SENDING
        )
        if worker is not None:
            query = query.where(deliveries.c.claimed_by == worker)
        with self.engine.begin() as connection:
            return connection.execute(
                query.values(state=State.QUEUED.value, claimed_by=None, lease_until=None)
            ).rowcount

    def claim(self, campaign_id: int, worker: str, size: int, lease: dt.timedelta) -> list[Claimed]:
        """Up to `size` deliveries that are due (queued, or sending under an expired lease),
        marked sending under `worker`, with their subscribers as they are now."""
        now = utcnow()
        due = and_(
            deliveries.c.campaign_id == campaign_id,
            or_(
                and_(
                    deliveries.c.state == State.QUEUED,
                    or_(deliveries.c.not_before.is_(None), deliveries.c.not_before <= now),
                ),
                and_(deliveries.c.state == State.SENDING, deliveries.c.lease_until < now),
            ),
        )
        with self.engine.begin() as connection:
            picked = (
                select(deliveries.c.subscriber_id)
                .where(due)
                .order_by(deliveries.c.subscriber_id)
                .limit(size)
            )
            if connection.dialect.name == "postgresql":
                picked = picked.with_for_update(skip_locked=True)
            ids = list(connection.execute(picked).scalars())
            if not ids:
                return []
            connection.execute(  # `due` again: a row another worker took meanwhile stays theirs
                update(deliveries)
                .where(due, deliveries.c.subscriber_id.in_(ids))
                .values(
                    state=State.SENDING.value,
                    claimed_by=worker,
                    lease_until=now + lease,
                    updated_at=now,
                )
            )
            rows = connection.execute(
                select(
                    subscribers.c.id,
                    subscribers.c.email,
                    subscribers.c.name,
                    subscribers.c.status,
                    deliveries.c.attempts,
                )
                .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
                .where(
                    deliveries.c.campaign_id == campaign_id,
                    deliveries.c.claimed_by == worker,
                    deliveries.c.state == State.SENDING,
                    subscribers.c.id.in_(ids),
                )
                .order_by(subscribers.c.id)
            )
            return [Claimed(r.id, r.email, r.name, Status(r.status), r.attempts) for r in rows]

    def record(self, campaign_id: int, worker: str, outcomes: Sequence[Outcome]) -> None:
        """Write what became of a claimed batch, and mark hard bounces, in one commit."""
        if not outcomes:
            return
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.campaign_id == campaign_id,
                    deliveries.c.subscriber_id == bindparam("sid"),
                    deliveries.c.claimed_by == worker,
                )
                .values(
                    state=bindparam("state"),
                    attempts=bindparam("attempts"),
                    message_id=bindparam("message_id"),
                    error=bindparam("error"),
                    not_before=bindparam("not_before"),
                    claimed_by=None,
                    lease_until=None,
                    updated_at=now,
                ),
                [
                    {
                        "sid": o.subscriber_id,
                        "state": o.state.value,
                        "attempts": o.attempts,
                        "message_id": o.message_id or None,
                        "error": o.error or None,
                        "not_before": o.not_before,
                    }
                    for o in outcomes
                ],
            )
            for outcome in outcomes:
                if outcome.bounced:
                    _bounce(connection, outcome, campaign_id)


def _bounce(connection: Connection, outcome: Outcome, campaign_id: int) -> None:
    change_status(
        connection,
        outcome.subscriber_id,
        Status.BOUNCED,
        Reason.BOUNCE,
        f"campaign {campaign_id}: {outcome.error}",
    )
