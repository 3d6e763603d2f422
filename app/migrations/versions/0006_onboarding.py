"""onboarding: profiles, scoped API keys, connect links

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

OWNED = ("accounts", "media", "posts", "webhook_endpoints", "campaigns")


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("id", BIGINT_ID, nullable=False),
        sa.Column("organisation_id", BIGINT_ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("external_ref", sa.String(length=200), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_profiles_organisation_id", "profiles", ["organisation_id"])
    # Batch mode: SQLite (`crier dev`) cannot add a foreign key in place.
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("profile_id", BIGINT_ID, nullable=True))
            batch.create_foreign_key(
                f"fk_{table}_profile_id", "profiles", ["profile_id"], ["id"], ondelete="SET NULL"
            )
        op.create_index(f"ix_{table}_profile_id", table, ["profile_id"])
    with op.batch_alter_table("api_keys") as batch:
        # Every key that exists today is its organisation's admin key.
        batch.add_column(sa.Column("scopes", JSON, nullable=False, server_default='["admin"]'))
        batch.add_column(sa.Column("profile_id", BIGINT_ID, nullable=True))
        batch.create_foreign_key(
            "fk_api_keys_profile_id", "profiles", ["profile_id"], ["id"], ondelete="CASCADE"
        )
    op.create_index("ix_api_keys_profile_id", "api_keys", ["profile_id"])
    op.create_table(
        "connect_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", BIGINT_ID, nullable=False),
        sa.Column("profile_id", BIGINT_ID, nullable=True),
        sa.Column("account_id", BIGINT_ID, nullable=True),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("redirect_url", sa.Text(), nullable=False),
        sa.Column("client_state", sa.String(length=500), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("pkce_verifier_encrypted", sa.Text(), nullable=True),
        sa.Column("state_nonce", sa.String(length=64), nullable=True),
        sa.Column("pending_choices_encrypted", sa.Text(), nullable=True),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("consumed_at", TS, nullable=True),
        sa.Column("result", sa.String(length=64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_connect_links_organisation_id", "connect_links", ["organisation_id"])


def downgrade() -> None:
    op.drop_table("connect_links")
    op.drop_index("ix_api_keys_profile_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("fk_api_keys_profile_id", type_="foreignkey")
        batch.drop_column("profile_id")
        batch.drop_column("scopes")
    for table in OWNED:
        op.drop_index(f"ix_{table}_profile_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_profile_id", type_="foreignkey")
            batch.drop_column("profile_id")
    op.drop_table("profiles")
