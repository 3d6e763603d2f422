"""A pooled connection the server let go is replaced at checkout, without a round trip
for the ones it kept."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from app.config import Settings
from app.db import (
    Database,
    autocommit_single_statements,
    closed_by_server,
    driver_cursor,
    postgresql_driver,
    release_autocommit,
)


def _backend_pid(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(database_url: str, pid: int) -> None:
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        # Waits (up to 5 s) until the backend has gone and its client can tell.
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def test_a_connection_the_server_ended_is_replaced_at_checkout(database_url: str) -> None:
    database = Database(Settings(database_url=database_url), pool_size=1)
    try:
        with database.engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            pooled = conn.connection.dbapi_connection
        assert not closed_by_server(pooled)
        _terminate(database_url, first)
        deadline = time.monotonic() + 5
        while not closed_by_server(pooled) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert closed_by_server(pooled)
        # The next checkout drops it and works, on another backend.
        assert _backend_pid(database) != first
    finally:
        database.dispose()


def test_a_live_connection_is_kept_without_a_ping(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(Settings(database_url=database_url), pool_size=1)
    pings: list[object] = []
    monkeypatch.setattr(database.engine.dialect, "do_ping", pings.append)
    try:
        pid = _backend_pid(database)
        assert _backend_pid(database) == pid
        assert pings == []
    finally:
        database.dispose()


def test_autocommit_lasts_one_session_and_never_reaches_the_next(database_url: str) -> None:
    database = Database(Settings(database_url=database_url), pool_size=1)
    try:
        session = database.sessionmaker()
        autocommit_single_statements(session)
        raw = postgresql_driver(session)
        assert raw is not None and raw.autocommit
        raw.execute("SELECT 1")
        # Its statements never begin the session's own transaction.
        assert not session.in_transaction()
        release_autocommit(session)
        session.close()
        # The pool's only connection comes back transactional.
        with database.session() as later:
            assert later.connection().connection.driver_connection is raw
            assert not raw.autocommit
        # A session that has begun keeps its transaction.
        with database.session() as begun:
            begun.execute(text("SELECT 1"))
            autocommit_single_statements(begun)
            driver = postgresql_driver(begun)
            assert driver is not None and not driver.autocommit
    finally:
        database.dispose()


def test_a_broken_autocommit_connection_is_dropped_not_pooled(database_url: str) -> None:
    database = Database(Settings(database_url=database_url), pool_size=1)
    try:
        session = database.sessionmaker()
        autocommit_single_statements(session)
        raw = postgresql_driver(session)
        assert raw is not None
        pid = raw.info.backend_pid
        _terminate(database_url, pid)
        with pytest.raises(psycopg.OperationalError):
            raw.execute("SELECT 1")
        release_autocommit(session)
        session.close()
        assert _backend_pid(database) != pid
    finally:
        database.dispose()


def test_a_connection_keeps_its_cursor_and_a_replaced_one_gets_its_own(
    database_url: str,
) -> None:
    database = Database(Settings(database_url=database_url), pool_size=1)
    try:
        with database.session() as first:
            cursor = driver_cursor(first)
            assert cursor is not None
            assert cursor.execute("SELECT 1").fetchall() == [(1,)]
            pid = cursor.connection.info.backend_pid
        with database.session() as again:
            assert driver_cursor(again) is cursor
        _terminate(database_url, pid)
        assert closed_by_server(cursor.connection)
        with database.session() as after:
            fresh = driver_cursor(after)
            assert fresh is not None and fresh is not cursor
            assert fresh.execute("SELECT pg_backend_pid()").fetchall() != [(pid,)]
        # The request's autocommit connection hands out its own connection's cursor.
        session = database.sessionmaker()
        autocommit_single_statements(session)
        lent = driver_cursor(session)
        assert lent is not None and lent.connection is postgresql_driver(session)
        release_autocommit(session)
        session.close()
    finally:
        database.dispose()
