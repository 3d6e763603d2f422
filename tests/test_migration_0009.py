"""Migration 0009 (profile boundary): a profile key stored with `admin` is narrowed to
the scopes a profile key may hold; Idempotency-Keys become per (organisation, profile);
and the migration goes down again. On SQLite, which `crier dev` uses (batch mode)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from app.api.scopes import PROFILE_SCOPES, granted
from app.migrations import alembic_config, upgrade_database

# The scopes a profile key could hold when 0009 was written (a migration does not follow
# code: later scopes, such as `ai`, are not in the rows it rewrote).
PROFILE_SCOPES_AT_0009 = (
    "accounts:write",
    "media:write",
    "posts:read",
    "posts:write",
    "webhooks:write",
)


def test_profile_keys_lose_admin_and_idempotency_keys_are_per_profile(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crier.sqlite3'}"
    upgrade_database(url, "0008")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organisations (id, name, created_at) VALUES (1, 'o', '2026-01-01')")
        )
        for profile in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO profiles (id, organisation_id, name, metadata, created_at, "
                    "updated_at) VALUES (:p, 1, 'p', '{}', '2026-01-01', '2026-01-01')"
                ),
                {"p": profile},
            )
        for key_id, scopes, profile in (
            (1, ["admin"], None),
            (2, ["admin"], 1),
            (3, ["posts:read", "admin"], 1),
            (4, ["posts:read"], 1),
        ):
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, organisation_id, name, key_hash, prefix, "
                    "created_at, scopes, profile_id) VALUES (:i, 1, 'k', :h, 'crier_abc', "
                    "'2026-01-01', :s, :p)"
                ),
                {"i": key_id, "h": str(key_id) * 64, "s": json.dumps(scopes), "p": profile},
            )
    upgrade_database(url)
    with engine.begin() as conn:
        rows = dict(conn.execute(text("SELECT id, scopes FROM api_keys ORDER BY id")).all())
    assert json.loads(rows[1]) == ["admin"]  # an organisation key keeps admin
    assert json.loads(rows[2]) == sorted(PROFILE_SCOPES_AT_0009)
    assert json.loads(rows[3]) == sorted(PROFILE_SCOPES_AT_0009)
    # ... which still grant all a profile key may do today (`posts:write` includes `ai`).
    assert granted(json.loads(rows[2])) == granted(PROFILE_SCOPES)
    assert json.loads(rows[4]) == ["posts:read"]

    insert = text(
        "INSERT INTO idempotency_records (organisation_id, profile_id, key, request_hash, "
        "post_id, created_at) VALUES (1, :p, 'k1', 'h', :post, '2026-01-01')"
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO posts (id, organisation_id, content, scheduled_at, publish_now, "
                "timezone, platform_content, media_ids, status, created_at, updated_at) VALUES "
                "('p1', 1, 'c', '2026-01-01', 0, 'UTC', '{}', '[]', 'scheduled', "
                "'2026-01-01', '2026-01-01')"
            )
        )
        for profile in (None, 1, 2):  # one per scope
            conn.execute(insert, {"p": profile, "post": "p1"})
    for profile in (None, 1):  # and only one
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"p": profile, "post": "p1"})

    command.downgrade(alembic_config(url), "0008")
    with engine.begin() as conn:
        columns = {r[1] for r in conn.execute(text("PRAGMA table_info(idempotency_records)"))}
        left = conn.execute(text("SELECT count(*) FROM idempotency_records")).scalar()
    assert "profile_id" not in columns and left == 1
    engine.dispose()
