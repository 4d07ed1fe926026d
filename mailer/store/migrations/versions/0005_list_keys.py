"""list names compare case-insensitively: a unique case-folded key; lists that differed only
by case are merged into the oldest of them, which is said on stderr

Revision ID: 0005_list_keys
Revises: 0004_subscriber_language
Create Date: 2026-12-01 22:00:00.000000
"""

from __future__ import annotations

import sys

import sqlalchemy as sa
from alembic import op

revision = "0005_list_keys"
down_revision = "0004_subscriber_language"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Added in place, not by copying the table as SQLite's batch mode does: dropping the old
    # `lists` would cascade to every membership. SQLite adds a NOT NULL column only with a
    # default; every insert gives the key.
    op.add_column(
        "lists",
        sa.Column("name_key", sa.String(length=300), nullable=False, server_default=""),
    )
    connection = op.get_bind()
    kept: dict[str, tuple[int, str]] = {}
    for list_id, name in connection.execute(sa.text("SELECT id, name FROM lists ORDER BY id")):
        key = name.casefold()
        if key in kept:
            _merge(connection, list_id, name, *kept[key])
            continue
        kept[key] = (list_id, name)
        connection.execute(
            sa.text("UPDATE lists SET name_key = :key WHERE id = :id"), {"key": key, "id": list_id}
        )
    if connection.dialect.name != "sqlite":
        op.alter_column("lists", "name_key", server_default=None)
    op.create_index("uq_lists_name_key", "lists", ["name_key"], unique=True)


def _merge(connection: sa.Connection, duplicate: int, name: str, into: int, kept: str) -> None:
    """Members and campaigns of a list whose name differs from an older one's only by case
    move to the older list; the newer one goes."""
    moved = {"duplicate": duplicate, "into": into}
    connection.execute(
        sa.text(
            "INSERT INTO memberships (subscriber_id, list_id, created_at) "
            "SELECT subscriber_id, :into, created_at FROM memberships m WHERE list_id = :duplicate "
            "AND NOT EXISTS (SELECT 1 FROM memberships k "
            "WHERE k.list_id = :into AND k.subscriber_id = m.subscriber_id)"
        ),
        moved,
    )
    connection.execute(sa.text("DELETE FROM memberships WHERE list_id = :duplicate"), moved)
    connection.execute(
        sa.text("UPDATE campaigns SET list_id = :into WHERE list_id = :duplicate"), moved
    )
    connection.execute(sa.text("DELETE FROM lists WHERE id = :duplicate"), moved)
    print(
        f"The lists '{name}' and '{kept}' differ only by case, and list names now compare "
        f"without it: the members and campaigns of '{name}' are now those of '{kept}'.",
        file=sys.stderr,
    )


def downgrade() -> None:
    # Lists merged by the upgrade stay merged: which members came from which is not kept.
    op.drop_index("uq_lists_name_key", "lists")
    op.drop_column("lists", "name_key")  # SQLite 3.35 and later drop a column in place
