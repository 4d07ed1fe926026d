"""click counts per link and campaign ([analytics] clicks), never per person

Revision ID: 0012_click_counts
Revises: 0011_bounce_lookup
Create Date: 2026-12-01 22:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_click_counts"
down_revision = "0011_bounce_lookup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_links",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("clicks_apart", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_links_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_links")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "uq_campaign_links_campaign_id_url_hash",
        "campaign_links",
        ["campaign_id", "url_hash"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_campaign_links_campaign_id_url_hash", table_name="campaign_links")
    op.drop_table("campaign_links")
