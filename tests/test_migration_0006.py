"""Migration 0006 (onboarding): keys that existed before scopes become admin keys, and the
migration goes down again. On SQLite, which `crier dev` uses (batch mode)."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from app.migrations import alembic_config, upgrade_database


def test_existing_keys_become_admin_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crier.sqlite3'}"
    upgrade_database(url, "0005")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organisations (id, name, created_at) VALUES (1, 'o', '2026-01-01')")
        )
        conn.execute(
            text(
                "INSERT INTO api_keys (organisation_id, name, key_hash, prefix, created_at) "
                "VALUES (1, 'old', :h, 'crier_abc', '2026-01-01')"
            ),
            {"h": "0" * 64},
        )
    upgrade_database(url)
    with engine.begin() as conn:
        scopes, profile = conn.execute(text("SELECT scopes, profile_id FROM api_keys")).one()
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    assert json.loads(scopes) == ["admin"] and profile is None
    assert {"profiles", "connect_links"} <= tables
    command.downgrade(alembic_config(url), "0005")
    with engine.begin() as conn:
        columns = {r[1] for r in conn.execute(text("PRAGMA table_info(api_keys)"))}
    assert "scopes" not in columns and "profile_id" not in columns
    engine.dispose()
