"""each list's members by week of joining and status now, kept by triggers (the audience chart)

Revision ID: 0016_audience_joins
Revises: 0015_welcomes
Create Date: 2026-12-02 04:40:00.000000

Counting a million memberships each time a list's page drew its chart took most of a second.
The triggers keep `audience_joins` right on every path that adds or removes a membership or
changes a status: an import's executemany or COPY, the console, a bounce, an erasure's cascade,
plain SQL. On SQLite they act row by row; on PostgreSQL once a statement where they can (a COPY
of a million memberships is one upsert of a few rows), with transition tables.

A subscriber deleted (erased) takes their memberships with them: a trigger before the delete
takes them out of the counts while their status is still there to read, and the memberships'
own trigger then finds no subscriber and leaves the counts alone.

An import's memberships on SQLite are the exception: row by row the trigger halved its speed,
so while the import holds a row in `audience_bulk` (within its transaction) the trigger skips
them and the import counts them in with one upsert (mailer.store.audience.counted_at_once).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailer.store.schema import AUDIENCE_WEEK_SQLITE

revision = "0016_audience_joins"
down_revision = "0015_welcomes"
branch_labels = None
depends_on = None

_SQLITE_WEEK = AUDIENCE_WEEK_SQLITE  # the Monday of the week (created_at is text)


def _sqlite_joined(member: str) -> str:
    """Count the membership `member` (NEW) in, with its subscriber's status."""
    return f"""
        INSERT INTO audience_joins (list_id, week, status, members)
        SELECT {member}.list_id, {_SQLITE_WEEK.format(member + ".created_at")}, status, 1
        FROM subscribers WHERE id = {member}.subscriber_id
        ON CONFLICT (list_id, week, status) DO UPDATE SET members = members + 1;"""


def _sqlite_left(member: str) -> str:
    """Count the membership `member` (OLD) out, if its subscriber is still there."""
    return f"""
        UPDATE audience_joins SET members = members - 1
        WHERE list_id = {member}.list_id AND week = {_SQLITE_WEEK.format(member + ".created_at")}
        AND status = (SELECT status FROM subscribers WHERE id = {member}.subscriber_id);"""


def _sqlite_memberships(subscriber: str, status: str, change: str) -> str:
    """Add `change` to the counts of the subscriber's memberships under `status`."""
    return f"""
        INSERT INTO audience_joins (list_id, week, status, members)
        SELECT list_id, {_SQLITE_WEEK.format("created_at")}, {status}, {change}
        FROM memberships WHERE subscriber_id = {subscriber}.id
        ON CONFLICT (list_id, week, status) DO UPDATE SET members = members + {change};"""


_SQLITE = [
    # Not while an import holds a row in audience_bulk: it counts its memberships in at once.
    "CREATE TRIGGER audience_member_joined AFTER INSERT ON memberships "
    "WHEN NOT EXISTS (SELECT 1 FROM audience_bulk) "
    f"BEGIN {_sqlite_joined('NEW')} END",
    "CREATE TRIGGER audience_member_left AFTER DELETE ON memberships "
    f"BEGIN {_sqlite_left('OLD')} END",
    "CREATE TRIGGER audience_member_moved AFTER UPDATE OF list_id, created_at ON memberships "
    f"BEGIN {_sqlite_left('OLD')} {_sqlite_joined('NEW')} END",
    "CREATE TRIGGER audience_status_changed AFTER UPDATE OF status ON subscribers "
    "WHEN OLD.status IS NOT NEW.status BEGIN "
    f"{_sqlite_memberships('OLD', 'OLD.status', '-1')} "
    f"{_sqlite_memberships('NEW', 'NEW.status', '1')} END",
    "CREATE TRIGGER audience_subscriber_deleted BEFORE DELETE ON subscribers "
    f"BEGIN {_sqlite_memberships('OLD', 'OLD.status', '-1')} END",
]


def _postgresql_trigger(name: str, when: str, body: str, returns: str = "NULL") -> list[str]:
    """A PL/pgSQL function running `body`, and the trigger `when` that calls it."""
    return [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {body} RETURN {returns}; END $$",
        f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION {name}()",
    ]


# Counts are upserted (or, counting out, updated) in key order, so that two transactions
# touching the same counts lock them in one order.
_UPSERT = """ GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (list_id, week, status)
    DO UPDATE SET members = audience_joins.members + EXCLUDED.members;"""

_POSTGRESQL = [
    """
    CREATE FUNCTION audience_week(moment timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE AS $$ SELECT date_trunc('week', moment AT TIME ZONE 'UTC')::date $$
    """,
    *_postgresql_trigger(
        "audience_members_joined",
        "AFTER INSERT ON memberships REFERENCING NEW TABLE AS joined FOR EACH STATEMENT",
        """INSERT INTO audience_joins (list_id, week, status, members)
        SELECT j.list_id, audience_week(j.created_at), s.status, count(*)
        FROM joined j JOIN subscribers s ON s.id = j.subscriber_id"""
        + _UPSERT,
    ),
    *_postgresql_trigger(
        "audience_members_left",
        "AFTER DELETE ON memberships REFERENCING OLD TABLE AS gone FOR EACH STATEMENT",
        """UPDATE audience_joins a SET members = a.members - g.members FROM (
            SELECT l.list_id, audience_week(l.created_at) AS week, s.status, count(*) AS members
            FROM gone l JOIN subscribers s ON s.id = l.subscriber_id
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ) g
        WHERE a.list_id = g.list_id AND a.week = g.week AND a.status = g.status;""",
    ),
    *_postgresql_trigger(
        "audience_member_moved",
        "AFTER UPDATE OF list_id, created_at ON memberships FOR EACH ROW",
        """UPDATE audience_joins a SET members = a.members - 1 FROM subscribers s
        WHERE s.id = OLD.subscriber_id AND a.list_id = OLD.list_id
        AND a.week = audience_week(OLD.created_at) AND a.status = s.status;
        INSERT INTO audience_joins (list_id, week, status, members)
        SELECT NEW.list_id, audience_week(NEW.created_at), s.status, 1
        FROM subscribers s WHERE s.id = NEW.subscriber_id"""
        + _UPSERT,
    ),
    *_postgresql_trigger(
        "audience_statuses_changed",
        "AFTER UPDATE ON subscribers REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT",
        """WITH changed AS (
            SELECT o.id, o.status AS old, n.status AS new
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE n.status IS DISTINCT FROM o.status
        )
        INSERT INTO audience_joins (list_id, week, status, members)
        SELECT list_id, week, status, sum(members) FROM (
            SELECT m.list_id, audience_week(m.created_at) AS week, c.old AS status, -1 AS members
            FROM changed c JOIN memberships m ON m.subscriber_id = c.id
            UNION ALL
            SELECT m.list_id, audience_week(m.created_at), c.new, 1
            FROM changed c JOIN memberships m ON m.subscriber_id = c.id
        ) moves"""
        + _UPSERT,
    ),
    *_postgresql_trigger(
        "audience_subscriber_deleted",
        "BEFORE DELETE ON subscribers FOR EACH ROW",
        """UPDATE audience_joins a SET members = a.members - 1 FROM memberships m
        WHERE m.subscriber_id = OLD.id AND a.list_id = m.list_id
        AND a.week = audience_week(m.created_at) AND a.status = OLD.status;""",
        returns="OLD",
    ),
]

_SQLITE_DROP = [
    "audience_member_joined",
    "audience_member_left",
    "audience_member_moved",
    "audience_status_changed",
    "audience_subscriber_deleted",
]
_POSTGRESQL_DROP = [
    ("audience_members_joined", "memberships"),
    ("audience_members_left", "memberships"),
    ("audience_member_moved", "memberships"),
    ("audience_statuses_changed", "subscribers"),
    ("audience_subscriber_deleted", "subscribers"),
]


def upgrade() -> None:
    op.create_table(
        "audience_joins",
        sa.Column("list_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["lists.id"],
            name=op.f("fk_audience_joins_list_id_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "week", "status", name=op.f("pk_audience_joins")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audience_bulk",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_bulk")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in _SQLITE if sqlite else _POSTGRESQL:
        op.execute(statement)
    week = _SQLITE_WEEK.format("m.created_at") if sqlite else "audience_week(m.created_at)"
    op.execute(
        "INSERT INTO audience_joins (list_id, week, status, members) "
        f"SELECT m.list_id, {week}, s.status, count(*) "
        "FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _SQLITE_DROP:
            op.execute(f"DROP TRIGGER {name}")
    else:
        for name, table in _POSTGRESQL_DROP:
            op.execute(f"DROP TRIGGER {name} ON {table}")
            op.execute(f"DROP FUNCTION {name}()")
        op.execute("DROP FUNCTION audience_week(timestamptz)")
    op.drop_table("audience_bulk")
    op.drop_table("audience_joins")
