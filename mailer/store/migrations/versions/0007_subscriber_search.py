"""indexes of subscribers' lower-cased names and of their statuses, for the console's search

Revision ID: 0007_subscriber_search
Revises: 0006_list_pages
Create Date: 2026-12-01 22:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_subscriber_search"
down_revision = "0006_list_pages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_subscribers_name_lower", "subscribers", [sa.text("lower(name)"), "email_key"]
    )
    op.create_index("ix_subscribers_status_email_key", "subscribers", ["status", "email_key"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_status_email_key", "subscribers")
    op.drop_index("ix_subscribers_name_lower", "subscribers")
