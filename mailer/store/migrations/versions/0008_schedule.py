"""scheduled campaigns, and what the scheduler last did

Revision ID: 0008_schedule
Revises: 0007_subscriber_search
Create Date: 2026-12-01 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.store.schema

revision = "0008_schedule"
down_revision = "0007_subscriber_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scheduled_at", mailer.store.schema.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_campaigns_status_scheduled_at", ["status", "scheduled_at"], unique=False
        )
    op.create_table(
        "scheduler_marks",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("at", mailer.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_marks")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_marks")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_campaigns_status_scheduled_at")
        batch_op.drop_column("scheduled_at")
