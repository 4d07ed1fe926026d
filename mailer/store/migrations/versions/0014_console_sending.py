"""the console's sending desk: who wrote each commentary, approvals, saved test addresses, and
history by time for a campaign's report

Revision ID: 0014_console_sending
Revises: 0013_delivery_batches
Create Date: 2026-12-02 01:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.store.schema

revision = "0014_console_sending"
down_revision = "0013_delivery_batches"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = mailer.store.schema.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_index("ix_history_at", "history", ["at"])
    op.create_table(
        "commentary_writers",
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("saved_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("slug", "email_key", name=op.f("pk_commentary_writers")),
    )
    op.create_table(
        "approvals",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=320), nullable=False),
        sa.Column("approved_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_approvals_slug_version", "approvals", ["slug", "version"])
    op.create_table(
        "test_addresses",
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("added_by", sa.String(length=320), nullable=False),
        sa.Column("added_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("email_key", name=op.f("pk_test_addresses")),
    )


def downgrade() -> None:
    op.drop_table("test_addresses")
    op.drop_index("ix_approvals_slug_version", table_name="approvals")
    op.drop_table("approvals")
    op.drop_table("commentary_writers")
    op.drop_index("ix_history_at", table_name="history")
