"""instance apps: Crier's app per Mastodon instance; connect links name the instance

Mastodon has no central app registry: Crier registers itself on each instance the first
time an account of that instance connects, and keeps the client id and (encrypted)
secret for the next ones, with the limits the instance reports. A connect link keeps
the instance its user named until the consent comes back.

Revision ID: 0015_bluesky_mastodon
Revises: 0014_threads
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015_bluesky_mastodon"
down_revision = "0014_threads"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "instance_apps",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(20), nullable=False),
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("limits", JSON, nullable=True),
        sa.Column("limits_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("platform", "instance", "redirect_uri"),
    )
    op.add_column("connect_links", sa.Column("instance", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("connect_links", "instance")
    op.drop_table("instance_apps")
