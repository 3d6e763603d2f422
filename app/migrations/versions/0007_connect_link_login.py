"""connect links: the sign-in a link goes through (Instagram by Facebook Login)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: every link made before this is the platform's own login.
    with op.batch_alter_table("connect_links") as batch:
        batch.add_column(sa.Column("login", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connect_links") as batch:
        batch.drop_column("login")
