"""webhooks outbox, campaigns, drafts and the API contract's post and media fields

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", BIGINT_ID, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("events", JSON, nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", TS, nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("last_failure_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_webhook_endpoints_organisation_id", "webhook_endpoints", ["organisation_id"]
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", BIGINT_ID, nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_events_organisation_id", "webhook_events", ["organisation_id"])
    op.create_index("ix_webhook_events_created", "webhook_events", ["created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["webhook_events.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])
    op.create_index(
        "ix_webhook_deliveries_endpoint_created",
        "webhook_deliveries",
        ["endpoint_id", "created_at"],
    )
    op.create_index(
        "ix_webhook_deliveries_open_due",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'delivering')"),
        sqlite_where=sa.text("status IN ('pending', 'delivering')"),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", BIGINT_ID, nullable=False),
        sa.Column("organisation_id", BIGINT_ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("color", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_campaigns_organisation_id", "campaigns", ["organisation_id"])
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("campaign_id", BIGINT_ID, nullable=True))
        batch.add_column(sa.Column("cover_photo", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("published_at", TS, nullable=True))
        batch.create_foreign_key(
            "fk_posts_campaign_id_campaigns",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index(
        "ix_posts_org_status_created", "posts", ["organisation_id", "status", "created_at"]
    )
    op.create_index("ix_posts_org_updated", "posts", ["organisation_id", "updated_at"])
    op.create_index("ix_posts_org_published", "posts", ["organisation_id", "published_at"])
    op.create_index("ix_posts_org_campaign", "posts", ["organisation_id", "campaign_id"])
    op.create_index("ix_post_targets_platform_post", "post_targets", ["platform", "post_id"])
    op.add_column(
        "post_targets", sa.Column("platform_delete_status", sa.String(length=16), nullable=True)
    )
    op.add_column("post_targets", sa.Column("platform_delete_error", sa.Text(), nullable=True))
    op.add_column("post_targets", sa.Column("platform_deleted_at", TS, nullable=True))
    op.add_column(
        "media", sa.Column("status", sa.String(length=16), nullable=False, server_default="ready")
    )
    op.add_column("media", sa.Column("status_reason", sa.Text(), nullable=True))
    op.add_column("media", sa.Column("source_url", sa.Text(), nullable=True))
    op.create_index("ix_media_org_kind_created", "media", ["organisation_id", "kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_media_org_kind_created", table_name="media")
    op.drop_column("media", "source_url")
    op.drop_column("media", "status_reason")
    op.drop_column("media", "status")
    op.drop_index("ix_post_targets_platform_post", table_name="post_targets")
    op.drop_column("post_targets", "platform_deleted_at")
    op.drop_column("post_targets", "platform_delete_error")
    op.drop_column("post_targets", "platform_delete_status")
    for name in (
        "ix_posts_org_campaign",
        "ix_posts_org_published",
        "ix_posts_org_updated",
        "ix_posts_org_status_created",
    ):
        op.drop_index(name, table_name="posts")
    with op.batch_alter_table("posts") as batch:
        batch.drop_constraint("fk_posts_campaign_id_campaigns", type_="foreignkey")
        batch.drop_column("published_at")
        batch.drop_column("cover_photo")
        batch.drop_column("campaign_id")
    op.drop_table("campaigns")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
