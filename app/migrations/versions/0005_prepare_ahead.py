"""prepare ahead: when a target's preparation is due, its state and fencing token

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PENDING = (
    "prepare_due_at IS NOT NULL AND prepare_state IS NULL AND status IN ('scheduled', 'queued')"
)


def upgrade() -> None:
    op.add_column("post_targets", sa.Column("prepare_due_at", sa.DateTime(timezone=True)))
    op.add_column("post_targets", sa.Column("prepare_state", sa.String(length=16)))
    op.add_column("post_targets", sa.Column("prepare_token", sa.String(length=36)))
    op.add_column("post_targets", sa.Column("prepared_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_post_targets_prepare_due",
        "post_targets",
        ["prepare_due_at"],
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )

    op.create_table(
        "discarded_handles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column(
            "handle",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_discarded_handles_account_id", "discarded_handles", ["account_id"])
    op.create_index(
        "ix_discarded_handles_pending",
        "discarded_handles",
        ["next_try_at"],
        postgresql_where=sa.text("finished_at IS NULL"),
        sqlite_where=sa.text("finished_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("discarded_handles")
    op.drop_index("ix_post_targets_prepare_due", table_name="post_targets")
    for column in ("prepared_at", "prepare_token", "prepare_state", "prepare_due_at"):
        op.drop_column("post_targets", column)
