"""analytics: metric snapshots of published targets and of accounts

post_targets gains `next_metrics_at` (when the platform's figures are next read, null
once the schedule is done) with a partial index, so the collector's look for due readings
costs the due rows only. `metric_snapshots` holds one row per target per reading,
`account_metric_snapshots` one per account per day.

Targets already published get no reading: their schedule would start in the past.

Revision ID: 0012_analytics
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_analytics"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
METRICS_PENDING = "next_metrics_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("post_targets") as batch:
        batch.add_column(sa.Column("next_metrics_at", TS, nullable=True))
    op.create_index(
        "ix_post_targets_metrics_due",
        "post_targets",
        ["next_metrics_at"],
        postgresql_where=sa.text(METRICS_PENDING),
        sqlite_where=sa.text(METRICS_PENDING),
    )
    op.create_table(
        "metric_snapshots",
        sa.Column("id", BIGINT_ID, nullable=False),
        sa.Column("target_id", BIGINT_ID, nullable=False),
        sa.Column("account_id", BIGINT_ID, nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("collected_at", TS, nullable=False),
        sa.Column("age_seconds", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=True)
            for name in ("views", "likes", "comments", "shares", "impressions", "clicks", "saves")
        ),
        sa.Column("raw", JSON, nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["post_targets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_metric_snapshots_target_collected", "metric_snapshots", ["target_id", "collected_at"]
    )
    op.create_index(
        "ix_metric_snapshots_account_collected", "metric_snapshots", ["account_id", "collected_at"]
    )
    op.create_index("ix_metric_snapshots_collected", "metric_snapshots", ["collected_at"])
    op.create_table(
        "account_metric_snapshots",
        sa.Column("id", BIGINT_ID, nullable=False),
        sa.Column("account_id", BIGINT_ID, nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("collected_at", TS, nullable=False),
        sa.Column("followers", sa.BigInteger(), nullable=True),
        sa.Column("followers_change", sa.BigInteger(), nullable=True),
        sa.Column("following", sa.BigInteger(), nullable=True),
        sa.Column("posts_count", sa.BigInteger(), nullable=True),
        sa.Column("raw", JSON, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_account_metric_snapshots_account_collected",
        "account_metric_snapshots",
        ["account_id", "collected_at"],
    )
    op.create_index(
        "ix_account_metric_snapshots_collected", "account_metric_snapshots", ["collected_at"]
    )


def downgrade() -> None:
    op.drop_table("account_metric_snapshots")
    op.drop_table("metric_snapshots")
    op.drop_index("ix_post_targets_metrics_due", table_name="post_targets")
    with op.batch_alter_table("post_targets") as batch:
        batch.drop_column("next_metrics_at")
