"""a delivery remembers the label of the batch it went in, to ask the service about it later

Revision ID: 0013_delivery_batches
Revises: 0012_click_counts
Create Date: 2026-12-02 01:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_delivery_batches"
down_revision = "0012_click_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("batch", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("batch")
