"""subscribers carry a language: an issue in a language that has translations goes to its readers

Revision ID: 0004_subscriber_language
Revises: 0003_links_bound_to_subscribers
Create Date: 2026-12-01 21:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_subscriber_language"
down_revision = "0003_links_bound_to_subscribers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty: the newsletter's own language, whatever config.toml says it is now.
    op.add_column(
        "subscribers",
        sa.Column("language", sa.String(length=35), nullable=False, server_default=""),
    )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("language")
