"""weekly digests: a frequency per subscriber and list, and a kind per campaign

Revision ID: 0009_digests
Revises: 0008_schedule
Create Date: 2026-12-01 22:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.store.schema

revision = "0009_digests"
down_revision = "0008_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("frequency", sa.String(length=10), nullable=False, server_default="immediate")
        )
        batch_op.add_column(
            sa.Column(
                "frequency_since", mailer.store.schema.UtcDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=10), nullable=False, server_default="issue")
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("frequency_since")
        batch_op.drop_column("frequency")
