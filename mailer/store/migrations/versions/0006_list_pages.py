"""what subscribers see of a list: a title, a description, public or private, archived

Revision ID: 0006_list_pages
Revises: 0005_list_keys
Create Date: 2026-12-01 22:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.store.schema

revision = "0006_list_pages"
down_revision = "0005_list_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place (see 0005_list_keys: copying `lists` on SQLite would cascade to memberships).
    op.add_column("lists", sa.Column("title", sa.String(200), nullable=False, server_default=""))
    op.add_column("lists", sa.Column("description", sa.Text(), nullable=False, server_default=""))
    op.add_column(
        "lists", sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column(
        "lists",
        sa.Column("archived_at", mailer.store.schema.UtcDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    for column in ("archived_at", "public", "description", "title"):
        op.drop_column("lists", column)
