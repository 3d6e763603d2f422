"""The baselines measured in the same run: bare Celery draining no-op tasks, the intake
floor (a bare INSERT + LPUSH), and the sandbox's own ceiling."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import redis

from benchmarks.harness import (
    BIN,
    Proc,
    Procs,
    connect,
    epoch,
    lateness_stats,
    note_claim,
    plain_url,
    rate_between,
    read_ledger,
    reset_sandbox,
)


@dataclass
class NoopCelery:
    """A bare Celery worker process (benchmarks.noop_app) on a Redis db of its own."""

    broker_url: str
    proc: Proc
    pool: str
    concurrency: int

    @property
    def hostname(self) -> str:
        return f"noop@{os.uname().nodename}"

    def drain(self, count: int, timeout: float = 300) -> dict[str, Any]:
        """Put `count` no-op tasks in the queue while the worker does not consume it, then
        let it consume and time the drain from the first task's end to the last's (the
        Redis transport notices a newly consumed queue only at its next 1-s poll, which
        is not the drain's cost)."""
        from benchmarks import noop_app

        client = redis.Redis.from_url(self.broker_url)
        client.delete(noop_app.DONE_KEY)
        with noop_app.app.producer_or_acquire() as producer:
            for _ in range(count):
                noop_app.noop.apply_async(queue=noop_app.QUEUE, producer=producer)
        control = noop_app.app.control
        control.add_consumer(noop_app.QUEUE, destination=[self.hostname], reply=True, timeout=10)
        deadline = time.monotonic() + timeout
        try:
            while client.llen(noop_app.DONE_KEY) < count:
                if time.monotonic() > deadline or self.proc.popen.poll() is not None:
                    raise RuntimeError(f"bare Celery did not drain {count} tasks")
                time.sleep(0.02)
        finally:
            control.cancel_consumer(
                noop_app.QUEUE, destination=[self.hostname], reply=True, timeout=10
            )
        ends = [float(v) for v in client.lrange(noop_app.DONE_KEY, 0, -1)]
        rate = rate_between(ends)
        return {
            "tasks": count,
            "pool": self.pool,
            "concurrency": self.concurrency,
            "drain_seconds": rate["span_seconds"],
            "per_second": rate["per_second"],
        }


@contextmanager
def noop_celery(procs: Procs, pool: str, concurrency: int) -> Iterator[NoopCelery]:
    from benchmarks import noop_app
    from devtools.scratch import scratch_redis

    with scratch_redis("crier:bench-noop-claim") as url:
        note_claim(redis_url=url)
        # The producer side lives in this process: point the app at the scratch db.
        noop_app.app.conf.broker_url = url
        noop_app._done = redis.Redis.from_url(url)
        env = {**os.environ, "BENCH_NOOP_BROKER": url, "PYTHONUNBUFFERED": "1"}
        proc = procs.spawn(
            "noop-celery",
            [
                str(BIN / "celery"),
                "-A",
                "benchmarks.noop_app",
                "worker",
                "-Q",
                noop_app.IDLE_QUEUE,
                "-n",
                "noop@%h",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "WARNING",
            ],
            env,
        )
        try:
            yield NoopCelery(url, proc, pool, concurrency)
        finally:
            procs.stop(proc)
            noop_app.app.pool.force_close_all()


def wait_noop_ready(noop: NoopCelery, timeout: float = 90) -> None:
    from benchmarks import noop_app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if noop.proc.popen.poll() is not None:
            raise RuntimeError(f"bare Celery worker exited:\n{noop.proc.log()[-3000:]}")
        replies = noop_app.app.control.ping(destination=[noop.hostname], timeout=1)
        if replies:
            return
    raise RuntimeError(f"bare Celery worker never answered:\n{noop.proc.log()[-3000:]}")


# -- load from concurrent clients ---------------------------------------------------------


def concurrent_rate(
    clients: int, seconds: float, make: Callable[[int], Callable[[], int]]
) -> dict[str, Any]:
    """`clients` threads each call their own `make(index)()` until `seconds` have passed;
    each call returns how many items it created. Items per second over the whole run."""
    calls = [make(index) for index in range(clients)]
    counts = [0] * clients
    errors: list[str] = []
    start_gate = threading.Barrier(clients + 1)
    started = 0.0

    def loop(index: int) -> None:
        start_gate.wait()
        deadline = started + seconds
        try:
            while time.time() < deadline:
                counts[index] += calls[index]()
        except Exception as error:  # a failing client ends its own loop, reported below
            errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    started = time.time()
    start_gate.wait()
    for thread in threads:
        thread.join()
    elapsed = time.time() - started
    total = sum(counts)
    return {
        "clients": clients,
        "seconds": round(elapsed, 3),
        "items": total,
        "per_second": round(total / elapsed, 1) if elapsed > 0 else None,
        "errors": errors[:5],
    }


FLOOR_TABLE = "bench_floor_posts"
FLOOR_QUEUE = "bench:floor"
FLOOR_INSERT = (
    f"INSERT INTO {FLOOR_TABLE} (id, organisation_id, content, scheduled_at, publish_now, "
    "timezone, platform_content, media_ids, status, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, false, 'UTC', '{}', '[]', 'scheduled', now(), now())"
)


def intake_floor(
    database_url: str,
    redis_url: str,
    organisation_id: int,
    clients: int,
    seconds: float,
    batch: int,
) -> dict[str, Any]:
    """The floor: per item one INSERT into a table like `posts` (same columns, indexes and
    keys) and one LPUSH to Redis; `batch` items per transaction and per Redis pipeline."""
    with connect(database_url) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        conn.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE posts INCLUDING ALL)")
    connections: list[psycopg.Connection[Any]] = []
    due = datetime.now(UTC) + timedelta(minutes=5)

    def make(index: int) -> Callable[[], int]:
        conn = psycopg.connect(plain_url(database_url), autocommit=batch == 1)
        connections.append(conn)
        client = redis.Redis.from_url(redis_url)

        def one() -> int:
            rows = [
                (uuid.uuid4(), organisation_id, f"Floor post {index}", due) for _ in range(batch)
            ]
            if batch == 1:
                conn.execute(FLOOR_INSERT, rows[0])
                client.lpush(FLOOR_QUEUE, json.dumps({"id": str(rows[0][0])}))
            else:
                with conn.cursor() as cursor:
                    cursor.executemany(FLOOR_INSERT, rows)
                conn.commit()
                pipe = client.pipeline(transaction=False)
                for row in rows:
                    pipe.lpush(FLOOR_QUEUE, json.dumps({"id": str(row[0])}))
                pipe.execute()
            return batch

        return one

    try:
        return {"batch": batch, **concurrent_rate(clients, seconds, make)}
    finally:
        for conn in connections:
            conn.close()
        redis.Redis.from_url(redis_url).delete(FLOOR_QUEUE)
        with connect(database_url) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")


# -- the sandbox alone ----------------------------------------------------------------------


def sandbox_ceiling(sandbox_url: str, count: int, threads: int, per_token: int) -> dict[str, Any]:
    """How fast the stand-in platform itself takes `count` tweets sent at once from
    `threads` threads of this process (as many as a worker fires with), `per_token` a
    token: lateness of each `received_at` after the moment they were all let go. A burst
    through Crier cannot land sooner than this on the same machine."""
    reset_sandbox(sandbox_url)
    client = httpx.Client(
        base_url=sandbox_url,
        timeout=60,
        limits=httpx.Limits(max_connections=threads, max_keepalive_connections=threads),
    )
    try:
        with ThreadPoolExecutor(threads) as pool:
            # Open the connections first, as a warm worker holds them.
            list(pool.map(lambda _: client.get("/_arrived"), range(threads)))
            first_wave = min(threads, count)
            gate = threading.Barrier(first_wave + 1)

            def send(index: int) -> None:
                if index < first_wave:
                    gate.wait()
                token = f"ceiling-token-{index // per_token}"
                client.post(
                    "/x/2/tweets",
                    json={"text": f"Ceiling {count} post {index}"},
                    headers={"Authorization": f"Bearer {token}"},
                )

            futures = [pool.submit(send, index) for index in range(count)]
            time.sleep(0.2)  # every thread is waiting at the gate
            released = time.time()
            gate.wait()
            for future in futures:
                future.result()
        entries = read_ledger(sandbox_url, "x")
    finally:
        client.close()
        reset_sandbox(sandbox_url)
    moments = [epoch(e["received_at"]) for e in entries]
    return {
        "calls": count,
        "received": len(entries),
        "threads": threads,
        "lateness": lateness_stats([m - released for m in moments]),
        "throughput": rate_between(moments),
    }
