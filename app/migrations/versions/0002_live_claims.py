"""live claims: claim owner, worker losses, worker heartbeats, refresh health

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column("post_targets", sa.Column("claim_owner", sa.String(length=200), nullable=True))
    op.add_column(
        "post_targets",
        sa.Column("worker_losses", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "accounts",
        sa.Column("refresh_failures", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("accounts", sa.Column("last_refresh_error", sa.Text(), nullable=True))
    op.create_table(
        "worker_heartbeats",
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held", JSON, nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )
    op.create_table(
        "service_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("service_state")
    op.drop_table("worker_heartbeats")
    op.drop_column("accounts", "last_refresh_error")
    op.drop_column("accounts", "refresh_failures")
    op.drop_column("post_targets", "worker_losses")
    op.drop_column("post_targets", "claim_owner")
