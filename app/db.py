"""Engine and sessions: one session per request (closed at teardown) and one per task."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Flask, current_app, g
from sqlalchemy import DateTime, Engine, create_engine, event, exc
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.types import TypeDecorator

from app.config import Settings


class UTCDateTime(TypeDecorator[datetime]):
    """A `timestamptz` on PostgreSQL; on SQLite the same instants come back tz-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


# A client cut off by the network mid-transaction (a host partitioned away) would keep its
# row locks until the server notices, two hours with PostgreSQL's defaults: the server
# probes an idle client's socket after 30 s and drops it after 3 missed probes, and no
# transaction of ours sits idle for 5 minutes.
SERVER_SIDE_LIMITS = (
    "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3 "
    "-c idle_in_transaction_session_timeout=300000"
)


def closed_by_server(dbapi_connection: Any) -> bool:
    """Whether a pooled connection was let go by the server. An idle connection has
    nothing to read, so a readable socket means the server said goodbye (a restart,
    `pg_terminate_backend`, `idle_session_timeout`) or hung up. This costs a poll, where
    SQLAlchemy's pre-ping costs a `SELECT 1` round trip on every checkout; a connection
    that was readable for another reason is only replaced."""
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    try:
        poller.register(dbapi_connection.fileno(), select.POLLIN)
    except (OSError, ValueError, dbapi_connection.Error):
        return True
    return bool(poller.poll(0))


def _check_on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    if closed_by_server(dbapi_connection):
        # The pool drops it and connects again (SQLAlchemy's "pessimistic" handling).
        raise exc.DisconnectionError("the server closed this connection")


class Database:
    """Owns the engine; pool size follows the concurrency of the process using it."""

    def __init__(self, settings: Settings, pool_size: int = 10) -> None:
        self.settings = settings
        self.engine = self._create_engine(settings.database_url, pool_size)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @staticmethod
    def _create_engine(url: str, pool_size: int) -> Engine:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            return engine
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=1800,
            connect_args={"connect_timeout": 5, "options": SERVER_SIDE_LIMITS},
        )
        event.listen(engine, "checkout", _check_on_checkout)
        return engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for one unit of work outside a request (a task, a CLI command)."""
        session = self.sessionmaker()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()

    def resize(self, pool_size: int) -> None:
        """Match the pool to a worker's concurrency (each publish may hold two sessions)."""
        self.engine.dispose()
        self.engine = self._create_engine(self.settings.database_url, pool_size)
        self.sessionmaker.configure(bind=self.engine)


def init_app(app: Flask, settings: Settings) -> Database:
    database = Database(settings)
    app.extensions["crier.db"] = database

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            release_autocommit(session)
            session.close()

    return database


def get_db(app: Flask | None = None) -> Database:
    return (app or current_app).extensions["crier.db"]


AUTOCOMMIT_CONNECTION = "crier.autocommit_connection"


def autocommit_single_statements(session: Session) -> None:
    """For a request whose only write is one statement (a create without an
    Idempotency-Key or media to lock): its statements go to a pooled connection in
    autocommit, each its own transaction. That spares PostgreSQL the BEGIN and COMMIT
    round trips, and the request the session's transaction bookkeeping: the session never
    begins, and `postgresql_driver` hands out this connection. Only before the session
    has begun a transaction, only on PostgreSQL; `release_autocommit` gives it back."""
    if session.in_transaction() or AUTOCOMMIT_CONNECTION in session.info:
        return
    engine = session.get_bind()
    if not isinstance(engine, Engine) or engine.dialect.name != "postgresql":
        return
    pooled = engine.raw_connection()
    pooled.driver_connection.autocommit = True
    session.info[AUTOCOMMIT_CONNECTION] = pooled


def release_autocommit(session: Session) -> None:
    """Give the autocommit connection back to the pool as it was lent (in transactions);
    one that cannot say so any more (broken mid-statement) is dropped instead."""
    pooled = session.info.pop(AUTOCOMMIT_CONNECTION, None)
    if pooled is None:
        return
    try:
        pooled.driver_connection.autocommit = False
    except psycopg.Error:
        pooled.invalidate()
    pooled.close()


def _pooled_postgresql(session: Session) -> PoolProxiedConnection | None:
    """The pooled connection the session's PostgreSQL statements go to: the request's
    autocommit one, else the session's own (begun if need be); None off PostgreSQL."""
    pooled = session.info.get(AUTOCOMMIT_CONNECTION)
    if pooled is not None:
        return pooled
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.connection().connection


def postgresql_driver(session: Session) -> psycopg.Connection[Any] | None:
    """The psycopg connection under the session's transaction (or the request's autocommit
    one), for statements written for PostgreSQL; None on another database (the embedded
    SQLite default), where the caller goes through SQLAlchemy instead."""
    pooled = _pooled_postgresql(session)
    return None if pooled is None else pooled.driver_connection


_CURSOR = "crier.cursor"


def driver_cursor(session: Session) -> psycopg.Cursor[Any] | None:
    """A cursor on the connection `postgresql_driver` would give, kept with that pooled
    connection for its life: a create's two statements each made and dropped a cursor,
    which cost about as much CPU as reading their results. None off PostgreSQL."""
    pooled = _pooled_postgresql(session)
    if pooled is None:
        return None
    driver = pooled.driver_connection
    cursor = pooled.info.get(_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not driver:
        cursor = pooled.info[_CURSOR] = driver.cursor()
    return cursor


def get_session() -> Session:
    """The request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = get_db().sessionmaker()
    return g.db_session
