"""Campaigns and their send log: one row per recipient, claimed in batches under a lease.

Starting a campaign fixes its recipients: the active members of the list at that moment, copied
into `deliveries` by one INSERT … SELECT. A worker claims a batch by marking it `sending` under its
name with a lease, measured by the database's clock (one clock for every worker, whatever their
machines' clocks say); when the batch is done it records each result it still holds. If the
worker dies, its batch is claimed again by the next sender: at once (on PostgreSQL each sending
process holds an advisory lock while it lives; on SQLite the only sender takes over at its
start), or when the lease runs out for a worker that hangs. Those messages may go twice (the
sending journal keeps that to one per connection), nobody is lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from mailer.core.lifecycle import Frequency, Reason, Status
from mailer.store.bulk import bulk_update, one_of
from mailer.store.lists import Lists, list_key
from mailer.store.outage import make_room
from mailer.store.schema import (
    DatabaseTime,
    UtcDateTime,
    campaigns,
    deliveries,
    driver_time,
    history,
    lists,
    memberships,
    subscribers,
    utcnow,
    welcomes,
)
from mailer.store.subscribers import EVERY_ISSUE, change_status, reading

_STATUSES = {status.value: status for status in Status}
PRESENCE = 0x6D61696C
"""The first key of the advisory locks that say a sending process is alive ("mail")."""
PRESENCE_GRACE = 60.0
"""Seconds a restarted PostgreSQL server gives live senders to take their locks again before a
missing lock means a dead sender."""
_ABSENT = text(
    "NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = :namespace AND objsubid = 2"
    " AND objid = hashtext(split_part(deliveries.claimed_by, '/', 1))::oid)"
    " AND pg_postmaster_start_time() < now() - make_interval(secs => :grace)"
).bindparams(namespace=PRESENCE, grace=PRESENCE_GRACE)
"""The process holding a delivery is gone: nobody holds its presence lock (PostgreSQL)."""
RECORD_GROUPS = 8
"""Results sharing everything but the recipient are recorded with one statement, up to this many
kinds per batch; beyond, row by row."""


class CampaignStatus(StrEnum):
    SCHEDULED = "scheduled"
    """Waiting for its time (`scheduled_at`); it has no recipients until it starts."""
    MISSED = "missed"
    """Its time passed while no scheduler ran, longer ago than the grace: never sent late."""
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class CampaignKind(StrEnum):
    ISSUE = "issue"
    """An issue to the list's subscribers who get every issue (frequency immediate)."""
    DIGEST = "digest"
    """The week's commentaries to the list's weekly subscribers."""
    WELCOME = "welcome"
    """The welcome email, to the list's subscribers who just confirmed."""
    LATEST = "latest"
    """The latest issue the list received, again, to those who just confirmed."""


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNCERTAIN = "uncertain"
    """Handed over whole with no answer: it may have arrived. Sent again only when asked."""


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
    scheduled_at: dt.datetime | None = None
    kind: CampaignKind = CampaignKind.ISSUE

    @property
    def slugs(self) -> list[str]:
        return self.issue.split()


class Latest(NamedTuple):
    """The issue a welcome is followed by: its slugs, subject, and the languages of the
    subscribers it is for (None: everybody)."""

    issue: str
    subject: str
    languages: Sequence[str] | None


class Claimed(NamedTuple):
    """A recipient of a claimed batch, as they are now."""

    subscriber_id: int
    email: str
    name: str
    status: Status
    attempts: int
    link_secret: str
    """For the links in their message, read with the row rather than asked for per message."""


class DeliveryRecord(NamedTuple):
    """What became of one claimed delivery."""

    subscriber_id: int
    state: DeliveryState
    attempts: int
    message_id: str = ""
    error: str = ""
    not_before: dt.datetime | None = None
    bounced: bool = False
    """A hard bounce: the subscriber is marked bounced too."""
    batch: str = ""
    """For an uncertain one, the label of its batch, by which the service can be asked."""


class Uncertain(NamedTuple):
    """An uncertain delivery, as the service can be asked about it."""

    subscriber_id: int
    email: str
    batch: str
    """The label of its batch; "" when the service cannot be asked (SMTP, say)."""
    attempts: int
    recorded_at: dt.datetime
    """When its uncertain outcome was recorded: the hand-over was before."""


class Campaigns:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        """This machine's clock, for what is only written down (when a campaign started, when a
        row changed); leases go by the database's clock, which every worker shares."""
        # SQLite lets one writer in at a time and makes the others sleep and retry; the sending
        # threads of one process take turns here instead, which wastes no time asleep.
        self.writing: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

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
            campaigns.c.scheduled_at,
            campaigns.c.kind,
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
            scheduled_at=row.scheduled_at,
            kind=CampaignKind(row.kind),
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
        """The newest campaign of this issue to this list, if there is one (digests aside)."""
        return self._newest_issue(list_name, campaigns.c.issue == issue)

    def last_sent(self, list_name: str) -> Campaign | None:
        """The newest issue sent in full to this list (digests and welcomes aside)."""
        return self._newest_issue(list_name, campaigns.c.status == CampaignStatus.DONE)

    def _newest_issue(self, list_name: str, condition: Any) -> Campaign | None:
        query = (
            self._query()
            .where(
                lists.c.name_key == list_key(list_name),
                campaigns.c.kind == CampaignKind.ISSUE,
                condition,
            )
            .order_by(campaigns.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return self._campaign(row) if row else None

    def welcomes_due(self, default_list: str) -> dict[tuple[str, str], list[int]]:
        """The subscribers owed a welcome email, by the list it comes from (the first of
        theirs by name, else `default_list`) and the language they read ("" the newsletter's)."""
        query = (
            select(welcomes.c.subscriber_id, subscribers.c.language, lists.c.name)
            .select_from(welcomes)
            .join(subscribers, subscribers.c.id == welcomes.c.subscriber_id)
            .outerjoin(memberships, memberships.c.subscriber_id == welcomes.c.subscriber_id)
            .outerjoin(lists, lists.c.id == memberships.c.list_id)
            .order_by(welcomes.c.subscriber_id, lists.c.name)
        )
        first: dict[int, tuple[str, str]] = {}
        with self.engine.connect() as connection:
            for subscriber_id, language, list_name in connection.execute(query):
                first.setdefault(subscriber_id, (list_name or default_list, language))
        due: dict[tuple[str, str], list[int]] = {}
        for subscriber_id, group in first.items():
            due.setdefault(group, []).append(subscriber_id)
        return due

    def language_of(self, campaign_id: int) -> str:
        """The language a welcome campaign's recipients read ("" the newsletter's): they are
        chosen alike (welcomes_due)."""
        query = (
            select(subscribers.c.language)
            .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
            .where(deliveries.c.campaign_id == campaign_id)
            .limit(1)
        )
        with self.engine.connect() as connection:
            return connection.scalar(query) or ""

    def counts(self, campaign_id: int) -> dict[DeliveryState, int]:
        query = (
            select(deliveries.c.state, func.count())
            .where(deliveries.c.campaign_id == campaign_id)
            .group_by(deliveries.c.state)
        )
        with self.engine.connect() as connection:
            found = {DeliveryState(state): count for state, count in connection.execute(query)}
        return {state: found.get(state, 0) for state in DeliveryState}

    def reasons(
        self, campaign_id: int, state: DeliveryState = DeliveryState.FAILED, limit: int = 50
    ) -> list[tuple[str, str]]:
        """(address, reason) of the deliveries in `state` (failed ones by default), at most
        `limit`."""
        query = (
            select(subscribers.c.email, deliveries.c.error)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.campaign_id == campaign_id, deliveries.c.state == state)
            .order_by(deliveries.c.subscriber_id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [(email, error or "") for email, error in connection.execute(query)]

    def next_retry(self, campaign_id: int) -> dt.datetime | None:
        """When the earliest delivery waiting to be retried falls due."""
        query = select(func.min(deliveries.c.not_before)).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.state == DeliveryState.QUEUED
        )
        with self.engine.connect() as connection:
            value: dt.datetime | None = connection.execute(query).scalar()
        return value

    def statuses(self, subscriber_ids: Sequence[int]) -> dict[int, Status]:
        """The status of each of these subscribers as it is now (an erased one is missing)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(subscribers.c.id, subscribers.c.status).where(
                    one_of(connection, subscribers.c.id, subscriber_ids)
                )
            )
            return {subscriber_id: _STATUSES[status] for subscriber_id, status in rows}

    def last_activity(self, campaign_id: int) -> dt.datetime | None:
        """When a delivery of the campaign was last claimed or recorded."""
        query = select(func.max(deliveries.c.updated_at)).where(
            deliveries.c.campaign_id == campaign_id
        )
        with self.engine.connect() as connection:
            value: dt.datetime | None = connection.execute(query).scalar()
        return value

    def unfinished(self, campaign_id: int) -> int:
        """Deliveries still queued or being sent."""
        query = select(func.count()).where(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.state.in_([DeliveryState.QUEUED.value, DeliveryState.SENDING.value]),
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # Changing ----------------------------------------------------------------------------------

    def due(self, now: dt.datetime) -> list[Campaign]:
        """Scheduled campaigns whose time has come, the earliest first."""
        query = (
            self._query()
            .where(
                campaigns.c.status == CampaignStatus.SCHEDULED,
                campaigns.c.scheduled_at <= now,
            )
            .order_by(campaigns.c.scheduled_at, campaigns.c.id)
        )
        with self.engine.connect() as connection:
            return [self._campaign(row) for row in connection.execute(query)]

    def interrupted(self) -> list[Campaign]:
        """Campaigns the scheduler started that are still running: a crash stopped them."""
        query = (
            self._query()
            .where(
                campaigns.c.status == CampaignStatus.RUNNING,
                campaigns.c.scheduled_at.is_not(None),
            )
            .order_by(campaigns.c.id)
        )
        with self.engine.connect() as connection:
            return [self._campaign(row) for row in connection.execute(query)]

    # Changing ----------------------------------------------------------------------------------

    def start(
        self, issue: str, list_name: str, subject: str, languages: Sequence[str] | None = None
    ) -> Campaign:
        """A new campaign to the active members of `list_name` as they are now; with
        `languages`, only to those whose language is one of them ("" is the newsletter's)."""
        with self.engine.begin() as connection:
            campaign_id = self._insert(connection, issue, list_name, subject, None)
            self._fix_recipients(connection, campaign_id, languages=languages)
        return self._made(campaign_id)

    def start_digest(
        self,
        issue: str,
        list_name: str,
        subject: str,
        due: dt.datetime,
        weekly_since: tuple[dt.datetime | None, dt.datetime | None],
    ) -> Campaign | None:
        """A digest due at `due`, to the list's active weekly subscribers who chose weekly in
        [from, until) of `weekly_since` (None: no bound) and are in no other digest due then
        (one per person, however many lists they read weekly); None when there is nobody."""
        with self.engine.begin() as connection:
            campaign_id = self._insert(connection, issue, list_name, subject, due)
            connection.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(status=CampaignStatus.RUNNING.value, kind=CampaignKind.DIGEST.value)
            )
            after, before = weekly_since
            chosen = memberships.c.frequency_since
            due_then = select(campaigns.c.id).where(
                campaigns.c.kind == CampaignKind.DIGEST,
                campaigns.c.scheduled_at == due,
            )
            in_another = (
                select(deliveries.c.subscriber_id)
                .where(
                    deliveries.c.campaign_id.in_(due_then),
                    deliveries.c.subscriber_id == memberships.c.subscriber_id,
                )
                .exists()
            )
            window = [memberships.c.frequency == Frequency.WEEKLY, ~in_another]
            if after is not None:
                window.append(chosen >= after)
            if before is not None:
                window.append(or_(chosen.is_(None), chosen < before))
            if not self._fix_recipients(connection, campaign_id, and_(*window)):
                connection.execute(delete(campaigns).where(campaigns.c.id == campaign_id))
                return None
        return self._made(campaign_id)

    def start_welcome(
        self, list_name: str, subscriber_ids: Sequence[int], subject: str, latest: Latest | None
    ) -> list[Campaign]:
        """The welcome campaign of these subscribers owed one (and, with `latest`, the latest
        issue's after it), taking them off the welcomes owed in the same transaction: each is
        welcomed once, and a crash after this leaves running campaigns the scheduler
        continues. Those no longer active are left out; a campaign with nobody is not made."""
        now = self.clock()
        made = []
        with self.engine.begin() as connection:
            owed = list(
                connection.scalars(
                    select(welcomes.c.subscriber_id).where(
                        one_of(connection, welcomes.c.subscriber_id, subscriber_ids)
                    )
                )
            )
            if not owed:
                return []
            connection.execute(
                delete(welcomes).where(one_of(connection, welcomes.c.subscriber_id, owed))
            )
            parts: list[tuple[str, str, Sequence[str] | None, CampaignKind]] = [
                ("", subject, None, CampaignKind.WELCOME)
            ]
            if latest is not None:
                parts.append((latest.issue, latest.subject, latest.languages, CampaignKind.LATEST))
            for issue, title, languages, kind in parts:
                campaign_id = self._insert(connection, issue, list_name, title, now)
                connection.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(status=CampaignStatus.RUNNING.value, kind=kind.value)
                )
                chosen = reading(languages, one_of(connection, subscribers.c.id, owed))
                if _fix_chosen(connection, campaign_id, chosen):
                    made.append(campaign_id)
                else:
                    connection.execute(delete(campaigns).where(campaigns.c.id == campaign_id))
        return [self._made(campaign_id) for campaign_id in made]

    def schedule(self, issue: str, list_name: str, subject: str, at: dt.datetime) -> Campaign:
        """A new campaign that starts at `at`: its recipients are fixed then, not now."""
        with self.engine.begin() as connection:
            campaign_id = self._insert(connection, issue, list_name, subject, at)
        return self._made(campaign_id)

    def begin(self, campaign_id: int, languages: Sequence[str] | None = None) -> Campaign | None:
        """Start a scheduled campaign: fix its recipients and make it running. None when it is
        no longer scheduled (cancelled, or another scheduler began it first)."""
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(campaigns)
                .where(
                    campaigns.c.id == campaign_id,
                    campaigns.c.status == CampaignStatus.SCHEDULED,
                )
                .values(status=CampaignStatus.RUNNING.value, status_detail="")
            ).rowcount
            if taken != 1:
                return None
            self._fix_recipients(connection, campaign_id, languages=languages)
        return self.get(campaign_id)

    def reschedule(self, campaign_id: int, at: dt.datetime) -> bool:
        """Move a campaign that has not started (scheduled, missed, or cancelled before its
        time) to `at`; False when it has started."""
        never_started = or_(
            campaigns.c.status.in_([CampaignStatus.SCHEDULED.value, CampaignStatus.MISSED.value]),
            and_(
                campaigns.c.status == CampaignStatus.CANCELLED,
                campaigns.c.scheduled_at.is_not(None),
                ~select(deliveries.c.campaign_id)
                .where(deliveries.c.campaign_id == campaign_id)
                .exists(),
            ),
        )
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id, never_started)
                    .values(
                        status=CampaignStatus.SCHEDULED.value,
                        status_detail="",
                        scheduled_at=at,
                        finished_at=None,
                    )
                ).rowcount
            )

    def _made(self, campaign_id: int) -> Campaign:
        campaign = self.get(campaign_id)
        if campaign is None:  # made in the transaction just committed
            raise LookupError(f"campaign {campaign_id}")
        return campaign

    def make_room(self) -> None:
        """Free the room kept for pausing on a full disk (SQLite; see database.make_room)."""
        make_room(self.engine.url.render_as_string(hide_password=False))

    @staticmethod
    def _insert(
        connection: Connection,
        issue: str,
        list_name: str,
        subject: str,
        scheduled_at: dt.datetime | None,
    ) -> int:
        list_id = Lists.find(connection, list_name)
        if list_id is None:
            raise LookupError(list_name)
        status = CampaignStatus.RUNNING if scheduled_at is None else CampaignStatus.SCHEDULED
        campaign_id: int = connection.execute(
            insert(campaigns)
            .values(
                issue=issue,
                list_id=list_id,
                subject=subject,
                status=status.value,
                status_detail="",
                recipients=0,
                created_at=utcnow(),
                scheduled_at=scheduled_at,
            )
            .returning(campaigns.c.id)
        ).scalar_one()
        return campaign_id

    @staticmethod
    def _fix_recipients(
        connection: Connection,
        campaign_id: int,
        which: Any = EVERY_ISSUE,
        languages: Sequence[str] | None = None,
    ) -> int:
        """Copy the campaign's readers (`reading`) among the members of its list, as they are
        now, into its log: by default those who get every issue; `which` chooses others (a
        digest's)."""
        now = utcnow()
        list_id = connection.execute(
            select(campaigns.c.list_id).where(campaigns.c.id == campaign_id)
        ).scalar_one()
        recipients = (
            select(
                memberships.c.subscriber_id,
                literal(campaign_id),
                literal(DeliveryState.QUEUED.value),
                literal(0),
                literal(now, UtcDateTime),
            )
            .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
            .where(memberships.c.list_id == list_id, *reading(languages, which))
        )
        return _log_recipients(connection, campaign_id, recipients)

    def set_status(self, campaign_id: int, status: CampaignStatus, detail: str = "") -> None:
        values: dict[str, Any] = {"status": status.value, "status_detail": detail}
        if status in (CampaignStatus.DONE, CampaignStatus.CANCELLED, CampaignStatus.MISSED):
            values["finished_at"] = self.clock()
        with self.engine.begin() as connection:
            connection.execute(
                update(campaigns).where(campaigns.c.id == campaign_id).values(**values)
            )

    def move(
        self,
        campaign_id: int,
        applies: Sequence[CampaignStatus],
        status: CampaignStatus,
        detail: str = "",
        **values: Any,
    ) -> bool:
        """Set `status` (and `values`) if the campaign is in one of `applies` now; False when it
        is not (it finished, or someone else moved it first)."""
        if status in (CampaignStatus.DONE, CampaignStatus.CANCELLED, CampaignStatus.MISSED):
            values["finished_at"] = self.clock()
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(campaigns)
                    .where(
                        campaigns.c.id == campaign_id,
                        campaigns.c.status.in_([a.value for a in applies]),
                    )
                    .values(status=status.value, status_detail=detail, **values)
                ).rowcount
            )

    def left_since(self, campaign_id: int, since: dt.datetime) -> dict[Status, int]:
        """Of the campaign's recipients, how many bounced and unsubscribed since `since`."""
        left = (Status.BOUNCED, Status.UNSUBSCRIBED)
        # From the changes since (ix_history_at), each looked up in the send log by its key:
        # a join would walk the million deliveries of a large campaign instead.
        recipient = (
            select(deliveries.c.subscriber_id)
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.subscriber_id == history.c.subscriber_id,
            )
            .exists()
        )
        query = (
            select(history.c.new_status, func.count(func.distinct(history.c.subscriber_id)))
            .where(
                history.c.at >= since,
                history.c.new_status.in_([s.value for s in left]),
                recipient,
            )
            .group_by(history.c.new_status)
        )
        with self.engine.connect() as connection:
            found = {_STATUSES[status]: count for status, count in connection.execute(query)}
        return {status: found.get(status, 0) for status in left}

    def _change(self, where: Sequence[Any], **values: Any) -> int:
        """Set `values` on the deliveries matching every condition of `where`; how many."""
        with self.writing, self.engine.begin() as connection:
            return connection.execute(update(deliveries).where(*where).values(**values)).rowcount

    def renew_leases(self, campaign_id: int, workers: Sequence[str], lease: dt.timedelta) -> int:
        """Renew the lease of the batches these workers hold (they are still handing them over)."""
        return self._change(
            [
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.state == DeliveryState.SENDING,
                deliveries.c.claimed_by.in_(list(workers)),
            ],
            lease_until=DatabaseTime(lease.total_seconds()),
        )

    def uncertain(self, campaign_id: int) -> list[Uncertain]:
        """The campaign's uncertain deliveries, by batch."""
        query = (
            select(
                deliveries.c.subscriber_id,
                subscribers.c.email,
                deliveries.c.batch,
                deliveries.c.attempts,
                deliveries.c.updated_at,
            )
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.state == DeliveryState.UNCERTAIN,
            )
            .order_by(deliveries.c.batch, deliveries.c.subscriber_id)
        )
        with self.engine.connect() as connection:
            return [
                Uncertain(subscriber_id, email, batch or "", attempts, at)
                for subscriber_id, email, batch, attempts, at in connection.execute(query)
            ]

    def settle_uncertain(
        self, campaign_id: int, taken: Sequence[int], never: Sequence[int], reason: str
    ) -> None:
        """What the service said of uncertain deliveries: those it `taken` are sent, those it
        `never` had are queued again (with `reason`); one commit. Only rows still uncertain
        change."""
        with self.writing, self.engine.begin() as connection:
            for ids, values in (
                (taken, {"state": DeliveryState.SENT.value, "error": None}),
                (never, {"state": DeliveryState.QUEUED.value, "error": reason}),
            ):
                if not ids:
                    continue
                connection.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.campaign_id == campaign_id,
                        deliveries.c.state == DeliveryState.UNCERTAIN,
                        one_of(connection, deliveries.c.subscriber_id, ids),
                    )
                    .values(**values, not_before=None, updated_at=self.clock())
                )

    def resend_uncertain(self, campaign_id: int) -> int:
        """Queue the uncertain deliveries again, because somebody asked: they may arrive twice."""
        return self._change(
            [
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.state == DeliveryState.UNCERTAIN,
            ],
            state=DeliveryState.QUEUED.value,
            not_before=None,
            updated_at=self.clock(),
        )

    def release(self, campaign_id: int, worker: str | None = None) -> int:
        """Put `sending` deliveries back in the queue: a dead worker's (or, with None, anyone's,
        for SQLite, where the only worker is the one asking)."""
        query = update(deliveries).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.state == DeliveryState.SENDING
        )
        if worker is not None:
            query = query.where(deliveries.c.claimed_by == worker)
        with self.writing, self.engine.begin() as connection:
            return connection.execute(
                query.values(state=DeliveryState.QUEUED.value, claimed_by=None, lease_until=None)
            ).rowcount

    @contextlib.contextmanager
    def presence(self, process: str) -> Iterator[Callable[[], None]]:
        """While this lasts, `process` (the part of its workers' names before the "/") counts as
        alive: on PostgreSQL it holds a session advisory lock, which the server lets go of the
        moment the process dies, so that its batches are taken over at once instead of when
        their leases run out. SQLite needs none: there the only sender takes over at its start.
        Yields what to call now and then: it takes the lock again after the server restarted."""
        if self.engine.dialect.name != "postgresql":
            yield lambda: None
            return
        held = _Presence(self.engine, process)
        try:
            yield held.keep
        finally:
            held.close()

    def claim(self, campaign_id: int, worker: str, size: int, lease: dt.timedelta) -> list[Claimed]:
        """Up to `size` deliveries that are due (queued, or sending under an expired lease or
        for a process that is gone), marked sending under `worker`, with their subscribers as
        they are now."""
        now = DatabaseTime()
        # Two conditions, each served by the (campaign_id, state, subscriber_id) index: an OR of
        # the two would have SQLite walk past every row already sent, slower at each batch.
        queued = and_(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.state == DeliveryState.QUEUED,
            or_(deliveries.c.not_before.is_(None), deliveries.c.not_before <= now),
        )
        with self.writing, self.engine.begin() as connection:
            gone = deliveries.c.lease_until < now
            if connection.dialect.name == "postgresql":
                gone = or_(gone, _ABSENT)
            abandoned = and_(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.state == DeliveryState.SENDING,
                gone,
            )
            taken = 0
            claimed: list[Claimed] = []
            for due in (abandoned, queued):
                found = self._due(connection, due, size - len(claimed))
                if not found:
                    continue
                claimed += found
                ids = [c.subscriber_id for c in found]
                # `due` again: a row another worker took meanwhile stays theirs. One UPDATE per
                # condition: SQLite answers an OR of the two by scanning every queued row.
                taken += connection.execute(
                    update(deliveries)
                    .where(due, one_of(connection, deliveries.c.subscriber_id, ids))
                    .values(
                        state=DeliveryState.SENDING.value,
                        claimed_by=worker,
                        lease_until=DatabaseTime(lease.total_seconds()),
                        updated_at=self.clock(),
                    )
                ).rowcount
            if not claimed:
                return []
            if taken == len(claimed):
                return claimed
            ours = _still_claimed(
                connection, campaign_id, worker, [c.subscriber_id for c in claimed]
            )
            return [c for c in claimed if c.subscriber_id in ours]

    @staticmethod
    def _due(connection: Connection, condition: Any, size: int) -> list[Claimed]:
        if size <= 0:
            return []
        picked = (
            select(
                subscribers.c.id,
                subscribers.c.email,
                subscribers.c.name,
                subscribers.c.status,
                deliveries.c.attempts,
                subscribers.c.link_secret,
            )
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(condition)
            .order_by(deliveries.c.subscriber_id)
            .limit(size)
        )
        if connection.dialect.name == "postgresql":
            picked = picked.with_for_update(of=deliveries, skip_locked=True)
        rows = connection.execute(picked).all()
        return [
            Claimed(i, email, name, _STATUSES[status], tries, secret)
            for i, email, name, status, tries, secret in rows
        ]

    def record(self, campaign_id: int, worker: str, outcomes: Sequence[DeliveryRecord]) -> set[int]:
        """Write what became of a claimed batch, and mark hard bounces, in one commit. Returns
        the subscriber ids recorded: those `worker` still held (a delivery another worker took
        over meanwhile is theirs to record and count)."""
        if not outcomes:
            return set()
        with self.writing, self.engine.begin() as connection:
            ours = _still_claimed(
                connection, campaign_id, worker, [o.subscriber_id for o in outcomes]
            )
            held = [o for o in outcomes if o.subscriber_id in ours]
            groups = _alike(held)
            if len(groups) <= RECORD_GROUPS:  # a batch API's answer: one statement per kind
                _record_by_kind(connection, campaign_id, worker, groups, self.clock())
            else:  # every message its own id (SMTP): one row each, straight to the driver
                _record_row_by_row(connection, campaign_id, worker, groups, self.clock())
            for outcome in held:
                if outcome.bounced:
                    _bounce(connection, outcome, campaign_id)
        return ours


def _fix_chosen(
    connection: Connection, campaign_id: int, chosen: Sequence[ColumnElement[bool]]
) -> int:
    """Copy the subscribers `chosen` (subscribers.reading) into the campaign's log; how many."""
    recipients = select(
        subscribers.c.id,
        literal(campaign_id),
        literal(DeliveryState.QUEUED.value),
        literal(0),
        literal(utcnow(), UtcDateTime),
    ).where(*chosen)
    return _log_recipients(connection, campaign_id, recipients)


def _log_recipients(connection: Connection, campaign_id: int, recipients: Any) -> int:
    """Insert the recipients a SELECT finds (subscriber, campaign, state, attempts, time) into
    the campaign's log and count them on the campaign."""
    connection.execute(
        insert(deliveries).from_select(
            ["subscriber_id", "campaign_id", "state", "attempts", "updated_at"], recipients
        )
    )
    added = connection.execute(  # rowcount of INSERT … SELECT is -1 with psycopg
        select(func.count()).where(deliveries.c.campaign_id == campaign_id)
    ).scalar_one()
    connection.execute(
        update(campaigns).where(campaigns.c.id == campaign_id).values(recipients=added)
    )
    return int(added)


class _Presence:
    """A session advisory lock saying that a sending process is alive (PostgreSQL)."""

    def __init__(self, engine: Engine, process: str) -> None:
        self.engine = engine
        self.key = {"namespace": PRESENCE, "name": process}
        self.connection: Connection | None = None
        self.keep()

    def keep(self) -> None:
        """Hold the lock, taking it again on a new session if the old one is gone; a database
        still away is tried again next time."""
        try:
            if self.connection is not None:
                self.connection.execute(text("SELECT 1"))
                self.connection.commit()
                return
        except SQLAlchemyError:
            self.close()
        with contextlib.suppress(SQLAlchemyError):
            connection = self.engine.connect()
            try:
                connection.execute(
                    text("SELECT pg_advisory_lock(:namespace, hashtext(:name))"), self.key
                )
                connection.commit()
            except SQLAlchemyError:
                connection.close()
                raise
            self.connection = connection

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            # Ending the session lets go of the lock (back in the pool, the session would live).
            with contextlib.suppress(SQLAlchemyError):
                connection.invalidate()
                connection.close()


Alike = dict[tuple[Any, ...], list[int]]
"""Subscriber ids by what their records share: (state, attempts, message_id, error, not_before,
batch)."""


def _alike(outcomes: Sequence[DeliveryRecord]) -> Alike:
    groups: Alike = {}
    for o in outcomes:
        shared = (
            o.state.value,
            o.attempts,
            o.message_id or None,
            o.error or None,
            o.not_before,
            o.batch or None,
        )
        groups.setdefault(shared, []).append(o.subscriber_id)
    return groups


def _still_claimed(
    connection: Connection, campaign_id: int, worker: str, ids: Sequence[int]
) -> set[int]:
    """Which of these deliveries `worker` holds now (on PostgreSQL, locked until the commit)."""
    query = select(deliveries.c.subscriber_id).where(
        deliveries.c.campaign_id == campaign_id,
        deliveries.c.claimed_by == worker,
        deliveries.c.state == DeliveryState.SENDING,
        one_of(connection, deliveries.c.subscriber_id, ids),
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return set(connection.execute(query).scalars())


def _record_by_kind(
    connection: Connection, campaign_id: int, worker: str, groups: Alike, now: dt.datetime
) -> None:
    for (state, attempts, message_id, error, not_before, batch), ids in groups.items():
        connection.execute(
            update(deliveries)
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.claimed_by == worker,
                one_of(connection, deliveries.c.subscriber_id, ids),
            )
            .values(
                state=state,
                attempts=attempts,
                message_id=message_id,
                error=error,
                not_before=not_before,
                batch=batch,
                claimed_by=None,
                lease_until=None,
                updated_at=now,
            )
        )


def _record_row_by_row(
    connection: Connection, campaign_id: int, worker: str, groups: Alike, now: dt.datetime
) -> None:
    dialect = connection.dialect.name
    stamp = driver_time(now, dialect)
    bulk_update(
        connection,
        deliveries,
        (
            "state",
            "attempts",
            "message_id",
            "error",
            "not_before",
            "batch",
            "claimed_by",
            "lease_until",
            "updated_at",
        ),
        ("campaign_id", "subscriber_id", "claimed_by"),
        [
            (
                state,
                attempts,
                message_id,
                error,
                driver_time(not_before, dialect),
                batch,
                None,
                None,
                stamp,
                campaign_id,
                subscriber_id,
                worker,
            )
            for (state, attempts, message_id, error, not_before, batch), ids in groups.items()
            for subscriber_id in ids
        ],
    )


def _bounce(connection: Connection, outcome: DeliveryRecord, campaign_id: int) -> None:
    change_status(
        connection,
        outcome.subscriber_id,
        Status.BOUNCED,
        Reason.BOUNCE,
        f"campaign {campaign_id}: {outcome.error}",
    )
