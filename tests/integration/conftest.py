"""Real worker processes: Celery workers and beat as subprocesses against the suite's
PostgreSQL database, Redis db and an in-process sandbox served over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.secrets_guard import assert_no_tokens
from workers.celery_app import MAINTENANCE_QUEUE, publish_queue

ALL_QUEUES = ",".join(
    [
        *(
            publish_queue(p)
            for p in ("instagram", "facebook", "threads", "x", "linkedin", "tiktok", "youtube")
        ),
        MAINTENANCE_QUEUE,
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

    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None) -> Proc:
        log_path = self.tmp / f"{name}-{len(self.procs)}.log"
        handle = log_path.open("wb")
        popen = subprocess.Popen(
            args,
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
    ) -> Proc:
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
                "threads",
                "-c",
                str(concurrency),
                "--without-mingle",
                "--without-gossip",
                "-E",
                "--loglevel",
                "INFO",
            ],
            extra_env,
        )
        proc.wait_for("ready.")
        return proc

    def beat(self, extra_env: dict[str, str] | None = None) -> Proc:
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
        )
        proc.wait_for("beat: Starting")
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def stack(
    app: Flask, app_settings: dict[str, Any], sandbox_url: str, live_url: str, tmp_path: Path
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
        "CRIER_PUBLISH_LEASE": "20",
        "CRIER_RETRY_BASE_SECONDS": "0.5",
        "CRIER_RETRY_CAP_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    }
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
