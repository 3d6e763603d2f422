"""What every benchmark scenario stands on: processes started from the Procfile, scratch
databases and Redis dbs, the sandbox, a tenant, bulk rows, and the statistics.

Every process is started in its own session (process group) and stopped with SIGTERM,
then SIGKILL; everything is registered on an ExitStack, so it is removed even on failure.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FINAL_STATUSES = ("published", "failed", "unconfirmed", "cancelled")
PLATFORMS = ("instagram", "facebook", "threads", "x", "linkedin", "tiktok", "youtube")


# -- statistics ---------------------------------------------------------------------------


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def lateness_stats(values: list[float]) -> dict[str, Any]:
    """min/p50/p95/p99/max in seconds, and how many were early (negative)."""
    if not values:
        return {"count": 0, "min": None, "p50": None, "p95": None, "p99": None, "max": None,
                "early": 0}  # fmt: skip
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "min": round(ordered[0], 4),
        "p50": round(percentile(ordered, 0.50), 4),
        "p95": round(percentile(ordered, 0.95), 4),
        "p99": round(percentile(ordered, 0.99), 4),
        "max": round(ordered[-1], 4),
        "early": sum(1 for v in ordered if v < 0),
    }


def rate_between(moments: list[float]) -> dict[str, Any]:
    """Events per second from the first to the last moment."""
    if len(moments) < 2:
        return {"count": len(moments), "span_seconds": 0.0, "per_second": None}
    span = max(moments) - min(moments)
    per_second = (len(moments) - 1) / span if span > 0 else None
    return {
        "count": len(moments),
        "span_seconds": round(span, 4),
        "per_second": round(per_second, 1) if per_second else None,
    }


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def due_in(seconds: float) -> datetime:
    """A whole second at least `seconds` from now."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=math.ceil(seconds) + 1)


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never printed {text!r}:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it lingers."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        except ProcessLookupError:
            pass


@dataclass
class Procs:
    """Processes of one run; stopped (in reverse order) when the stack unwinds."""

    log_dir: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        log_path = self.log_dir / f"{name}-{len(self.procs)}.log"
        with log_path.open("wb") as handle:
            popen = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def procfile() -> dict[str, str]:
    """The Procfile's process types and their command lines."""
    lines: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not line.lstrip().startswith("#"):
            lines[name.strip()] = command.strip()
    return lines


def procfile_args(command: str) -> list[str]:
    """Run a Procfile line as a shell would (${VAR:-default} expanded from the env), with
    `exec`, so the process we signal is the program itself."""
    return ["/bin/sh", "-c", f"exec {command}"]


def worker_pool(command: str, env: dict[str, str]) -> tuple[str, int]:
    """(pool, concurrency) of a Procfile worker line, defaults expanded."""
    expanded = subprocess.run(
        ["/bin/sh", "-c", f"echo {command}"], env=env, capture_output=True, text=True, check=True
    ).stdout
    words = shlex.split(expanded)
    pool, concurrency = "prefork", os.cpu_count() or 1
    for index, word in enumerate(words[:-1]):
        if word in ("--pool", "-P"):
            pool = words[index + 1]
        elif word in ("--concurrency", "-c"):
            concurrency = int(words[index + 1])
    return pool, concurrency


def worker_queues(command: str) -> list[str]:
    match = re.search(r"-Q\s+(\S+)", command)
    return match.group(1).split(",") if match else []


def wait_http(url: str, timeout: float = 60, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            if proc is not None and proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited early:\n{proc.log()[-3000:]}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} never answered") from None
            time.sleep(0.2)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- scratch state ------------------------------------------------------------------------

# What this run claimed on the shared servers, reported in the results so a test can
# check that each is gone afterwards.
CLAIMED: dict[str, list[str]] = {"databases": [], "redis": []}


def note_claim(database_url: str | None = None, redis_url: str | None = None) -> None:
    if database_url:
        CLAIMED["databases"].append(database_url.rsplit("/", 1)[1])
    if redis_url:
        CLAIMED["redis"].append(redis_url)


def plain_url(database_url: str) -> str:
    return database_url.replace("+psycopg", "")


def connect(database_url: str, patience: float = 60) -> psycopg.Connection[Any]:
    """A connection, waiting for a free slot: the PostgreSQL server is shared, and a
    busy run (or a neighbour's test suite) can hold every one of max_connections."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return psycopg.connect(plain_url(database_url), autocommit=True)
        except psycopg.OperationalError as error:
            if "too many clients" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sql(database_url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connect(database_url) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


COUNTS = (
    "SELECT t.status, count(*) FROM post_targets t JOIN posts p ON p.id = t.post_id "
    "WHERE p.organisation_id = %s GROUP BY t.status"
)


FIRED = (
    "SELECT extract(epoch FROM a.started_at) FROM publish_attempts a "
    "JOIN post_targets t ON t.id = a.target_id JOIN posts p ON p.id = t.post_id "
    "WHERE p.organisation_id = %s"
)


def fired_moments(database_url: str, organisation_id: int) -> list[float]:
    """When each attempt's delivery fired, by the worker's clock: beside the ledger's
    received_at, it tells Crier's share of the lateness from the sandbox's."""
    return [float(row[0]) for row in sql(database_url, FIRED, (organisation_id,))]


def target_counts(database_url: str, organisation_id: int) -> dict[str, int]:
    return {status: count for status, count in sql(database_url, COUNTS, (organisation_id,))}


def wait_until_final(
    database_url: str, organisation_id: int, total: int, timeout: float
) -> dict[str, int]:
    """Target counts by status once `total` are final (or at the timeout); one connection
    held for the polling, so a full server does not fail the wait."""
    deadline = time.monotonic() + timeout
    with connect(database_url, patience=timeout) as conn:
        while True:
            rows = conn.execute(COUNTS, (organisation_id,)).fetchall()
            counts = {status: count for status, count in rows}
            final = sum(counts.get(s, 0) for s in FINAL_STATUSES)
            if final >= total or time.monotonic() > deadline:
                return counts
            time.sleep(0.25)


@dataclass
class Tenant:
    organisation_id: int
    key: str
    accounts: dict[str, list[int]]

    def all_accounts(self) -> list[int]:
        return [a for ids in self.accounts.values() for a in ids]


EXTERNAL_IDS: dict[str, Callable[[int], str]] = {
    "instagram": lambda i: str(1784140000100000 + i),
    "facebook": lambda i: str(1784140000200000 + i),
    "threads": lambda i: str(1784140000300000 + i),
    "x": lambda i: str(9_000_000 + i),
    "linkedin": lambda i: f"urn:li:person:{8_000_000 + i}",
    "tiktok": lambda i: f"tiktok-open-id-{i}",
    "youtube": lambda i: f"UCbench{i:017d}",
    "pinterest": lambda i: f"pinterest-bench-{i}",
    "bluesky": lambda i: f"bench{i}.bsky.social",
    "mastodon": lambda i: f"https://sandbox.social/@bench{i}",
    "wordpress": lambda i: f"https://bench{i}.blog.example.com",
}


def access_token(name: str, platform: str, i: int) -> str:
    """A made-up credential, in the platform's form where it has one (WordPress's is
    `user:application-password`)."""
    if platform == "wordpress":
        return f"{name}-editor-{i}:abcd efgh ijkl"
    return f"{name}-{platform}-token-{i}"


def create_tenant(app: Any, name: str, accounts: dict[str, int]) -> Tenant:
    """An organisation, its API key and `accounts[platform]` accounts on each platform."""
    from app.db import get_db
    from app.services.accounts import add_account
    from app.services.keys import create_api_key

    with app.app_context(), get_db(app).session() as session:
        plain, api_key = create_api_key(session, name=f"{name}-key", organisation_name=name)
        organisation = api_key.organisation
        made: dict[str, list[Any]] = {platform: [] for platform in accounts}
        # One account of each platform in turn, so ids interleave: work handed out by
        # account id (the analytics finder's messages) mixes the platforms.
        for i in range(max(accounts.values(), default=0)):
            for platform, count in accounts.items():
                if i >= count:
                    continue
                made[platform].append(
                    add_account(
                        session,
                        app.config["CRIER"],
                        platform=platform,
                        name=f"{name} {platform} {i}",
                        access_token=access_token(name, platform, i),
                        refresh_token=f"{name}-{platform}-refresh-{i}",
                        external_id=EXTERNAL_IDS[platform](i),
                        organisation=organisation,
                    )
                )
        session.commit()
        return Tenant(
            api_key.organisation_id,
            plain,
            {platform: [a.id for a in rows] for platform, rows in made.items()},
        )


def insert_far_posts(
    database_url: str,
    organisation_id: int,
    account_id: int,
    platform: str,
    count: int,
    start: datetime,
    days: float = 30.0,
    label: str = "Far post",
) -> None:
    """`count` scheduled posts with one target each, spread evenly from `start` over
    `days`, written by PostgreSQL itself (generate_series), not through the API."""
    if count <= 0:
        return
    step = days * 86400 / count
    query = """
        WITH made AS (
            INSERT INTO posts (id, organisation_id, content, scheduled_at, publish_now,
                               timezone, platform_content, media_ids, status,
                               created_at, updated_at)
            SELECT gen_random_uuid(), %(org)s, %(label)s || ' ' || g,
                   %(start)s + make_interval(secs => g * %(step)s),
                   false, 'UTC', '{}', '[]', 'scheduled', now(), now()
            FROM generate_series(0, %(count)s - 1) AS g
            RETURNING id, scheduled_at
        )
        INSERT INTO post_targets (post_id, account_id, platform, status, attempts,
                                  next_attempt_at, worker_losses, created_at, updated_at)
        SELECT id, %(account)s, %(platform)s, 'scheduled', 0, scheduled_at, 0, now(), now()
        FROM made
    """
    with connect(database_url) as conn:
        conn.execute(
            query,
            {
                "org": organisation_id,
                "label": label,
                "start": start,
                "step": step,
                "count": count,
                "account": account_id,
                "platform": platform,
            },
        )
        conn.execute("ANALYZE posts")
        conn.execute("ANALYZE post_targets")


# -- the sandbox and the stack ------------------------------------------------------------


@contextmanager
def sandbox_process(procs: Procs) -> Iterator[str]:
    """The sandbox in a process of its own (`crier sandbox`), so it does not share the
    benchmark's interpreter lock."""
    port = free_port()
    proc = procs.spawn(
        "sandbox",
        [str(BIN / "crier"), "sandbox", "--port", str(port)],
        {**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_ledger", proc=proc)
        yield url
    finally:
        procs.stop(proc)


def read_ledger(sandbox_url: str, platform: str | None = None) -> list[dict[str, Any]]:
    params = {"platform": platform} if platform else None
    response = httpx.get(f"{sandbox_url}/_ledger", params=params, timeout=60)
    response.raise_for_status()
    return list(response.json())


def reset_sandbox(sandbox_url: str) -> None:
    httpx.post(f"{sandbox_url}/_reset", timeout=30).raise_for_status()


def set_faults(sandbox_url: str, faults: dict[str, Any]) -> None:
    httpx.post(f"{sandbox_url}/_faults", json=faults, timeout=30).raise_for_status()


@dataclass
class Stack:
    """One scratch database, Redis db, sandbox and API, and the Procfile's workers."""

    database_url: str
    redis_url: str
    sandbox_url: str
    env: dict[str, str]
    procs: Procs
    app: Any
    api_url: str = ""
    workers: list[Proc] = field(default_factory=list)

    def start_web(self) -> None:
        """The Procfile's `web` line (gunicorn); media links the workers sign point at it."""
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.env["CRIER_PUBLIC_URL"] = self.api_url
        proc = self.procs.spawn(
            "web", procfile_args(procfile()["web"]), {**self.env, "PORT": str(port)}
        )
        wait_http(f"{self.api_url}/health", proc=proc)

    def spawn_workers(self) -> list[Proc]:
        """Every worker line of the Procfile, and beat; started, not yet waited for."""
        started = []
        for name, command in procfile().items():
            if name.startswith("worker") or name == "beat":
                started.append(self.procs.spawn(name, procfile_args(command), self.env))
        self.workers = started
        return started

    def wait_workers(self) -> None:
        for proc in self.workers:
            proc.wait_for("beat: Starting" if proc.name == "beat" else "ready.")

    def celery_workers(self) -> list[Proc]:
        return [p for p in self.workers if p.name.startswith("worker")]

    def log_tails(self, size: int = 1500) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-size:]}" for p in self.workers)


def stack_env(
    database_url: str, redis_url: str, sandbox_url: str, scratch: Path, secret: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CRIER_SECRET_KEY": secret,
        "CRIER_MEDIA_DIR": str(scratch / "media"),
        "CRIER_PLATFORM_BASE_URL": sandbox_url,
        "CRIER_BEAT_SCHEDULE": str(scratch / "celerybeat-schedule"),
        "CRIER_RATE_LIMIT": "100000000/minute",
        "CRIER_POSTS_RATE_LIMIT": "100000000/minute",
        "PYTHONUNBUFFERED": "1",
    }
    # Our own per-account publish caps are off; the sandbox's per-token caps still apply.
    for platform in PLATFORMS:
        env[f"CRIER_{platform.upper()}_PUBLISH_CAPS"] = ""
    return env


@contextmanager
def crier_stack(scratch: Path, extra_env: dict[str, str]) -> Iterator[Stack]:
    """Database, Redis db, sandbox, the API served by gunicorn as in the Procfile; the
    workers are started by the caller (spawn_workers) when it wants them."""
    import uuid

    from app import create_app
    from app.db import get_db
    from devtools.scratch import scratch_database, scratch_redis

    with ExitStack() as inner:
        procs = Procs(scratch)
        database_url = inner.enter_context(scratch_database("crier_bench"))
        redis_url = inner.enter_context(scratch_redis("crier:bench-claim"))
        note_claim(database_url, redis_url)
        # Registered after the database and the Redis db, so every process is stopped
        # before they are dropped (a worker stopping late would write into a freed db).
        inner.callback(procs.stop_all)
        sandbox_url = inner.enter_context(sandbox_process(procs))
        secret = "bench-" + uuid.uuid4().hex
        env = {**stack_env(database_url, redis_url, sandbox_url, scratch, secret), **extra_env}
        app = create_app(
            {
                "database_url": database_url,
                "redis_url": redis_url,
                "secret_key": secret,
                "media_dir": env["CRIER_MEDIA_DIR"],
                "platform_base_url": sandbox_url,
            }
        )
        inner.callback(lambda: get_db(app).engine.dispose())
        crier = Stack(database_url, redis_url, sandbox_url, env, procs, app)
        crier.start_web()
        yield crier
