"""post_targets: an index for the sweeper's look at stuck preparations

Without it each sweep read the whole table (a million scheduled rows: 100 ms a sweep).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

IN_FLIGHT = "prepare_state IN ('pending', 'preparing')"


def upgrade() -> None:
    op.create_index(
        "ix_post_targets_prepare_in_flight",
        "post_targets",
        ["prepared_at"],
        postgresql_where=sa.text(IN_FLIGHT),
        sqlite_where=sa.text(IN_FLIGHT),
    )


def downgrade() -> None:
    op.drop_index("ix_post_targets_prepare_in_flight", table_name="post_targets")
