"""providers' webhook events, and the single-use tokens of signed webhooks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailer.store.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=True),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("email_hash", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("occurred_at", mailer.store.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("received_at", mailer.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("uq_events_provider_event_id", ["provider", "event_id"], unique=True)
        batch_op.create_index("ix_events_subscriber_id", ["subscriber_id"], unique=False)
        batch_op.create_index("ix_events_email_hash", ["email_hash"], unique=False)

    op.create_table(
        "webhook_tokens",
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", mailer.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "token_hash", name=op.f("pk_webhook_tokens")),
    )
    with op.batch_alter_table("webhook_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_tokens_received_at", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_tokens_received_at")

    op.drop_table("webhook_tokens")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_email_hash")
        batch_op.drop_index("ix_events_subscriber_id")
        batch_op.drop_index("uq_events_provider_event_id")

    op.drop_table("events")
