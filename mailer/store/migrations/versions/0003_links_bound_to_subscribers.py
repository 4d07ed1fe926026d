"""ids never reused, links bound to their subscriber, suppression hashes keyed

Revision ID: 0003_links_bound_to_subscribers
Revises: 0002
Create Date: 2026-12-01 21:30:00.000000

On SQLite, subscribers, lists and campaigns become AUTOINCREMENT tables (a rebuild: SQLite cannot
add the keyword to a table), so that an id once given is never given again. Every subscriber gets
a random `link_secret`, which the MAC of their links covers from now on. Suppression rows made
so far hold an unkeyed SHA-256 and are marked so (`keyed` false): the addresses are gone, so they
cannot be re-keyed, and mailer checks that form too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_links_bound_to_subscribers"
down_revision = "0002"
branch_labels = None
depends_on = None

REBUILT = ("lists", "subscribers", "campaigns")
# A different random value for every row, from the database's own strong source.
RANDOM_HEX = {
    "sqlite": "(lower(hex(randomblob(16))))",
    "postgresql": "replace(gen_random_uuid()::text, '-', '')",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    link_secret = sa.Column(
        "link_secret",
        sa.String(length=32),
        nullable=False,
        server_default=sa.text(RANDOM_HEX[dialect]),
    )
    if dialect == "sqlite":
        for table in REBUILT:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ) as batch_op:
                if table == "subscribers":
                    # The copy into the rebuilt table takes the default, row by row. It stays
                    # on SQLite (removing it would copy the table once more); mailer always
                    # writes the value itself.
                    batch_op.add_column(link_secret)
    else:
        op.add_column("subscribers", link_secret)
        op.alter_column("subscribers", "link_secret", server_default=None)
    with op.batch_alter_table("suppressions") as batch_op:
        batch_op.add_column(
            sa.Column("keyed", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("suppressions") as batch_op:
        batch_op.drop_column("keyed")
    if dialect == "sqlite":
        for table in REBUILT:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": False}
            ) as batch_op:
                if table == "subscribers":
                    batch_op.drop_column("link_secret")
    else:
        op.drop_column("subscribers", "link_secret")
