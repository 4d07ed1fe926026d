"""the send log found by Message-ID: a bounce by mail names the message, not the subscriber

Revision ID: 0011_bounce_lookup
Revises: 0010_staff
Create Date: 2026-12-01 22:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011_bounce_lookup"
down_revision = "0010_staff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
