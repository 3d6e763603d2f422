"""profile boundary: profile keys lose `admin`; Idempotency-Keys are per profile

A key restricted to a profile used to default to `admin`, which opened the organisation's
own routes (keys, profiles, audit log) to it. Such rows get every scope a profile key may
hold instead: what they could do inside their profile, nothing organisation-wide. The
API enforces the same at every request (app.api.scopes.effective_scopes); rewriting the
rows makes GET /keys and /me say what the keys really hold.

idempotency_records gains the profile of the key that sent the request: the same
Idempotency-Key from another profile is another request. Records of organisation keys
keep a null profile and behave as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
# app.api.scopes.PROFILE_SCOPES when this was written (a migration does not follow code).
PROFILE_SCOPES = ("accounts:write", "media:write", "posts:read", "posts:write", "webhooks:write")

api_keys = sa.table(
    "api_keys",
    sa.column("id", BIGINT_ID),
    sa.column("scopes", JSON),
    sa.column("profile_id", BIGINT_ID),
)


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(api_keys.c.id, api_keys.c.scopes).where(api_keys.c.profile_id.is_not(None))
    ).all()
    for key_id, scopes in rows:
        if "admin" in (scopes or []):
            held = sorted((set(scopes) - {"admin"}) | set(PROFILE_SCOPES))
            connection.execute(
                sa.update(api_keys).where(api_keys.c.id == key_id).values(scopes=held)
            )

    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("profile_id", BIGINT_ID, nullable=True))
        batch.create_foreign_key(
            "fk_idempotency_records_profile_id",
            "profiles",
            ["profile_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.drop_constraint("uq_idempotency_org_key", type_="unique")
    op.create_index(
        "uq_idempotency_org_profile_key",
        "idempotency_records",
        ["organisation_id", sa.text("coalesce(profile_id, 0)"), "key"],
        unique=True,
    )


def downgrade() -> None:
    # Profile keys keep their narrower scopes (giving them `admin` back would reopen the
    # hole). Records of profile keys are only replay caches: they go.
    op.drop_index("uq_idempotency_org_profile_key", table_name="idempotency_records")
    op.execute("DELETE FROM idempotency_records WHERE profile_id IS NOT NULL")
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_constraint("fk_idempotency_records_profile_id", type_="foreignkey")
        batch.drop_column("profile_id")
        batch.create_unique_constraint("uq_idempotency_org_key", ["organisation_id", "key"])
