"""The tables. Changing them means a new migration in migrations/versions/.

Designed for sending as much as for keeping subscribers: a campaign fixes its recipients in
`deliveries`, one row each, which several workers claim in batches under a lease (`claimed_by`,
`lease_until`) so that a dead worker's batch is taken over when its lease runs out.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
    func,
    literal,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite has no 64-bit autoincrement type of its own: INTEGER PRIMARY KEY is its rowid.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Times stored in UTC and read back aware. SQLite keeps no zone and no time type: there the
    value is text in a fixed format that sorts in time order."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(26))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return driver_time(value, dialect.name)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def driver_time(value: dt.datetime | None, dialect_name: str) -> Any:
    """A time as the database driver takes it (for bulk inserts that skip SQLAlchemy's types)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("a time without a zone was given to the database")
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect_name == "sqlite" else utc


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DatabaseTime(FunctionElement[dt.datetime]):
    """The database's clock, `seconds` ahead: one clock for every worker, whatever the clocks
    of their machines say (leases are compared with it)."""

    type = UtcDateTime()
    inherit_cache = True

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__(literal(float(seconds), Float()))


@compiles(DatabaseTime, "postgresql")
def _postgresql_time(element: DatabaseTime, compiler: SQLCompiler, **options: Any) -> str:
    return f"(now() + make_interval(secs => {compiler.process(element.clauses, **options)}))"


@compiles(DatabaseTime, "sqlite")
def _sqlite_time(element: DatabaseTime, compiler: SQLCompiler, **options: Any) -> str:
    # The text UtcDateTime stores there, to the millisecond (which sorts the same way).
    offset = compiler.process(element.clauses, **options)
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+f seconds', {offset}))"


def new_link_secret() -> str:
    """A subscriber's own value, mixed into the MAC of every link made for them (links.py)."""
    return secrets.token_hex(16)


def new_link_secrets(count: int) -> list[str]:
    """`count` values of new_link_secret's kind from one read of the system's random source
    (an import makes a batch of people at once: one read a person was a fifth of its time)."""
    drawn = secrets.token_hex(16 * count)
    return [drawn[start : start + 32] for start in range(0, 32 * count, 32)]


# Tables whose ids links, the send log or history name are AUTOINCREMENT on SQLite: without it
# SQLite gives the next row the highest id again once that row is deleted (an erased subscriber's
# id to the next who signs up). PostgreSQL's sequences never go back.


subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("status", String(20), nullable=False),
    # The language they read (`it`, `en-GB`); empty: the newsletter's.
    Column("language", String(35), nullable=False, default="", server_default=""),
    # How the person came in, their first consent: a form, an import, staff, the API.
    Column("source", String(40), nullable=False),
    Column("source_detail", Text, nullable=False, default=""),
    Column("source_ip", String(45), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("link_secret", String(32), nullable=False, default=new_link_secret),
    sqlite_autoincrement=True,
)
# The console finds people by the beginning of their name, whatever its case, and by status, a
# page at a time in order (store/directory.py).
Index("ix_subscribers_name_lower", func.lower(subscribers.c.name), subscribers.c.email_key)
Index("ix_subscribers_status_email_key", subscribers.c.status, subscribers.c.email_key)

lists = Table(
    "lists",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    # The name case-folded: "Commentaries" and "commentaries" are one list (store/lists.py).
    Column("name_key", String(300), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # What subscribers see of it on the subscribe and preferences pages, rather than the name.
    Column("title", String(200), nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    # Offered on the subscribe form; a private list takes members from staff and imports only.
    Column("public", Boolean, nullable=False, server_default=true()),
    # An archived list is offered nowhere and keeps its members and campaigns.
    Column("archived_at", UtcDateTime, nullable=True),
    Index("uq_lists_name_key", "name_key", unique=True),
    sqlite_autoincrement=True,
)

memberships = Table(
    "memberships",
    metadata,
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("list_id", Id, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    # `immediate`: every issue as it goes; `weekly`: the digest only. `frequency_since` is when
    # the subscriber chose weekly: their first digest holds only what came out after.
    Column(
        "frequency", String(10), nullable=False, default="immediate", server_default="immediate"
    ),
    Column("frequency_since", UtcDateTime, nullable=True),
    Index("ix_memberships_list_id", "list_id", "subscriber_id"),
    sqlite_with_rowid=False,
)

audience_joins = Table(
    # How many of a list's members joined it in each week (Monday, UTC), by their status now:
    # the audience chart's sign-ups and active members, and each list's counts, without counting
    # a million memberships per page. Kept by triggers in the database (migration 0016), on every
    # path that changes memberships or statuses (imports, COPY, cascades on erasure, plain SQL)
    # alike. A migration that rebuilds memberships or subscribers on SQLite (batch mode: a copy,
    # the old table dropped) drops their triggers with them and must create them again.
    "audience_joins",
    metadata,
    Column("list_id", Id, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
    Column("week", Date, primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("members", Integer, nullable=False),
    sqlite_with_rowid=False,
)

AUDIENCE_WEEK_SQLITE = "date({}, 'weekday 0', '-6 days')"
"""The week (its Monday) of a time stored as text on SQLite, as audience_joins counts it: one
text for migration 0016's triggers and audience.counted_at_once, so the two cannot disagree."""

audience_bulk = Table(
    # A row here while an import inserts memberships on SQLite (inside its transaction, never
    # committed): the per-row trigger counting memberships in skips them, and the import counts
    # them in with one upsert (audience.counted_at_once). SQLite's triggers cannot read a temp
    # table, hence a table of the main schema; PostgreSQL counts a statement at once anyway.
    "audience_bulk",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
)

history = Table(
    # Every change of a subscriber's status after they came in, with why and where from. With
    # the subscriber's `source`, the changes that gave consent (a confirmation, a form used
    # again) are the consent record: when, how, from which address.
    "history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("old_status", String(20), nullable=True),
    Column("new_status", String(20), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("ip", String(45), nullable=False, default=""),
    Index("ix_history_subscriber_id", "subscriber_id"),
    # A campaign's report counts who left since it went (store/campaigns.py left_since).
    Index("ix_history_at", "at"),
)

suppressions = Table(
    # Erased addresses, as the HMAC of the address keyed with the newsletter's secret; rows made
    # before the hash was keyed (`keyed` false) hold a plain SHA-256, which cannot be re-keyed
    # since the address is gone, and is checked too.
    "suppressions",
    metadata,
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(40), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    # False for the rows the migration to keyed hashes found; mailer writes true.
    Column("keyed", Boolean, nullable=False, default=True, server_default=false()),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("issue", Text, nullable=False),
    Column("list_id", Id, ForeignKey("lists.id"), nullable=False),
    Column("subject", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_detail", Text, nullable=False, default=""),
    Column("recipients", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    # When a scheduled campaign is to start (it has no deliveries until then); kept once it has.
    Column("scheduled_at", UtcDateTime, nullable=True),
    # `issue`: to the list's immediate subscribers; `digest`: the week's, to its weekly ones;
    # `welcome`: the welcome email, and `latest` the latest issue, to those who just confirmed.
    Column("kind", String(10), nullable=False, default="issue", server_default="issue"),
    Index("ix_campaigns_issue_list_id", "issue", "list_id"),
    Index("ix_campaigns_status_scheduled_at", "status", "scheduled_at"),
    sqlite_autoincrement=True,
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", UtcDateTime, nullable=True),
    Column("claimed_by", String(80), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("message_id", String(255), nullable=True),
    Column("error", Text, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    # The label of the batch an uncertain delivery went in: the service is asked about it by that.
    Column("batch", String(64), nullable=True),
    Index("ix_deliveries_campaign_id_state", "campaign_id", "state", "subscriber_id"),
    Index("ix_deliveries_subscriber_id", "subscriber_id"),
    # A bounce by mail that carries no VERP token is traced by the original's Message-ID.
    Index("ix_deliveries_message_id", "message_id"),
)

welcomes = Table(
    # Subscribers who confirmed and are owed a welcome email: written with the confirmation,
    # taken by the scheduler into a welcome campaign in the same transaction that makes it, so
    # each is welcomed once whatever stops when.
    "welcomes",
    metadata,
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("confirmed_at", UtcDateTime, nullable=False),
)

campaign_links = Table(
    # The links of a campaign's issue that go through the click counter ([analytics] clicks):
    # counts per link and campaign, never per person. `url_hash` (SHA-256 of the URL) keys a
    # link within its campaign, since URLs are too long for a unique index everywhere.
    "campaign_links",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("url_hash", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("clicks", BigInteger, nullable=False, default=0),
    Column("clicks_apart", BigInteger, nullable=False, default=0),
    Index("uq_campaign_links_campaign_id_url_hash", "campaign_id", "url_hash", unique=True),
    sqlite_autoincrement=True,
)

events = Table(
    # What providers' webhooks reported: bounces, complaints, unsubscriptions, deliveries, each
    # once (a provider's event id is unique for that provider, so one delivered twice is seen
    # as a duplicate), with the provider's own record in `raw`. An event about a subscriber goes
    # when they are erased (the foreign key cascades); one about an address that matched no
    # subscriber keeps that address's suppression hash instead, so that erasing it finds it.
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(20), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("severity", String(10), nullable=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=True),
    Column("email_hash", String(64), nullable=True),
    Column("message_id", String(255), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("occurred_at", UtcDateTime, nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("raw", Text, nullable=False),
    Index("uq_events_provider_event_id", "provider", "event_id", unique=True),
    Index("ix_events_subscriber_id", "subscriber_id"),
    Index("ix_events_email_hash", "email_hash"),
)

webhook_tokens = Table(
    # Single-use tokens of signed webhooks (Mailgun's) seen lately, hashed: one seen before is a
    # replay. Kept a day, far longer than a signature stays fresh.
    "webhook_tokens",
    metadata,
    Column("provider", String(20), primary_key=True),
    Column("token_hash", String(64), primary_key=True),
    Column("received_at", UtcDateTime, nullable=False),
    Index("ix_webhook_tokens_received_at", "received_at"),
)

scheduler_marks = Table(
    # What the scheduler last did of each kind of recurring work, and when: the build that
    # follows an embargo lifting, a list's digest, the start of auto_publish. A restart reads
    # them, so it neither repeats work nor forgets what came due while nothing ran.
    "scheduler_marks",
    metadata,
    Column("name", String(120), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
)


staff = Table(
    # The people who use the console. No password until they follow their one-time link; the
    # link's token is kept only as a hash, and so is nothing else secret (the TOTP secret must be
    # readable to check codes, which is why the database file is private).
    "staff",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("totp_secret", String(64), nullable=True),
    Column("link_hash", String(64), nullable=True, unique=True),
    Column("link_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
)

staff_sessions = Table(
    # Signed-in browsers. The cookie holds a random token; only its hash is here, so a copy of
    # the database signs nobody in. Deleting the row ends the session at once.
    "staff_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", Id, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    Column("address", String(45), nullable=False, default=""),
    Column("agent", String(200), nullable=False, default=""),
    Index("ix_staff_sessions_staff_id", "staff_id"),
)

login_failures = Table(
    # Failed sign-ins lately, by account and by client network: what throttling counts.
    "login_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account", String(320), nullable=False),
    Column("network", String(45), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_login_failures_account_at", "account", "at"),
    Index("ix_login_failures_network_at", "network", "at"),
)

audit_log = Table(
    # Every staff action: who (an address, kept when the account goes), what, when, from where.
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(320), nullable=False),
    Column("action", String(60), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("address", String(45), nullable=False, default=""),
    Index("ix_audit_log_at", "at"),
    sqlite_autoincrement=True,
)

commentary_writers = Table(
    # Who saved each commentary in the console (by slug): with [console] approval, none of them
    # may approve it (store/approvals.py).
    "commentary_writers",
    metadata,
    Column("slug", String(255), primary_key=True),
    Column("email_key", String(320), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("saved_at", UtcDateTime, nullable=False),
)

approvals = Table(
    # A publisher's approval of a commentary as its file was then (its SHA-256): a later save
    # is not approved until someone approves it again.
    "approvals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("slug", String(255), nullable=False),
    Column("version", String(64), nullable=False),
    Column("approved_by", String(320), nullable=False),
    Column("approved_at", UtcDateTime, nullable=False),
    Index("ix_approvals_slug_version", "slug", "version"),
    sqlite_autoincrement=True,
)

test_addresses = Table(
    # The addresses the console offers for test sends, beside the signed-in person's own.
    "test_addresses",
    metadata,
    Column("email_key", String(320), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("added_by", String(320), nullable=False),
    Column("added_at", UtcDateTime, nullable=False),
)
