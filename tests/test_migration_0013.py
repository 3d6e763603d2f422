"""Migration 0013 (AI credits) and the credits' SQL on SQLite, which `crier dev` uses: the
row for the month is made on first use, the conditional update refuses an overspend, and
the migration goes down again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.migrations import alembic_config, upgrade_database
from app.services.ai_credits import ai_credits, give_back, take_credits

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_credits_on_sqlite_and_the_way_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crier.sqlite3'}"
    upgrade_database(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organisations (id, name, created_at) VALUES (1, 'o', '2026-01-01')")
        )
    with Session(engine) as session:
        assert take_credits(session, 1, 2, 3, NOW) == 1
        with pytest.raises(DomainError) as refused:
            take_credits(session, 1, 2, 3, NOW)
        assert (refused.value.status, refused.value.code) == (402, "insufficient_credits")
        give_back(session, 1, 1, NOW)
        assert ai_credits(session, 1, NOW, limit=3)["used"] == 1
        assert take_credits(session, 1, 2, 3, NOW) == 0
    command.downgrade(alembic_config(url), "0009")
    assert "ai_credit_usage" not in inspect(create_engine(url)).get_table_names()
