"""prepare ahead: when a target's preparation is due, its state and fencing token

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
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


def downgrade() -> None:
    op.drop_index("ix_post_targets_prepare_due", table_name="post_targets")
    for column in ("prepared_at", "prepare_token", "prepare_state", "prepare_due_at"):
        op.drop_column("post_targets", column)
