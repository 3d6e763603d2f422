"""Real worker processes: Celery workers and beat as subprocesses against the suite's
PostgreSQL database, Redis db and an in-process sandbox served over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from flask import Flask

from app.models import Platform
from app.queues import (
    MAINTENANCE_QUEUE,
    MEDIA_IMPORT_QUEUE,
    METRICS_QUEUE,
    WEBHOOKS_QUEUE,
    celery_init_app,
    publish_queue,
)
from tests.secrets_guard import assert_no_tokens

ALL_QUEUES = ",".join(
    [
        *(publish_queue(p) for p in Platform),
        MAINTENANCE_QUEUE,
        WEBHOOKS_QUEUE,
        MEDIA_IMPORT_QUEUE,
        METRICS_QUEUE,
    ]
)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} never printed {text!r}:\n{self.log()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@dataclass
class Stack:
    env: dict[str, str]
    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        args: list[str],
        extra_env: dict[str, str] | None,
        netns: str | None = None,
    ) -> Proc:
        """Start a process, inside the network namespace `netns` when one is named (the
        two-host partition test runs each host's workers in its own)."""
        log_path = self.tmp / f"{name}-{len(self.procs)}.log"
        handle = log_path.open("wb")
        popen = subprocess.Popen(
            [*(["ip", "netns", "exec", netns] if netns else []), *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def worker(
        self,
        name: str = "w1",
        queues: str = ALL_QUEUES,
        concurrency: int = 8,
        extra_env: dict[str, str] | None = None,
        pool: str = "threads",
        netns: str | None = None,
        wait: bool = True,
    ) -> Proc:
        """A Celery worker; with `wait=False` the caller waits for its "ready." itself (to
        start several at once)."""
        proc = self.spawn(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery",
                "worker",
                "-Q",
                queues,
                "-n",
                f"{name}@%h",
                "--pool",
                pool,
                "-c",
                str(concurrency),
                "--without-mingle",
                "--without-gossip",
                "-E",
                "--loglevel",
                "INFO",
            ],
            extra_env,
            netns,
        )
        if wait:
            proc.wait_for("ready.")
        return proc

    def beat(
        self,
        extra_env: dict[str, str] | None = None,
        netns: str | None = None,
        wait: bool = True,
    ) -> Proc:
        schedule = self.tmp / f"beat-{len(self.procs)}"
        proc = self.spawn(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery",
                "beat",
                "-s",
                str(schedule),
                "--loglevel",
                "INFO",
            ],
            extra_env,
            netns,
        )
        if wait:
            proc.wait_for("beat: Starting")
        return proc

    def stop_all(self) -> None:
        """SIGTERM to every process at once, then wait for each (as Proc.kill does)."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                os.killpg(proc.popen.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def broker_url() -> str | None:
    """The Celery broker of the test's stack: None is Redis at the suite's REDIS_URL.
    A module overrides it (tests/integration/test_delivery.py runs on both brokers)."""
    return None


def broker_queues() -> list[str]:
    names = [publish_queue(p) for p in ("instagram", "facebook", "threads", "x")]
    names += [publish_queue(p) for p in ("linkedin", "tiktok", "youtube")]
    return [*names, MAINTENANCE_QUEUE, WEBHOOKS_QUEUE, MEDIA_IMPORT_QUEUE, METRICS_QUEUE]


def delete_amqp_queues(url: str) -> None:
    """Drop our queues and Celery's delay queues from a scratch vhost: every test starts
    with an empty broker, as it does on Redis after the db is flushed."""
    from kombu import Connection
    from kombu.transport.native_delayed_delivery import level_name

    with Connection(url) as conn:
        channel = conn.channel()
        for name in [*broker_queues(), *(level_name(n) for n in range(28))]:
            channel.queue_delete(name)


@pytest.fixture
def app_broker(app: Flask, broker_url: str | None) -> Iterator[str | None]:
    """Point the in-process API's Celery app at the test's broker for the test."""
    if broker_url is None:
        yield None
        return
    delete_amqp_queues(broker_url)
    original = app.extensions["celery"]
    celery = celery_init_app(app, replace(app.config["CRIER"], broker_url=broker_url))
    drop_pools(celery)
    try:
        yield broker_url
    finally:
        drop_pools(celery)
        celery.close()
        app.extensions["celery"] = original
        original.set_default()


def drop_pools(celery: Celery) -> None:
    """kombu pools broker connections process-wide, by URL: a test that cut them or dropped
    the queues (pooled connections remember what they declared, and RabbitMQ drops a
    message no queue is bound for) must not hand them to the next test."""
    from kombu import pools
    from kombu.utils.collections import eqhash

    key = eqhash(celery.connection_for_write())
    for group in (pools.producers, pools.connections):
        pool = dict.pop(group, key, None)
        if pool is not None:
            pool.force_close_all()


@pytest.fixture
def stack(
    app: Flask,
    app_settings: dict[str, Any],
    sandbox_url: str,
    live_url: str,
    tmp_path: Path,
    app_broker: str | None,
) -> Iterator[Stack]:
    """Environment for worker processes that share the test app's database and secrets;
    their signed media links point at the test API server, so the sandbox can pull them."""
    env = {
        **os.environ,
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": app_settings["redis_url"],
        "CRIER_SECRET_KEY": app_settings["secret_key"],
        "CRIER_MEDIA_DIR": app_settings["media_dir"],
        "CRIER_PLATFORM_BASE_URL": sandbox_url,
        "CRIER_PUBLIC_URL": live_url,
        "CRIER_SWEEP_INTERVAL": "1",
        "CRIER_REQUEUE_GRACE": "5",
        "CRIER_PUBLISH_LEASE": "10",
        "CRIER_HEARTBEAT_INTERVAL": "1",
        "CRIER_WORKER_TIMEOUT": "4",
        "CRIER_RETRY_BASE_SECONDS": "0.5",
        "CRIER_RETRY_CAP_SECONDS": "2",
        "CRIER_ALLOW_PRIVATE_URLS": "1",
        "CRIER_WEBHOOK_DRAIN_INTERVAL": "0.5",
        "CRIER_WEBHOOK_TIMEOUT": "2",
        "CRIER_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "CRIER_WEBHOOK_RETRY_CAP_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    if app_broker is not None:
        env["CELERY_BROKER_URL"] = app_broker
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop_all()
    for proc in stack.procs:
        assert_no_tokens(proc.log().splitlines(), f"the log of {proc.name}")


def wait_until(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s; last value: {last!r}")
