"""AI caption credits: what each organisation used per calendar month

One row per organisation and month (`YYYY-MM`, UTC); `used` only rises by a conditional
UPDATE (`used + n <= limit`), so concurrent caption requests never spend past the limit.
Each taking and giving back is also logged with its moment, for a period's summary.

Revision ID: 0013_ai_credits
Revises: 0012_analytics
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_ai_credits"
down_revision = "0012_analytics"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ai_credit_usage",
        sa.Column("organisation_id", BIGINT_ID, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organisation_id", "period"),
    )
    op.create_table(
        "ai_credit_events",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("organisation_id", BIGINT_ID, nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE"),
    )
    op.create_index(
        "ix_ai_credit_events_org_created", "ai_credit_events", ["organisation_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("ai_credit_events")
    op.drop_table("ai_credit_usage")
