"""Scratch resources of our own on the shared servers: a PostgreSQL database built by the
migrations and a claimed Redis db number, both removed at the end. The test suite and the
benchmark use them, so either can run beside a live dev stack."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

PG_ADMIN_URL = os.environ.get("CRIER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("CRIER_TEST_REDIS", "redis://127.0.0.1:6379")


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    from app.migrations import upgrade_database

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    try:
        upgrade_database(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def claim_redis_db(claim_key: str, ttl_seconds: int = 6 * 3600) -> int:
    """Take the first empty db number (15 down to 1) by writing a claim key into it."""
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_BASE_URL}/{number}")
        if client.dbsize() == 0 and client.set(claim_key, os.getpid(), nx=True, ex=ttl_seconds):
            return number
    raise RuntimeError("no free Redis db number (1-15)")


@contextmanager
def scratch_redis(claim_key: str) -> Iterator[str]:
    url = f"{REDIS_BASE_URL}/{claim_redis_db(claim_key)}"
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()


RABBITMQ_BASE_URL = os.environ.get("CRIER_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672")


def rabbitmq_reachable() -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(RABBITMQ_BASE_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


@contextmanager
def scratch_vhost(prefix: str) -> Iterator[str]:
    """A RabbitMQ virtual host of our own (made with rabbitmqctl), deleted at the end:
    queues, exchanges and messages of parallel suites never meet."""
    import subprocess

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    user = RABBITMQ_BASE_URL.split("://", 1)[1].split(":", 1)[0]

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=60, capture_output=True)

    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield f"{RABBITMQ_BASE_URL}/{name}"
    finally:
        ctl("delete_vhost", name)
