"""threads and first comments: post_target_steps

What follows a target's post on its platform, one row per item in order: the first
comment (position 0) and the thread's items (1..n). Each row keeps the item's attempt
handle, when its request began, and the platform's id and URL once it is live, so a retry
resumes at the first item not yet on the platform.

Revision ID: 0014_threads
Revises: 0013_ai_credits
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014_threads"
down_revision = "0013_ai_credits"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "post_target_steps",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "target_id",
            BIGINT_ID,
            sa.ForeignKey("post_targets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reply_to", sa.String(255)),
        sa.Column("platform_id", sa.String(255)),
        sa.Column("url", sa.Text()),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("handle", JSON),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("target_id", "position", name="uq_post_target_steps_position"),
    )


def downgrade() -> None:
    op.drop_table("post_target_steps")
