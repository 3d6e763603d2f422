"""A burst of posts all due at one instant, through the whole pipeline, beside a baseline.

    python -m benchmarks.publish_burst [--posts N --accounts M --workers K --concurrency C]

The pipeline run: a PostgreSQL database and a Redis db number of its own, the migrations,
the sandbox and the API served in this process, K Celery worker processes (threads pool,
C threads each). N posts over M accounts (half X, half LinkedIn) are created through the
HTTP API, all due at the same instant about ten seconds ahead; the script waits until every
target is final and prints how late the sandbox received each publish, how many were
published, and the throughput.

The baseline, measured in the same run: N publishes made by calling the X adapter directly
from a thread pool of K x C threads (in a separate process, like the workers), with no
Celery and no database, so the difference is the pipeline's overhead.

--warmup W first publishes W posts at once, so the workers' connections are open before
the burst (the default, 0, measures workers that sat idle); --keep-logs DIR keeps the
worker logs.

Our own publish caps are switched off for the workers (CRIER_X_PUBLISH_CAPS="" and
CRIER_LINKEDIN_PUBLISH_CAPS=""); the sandbox's per-token caps still apply, so the accounts
must be enough to keep each under them. Everything is removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import psycopg

from devtools.scratch import scratch_database, scratch_redis

ROOT = Path(__file__).resolve().parents[1]
CLAIM_KEY = "crier:benchmark-claim"
FINAL_STATUSES = ("published", "failed", "unconfirmed", "cancelled")
# The sandbox's own cap per X token (15-minute window and 24 hours; LinkedIn's is 150).
X_SANDBOX_CAP = 100
QUEUES = "publish.x,publish.linkedin,maintenance"


@dataclass(frozen=True)
class Options:
    posts: int
    accounts: int
    workers: int
    concurrency: int
    lead: float
    keep_logs: Path | None = None
    warmup: int = 0

    @property
    def threads(self) -> int:
        return self.workers * self.concurrency

    @property
    def x_accounts(self) -> int:
        return (self.accounts + 1) // 2

    @property
    def linkedin_accounts(self) -> int:
        return self.accounts // 2


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.publish_burst", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--posts", type=int, default=200, help="posts in the burst (200)")
    parser.add_argument("--accounts", type=int, default=20, help="X + LinkedIn accounts (20)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (2)")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker (16)")
    parser.add_argument(
        "--lead", type=float, default=10.0, help="seconds from now to the due instant (10)"
    )
    parser.add_argument(
        "--keep-logs", type=Path, default=None, help="copy the worker logs to this directory"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="posts published at once before the burst, to warm the workers (0: cold)",
    )
    args = parser.parse_args(argv)
    options = Options(
        args.posts,
        args.accounts,
        args.workers,
        args.concurrency,
        args.lead,
        args.keep_logs,
        args.warmup,
    )
    if min(options.posts, options.workers, options.concurrency) < 1 or options.accounts < 2:
        parser.error("posts, workers and concurrency must be at least 1, accounts at least 2")
    # Round-robin: the busiest X token gets ceil(posts / accounts) posts in the pipeline
    # (as many again in the warm-up) and ceil(posts / x_accounts) in the baseline; the
    # sandbox is reset between phases.
    per_x_token = max(
        math.ceil(options.posts / options.x_accounts),
        math.ceil(options.warmup / options.accounts),
    )
    if per_x_token > X_SANDBOX_CAP:
        parser.error(
            f"{per_x_token} posts per X token; the sandbox caps X tokens at {X_SANDBOX_CAP}: "
            "give more --accounts"
        )
    return options


# -- percentiles and printing -------------------------------------------------------------


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def distribution(values: list[float]) -> str:
    if not values:
        return "no values"
    ordered = sorted(values)
    points = [
        ("min", ordered[0]),
        ("p50", percentile(ordered, 0.50)),
        ("p90", percentile(ordered, 0.90)),
        ("p99", percentile(ordered, 0.99)),
        ("max", ordered[-1]),
    ]
    return "  ".join(f"{name} {value * 1000:8.1f} ms" for name, value in points)


def throughput(moments: list[float]) -> tuple[float, float]:
    """(publishes per second, span in seconds) from the first publish to the last."""
    if len(moments) < 2:
        return 0.0, 0.0
    span = max(moments) - min(moments)
    return ((len(moments) - 1) / span if span > 0 else math.inf), span


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- scratch resources --------------------------------------------------------------------


@dataclass
class Worker:
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop(popen: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the worker's own process group, SIGKILL if it lingers."""
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
        popen.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def celery_workers(env: dict[str, str], options: Options, log_dir: Path) -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    try:
        for index in range(options.workers):
            log_path = log_dir / f"worker-{index}.log"
            with log_path.open("wb") as handle:
                popen = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "workers.celery",
                        "worker",
                        "-Q",
                        QUEUES,
                        "-n",
                        f"bench{index}@%h",
                        "--pool",
                        "threads",
                        "-c",
                        str(options.concurrency),
                        "--without-mingle",
                        "--without-gossip",
                        "--loglevel",
                        "INFO",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            workers.append(Worker(popen, log_path))
        deadline = time.monotonic() + 60
        for worker in workers:
            while "ready." not in worker.log():
                if worker.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start:\n{worker.log()[-3000:]}")
                time.sleep(0.1)
        yield workers
    finally:
        for worker in workers:
            stop(worker.popen)
        if options.keep_logs is not None:
            options.keep_logs.mkdir(parents=True, exist_ok=True)
            for worker in workers:
                shutil.copy(worker.log_path, options.keep_logs / worker.log_path.name)


# -- the burst ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    key: str
    account_ids: list[int]  # X first, then LinkedIn


def create_tenant(app: Any, options: Options) -> Tenant:
    from app.db import get_db
    from app.services.accounts import add_account
    from app.services.keys import create_api_key

    with app.app_context(), get_db(app).session() as session:
        plain, api_key = create_api_key(session, name="bench-key", organisation_name="bench")
        organisation = api_key.organisation
        accounts = [
            add_account(
                session,
                app.config["CRIER"],
                platform="x",
                name=f"bench x {i}",
                access_token=f"bench-x-token-{i}",
                refresh_token=f"bench-x-refresh-{i}",
                external_id=str(9_000_000 + i),
                organisation=organisation,
            )
            for i in range(options.x_accounts)
        ] + [
            add_account(
                session,
                app.config["CRIER"],
                platform="linkedin",
                name=f"bench linkedin {i}",
                access_token=f"bench-li-token-{i}",
                refresh_token=f"bench-li-refresh-{i}",
                external_id=f"urn:li:person:{8_000_000 + i}",
                organisation=organisation,
            )
            for i in range(options.linkedin_accounts)
        ]
        session.commit()
        return Tenant(plain, [a.id for a in accounts])


BURST = "Burst post"
WARMUP = "Warm-up post"


def create_posts(
    api_url: str, tenant: Tenant, count: int, due: datetime | None, label: str = BURST
) -> None:
    """`count` posts through POST /posts, round-robin over the accounts, in parallel; all
    due at `due`, or published at once when it is None."""
    headers = {"Authorization": f"Bearer {tenant.key}"}
    limits = httpx.Limits(max_connections=16)
    with (
        httpx.Client(base_url=api_url, headers=headers, timeout=30, limits=limits) as api,
        ThreadPoolExecutor(max_workers=16) as pool,
    ):

        def create(n: int) -> None:
            account_id = tenant.account_ids[n % len(tenant.account_ids)]
            body: dict[str, Any] = {
                "content": f"{label} {n} of {count}",
                "account_ids": [account_id],
            }
            if due is not None:
                body["scheduled_at"] = due.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            response = api.post("/posts", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"POST /posts answered {response.status_code}: {response.text}")

        list(pool.map(create, range(count)))


def _rows(database_url: str, query: str, label: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        return conn.execute(query, (label + " %",)).fetchall()


def target_counts(database_url: str, label: str = BURST) -> Counter[str]:
    rows = _rows(
        database_url,
        "SELECT t.status, count(*) FROM post_targets t JOIN posts p ON p.id = t.post_id "
        "WHERE p.content LIKE %s GROUP BY t.status",
        label,
    )
    return Counter({status: count for status, count in rows})


def claim_moments(database_url: str, label: str = BURST) -> list[float]:
    """When each successful delivery started (claimed), from the attempts log."""
    rows = _rows(
        database_url,
        "SELECT extract(epoch FROM a.started_at) FROM publish_attempts a "
        "JOIN post_targets t ON t.id = a.target_id JOIN posts p ON p.id = t.post_id "
        "WHERE a.outcome = 'published' AND p.content LIKE %s",
        label,
    )
    return [float(row[0]) for row in rows]


def wait_until_final(
    database_url: str, total: int, deadline: float, label: str = BURST
) -> Counter[str]:
    while True:
        counts = target_counts(database_url, label)
        final = sum(counts[s] for s in FINAL_STATUSES)
        if final >= total or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def read_ledger(sandbox_url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{sandbox_url}/_ledger", timeout=30).json()


# -- the baseline -------------------------------------------------------------------------


def run_baseline(sandbox_url: str, publishes: int, tokens: int, threads: int) -> dict[str, Any]:
    """N X publishes straight through the adapter from a thread pool: no Celery, no DB.

    Runs in its own process (as the workers do), so it does not share the sandbox's
    interpreter lock. A fresh adapter per publish, as the pipeline builds one per task.
    """
    from workers.adapters.base import AccountCredentials, NullContext, PlatformError
    from workers.adapters.base import PublishRequest as Request
    from workers.adapters.x import XAdapter

    http = httpx.Client(
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
    )

    def publish(n: int) -> str | None:
        slot = n % tokens
        account = AccountCredentials(
            account_id=slot + 1,
            platform="x",
            name=f"baseline x {slot}",
            external_id=str(7_000_000 + slot),
            access_token=f"baseline-x-token-{slot}",
        )
        request = Request(
            target_id=n + 1,
            platform="x",
            account=account,
            text=f"Baseline post {n} of {publishes}",
            settings={"replySettings": "everyone"},
            media=[],
        )
        try:
            XAdapter(http, sandbox_url).publish(request, NullContext())
        except PlatformError as error:
            return error.code
        return None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.time()
        errors = [code for code in pool.map(publish, range(publishes)) if code]
        finished = time.time()
    http.close()
    return {"started": started, "finished": finished, "errors": Counter(errors)}


# -- main ---------------------------------------------------------------------------------


def quiet_logging() -> None:
    """The app logs every request at INFO; the benchmark prints only its results."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    root.setLevel(logging.WARNING)


def report_pipeline(
    options: Options,
    due: datetime,
    counts: Counter[str],
    entries: list[dict[str, Any]],
    claims: list[float],
) -> tuple[float, float]:
    received = [epoch(e["received_at"]) for e in entries]
    lateness = [moment - due.timestamp() for moment in received]
    rate, span = throughput(received)
    others = {s: n for s, n in counts.items() if s not in ("published", "failed")}
    print("pipeline: API -> PostgreSQL -> Redis -> Celery worker -> adapter -> sandbox")
    print(
        f"  published   {counts['published']} of {options.posts}"
        f" (failed {counts['failed']}{', other ' + str(others) if others else ''});"
        f" sandbox ledger holds {len(entries)}"
    )
    print(f"  lateness    {distribution(lateness)}   (ledger received_at - due instant)")
    print(
        f"  claimed     {distribution([c - due.timestamp() for c in claims])}"
        "   (delivery start - due instant)"
    )
    if lateness and min(lateness) < 0:
        print(f"  WARNING     {sum(1 for v in lateness if v < 0)} published before the instant")
    print(f"  throughput  {rate:8.1f} publishes/s   ({len(received)} over {span:.3f} s)")
    return (percentile(sorted(lateness), 0.5) if lateness else math.nan), rate


def report_baseline(
    options: Options, run: dict[str, Any], entries: list[dict[str, Any]]
) -> tuple[float, float]:
    received = [epoch(e["received_at"]) for e in entries]
    latency = [moment - run["started"] for moment in received]
    rate, span = throughput(received)
    print(
        f"baseline: X adapter called directly, {options.threads} threads, one process, "
        "no Celery, no DB"
    )
    errors = dict(run["errors"])
    print(
        f"  published   {len(entries)} of {options.posts}"
        + (f" (errors {errors})" if errors else "")
        + f"; all done in {run['finished'] - run['started']:.3f} s"
    )
    print(f"  from start  {distribution(latency)}   (ledger received_at - pool start)")
    print(f"  throughput  {rate:8.1f} publishes/s   ({len(received)} over {span:.3f} s)")
    return (percentile(sorted(latency), 0.5) if latency else math.nan), rate


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    quiet_logging()
    # A SIGTERM unwinds like Ctrl-C, so every cleanup below still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from app import create_app
    from app.db import get_db
    from devtools.servers import serve_wsgi
    from sandbox import create_sandbox_app

    began = time.monotonic()
    print(
        f"publish burst: {options.posts} posts over {options.accounts} accounts "
        f"({options.x_accounts} X, {options.linkedin_accounts} LinkedIn), "
        f"{options.workers} workers x {options.concurrency} threads"
    )
    with ExitStack() as stack:
        scratch = Path(tempfile.mkdtemp(prefix="crier-bench-"))
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        database_url = stack.enter_context(scratch_database("crier_bench"))
        redis_url = stack.enter_context(scratch_redis(CLAIM_KEY))
        sandbox_url = stack.enter_context(serve_wsgi(create_sandbox_app()))
        secret = "bench-" + uuid.uuid4().hex
        app = create_app(
            {
                "database_url": database_url,
                "redis_url": redis_url,
                "secret_key": secret,
                "media_dir": str(scratch / "media"),
                "platform_base_url": sandbox_url,
                "rate_limit": "1000000/minute",
                "posts_rate_limit": "1000000/minute",
            }
        )
        quiet_logging()
        stack.callback(lambda: get_db(app).engine.dispose())
        api_url = stack.enter_context(serve_wsgi(app))
        tenant = create_tenant(app, options)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CRIER_SECRET_KEY": secret,
            "CRIER_MEDIA_DIR": str(scratch / "media"),
            "CRIER_PLATFORM_BASE_URL": sandbox_url,
            "CRIER_X_PUBLISH_CAPS": "",
            "CRIER_LINKEDIN_PUBLISH_CAPS": "",
            "PYTHONUNBUFFERED": "1",
        }
        workers = stack.enter_context(celery_workers(env, options, scratch))
        if options.warmup:
            # Posts published at once, so every worker thread has opened its connections.
            create_posts(api_url, tenant, options.warmup, None, WARMUP)
            counts = wait_until_final(database_url, options.warmup, time.monotonic() + 60, WARMUP)
            httpx.post(f"{sandbox_url}/_reset", timeout=10).raise_for_status()
            print(f"  warm-up: {counts['published']} of {options.warmup} posts published")
        print(
            f"  setup (database, migrations, sandbox, API, workers): "
            f"{time.monotonic() - began:.1f} s"
        )

        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=options.lead)
        creating = time.monotonic()
        create_posts(api_url, tenant, options.posts, due)
        created_in = time.monotonic() - creating
        margin = (due - datetime.now(UTC)).total_seconds()
        print(f"  created {options.posts} posts in {created_in:.2f} s; due in {margin:.2f} s")
        if margin < 0:
            print("  the posts were not all created before their instant: use a longer --lead")
            return 1
        deadline = time.monotonic() + margin + 30 + options.posts / 10
        counts = wait_until_final(database_url, options.posts, deadline)
        entries = read_ledger(sandbox_url)
        claims = claim_moments(database_url)
        print()
        pipeline_p50, pipeline_rate = report_pipeline(options, due, counts, entries, claims)
        complete = sum(counts[s] for s in FINAL_STATUSES) == options.posts
        if not complete:
            print(f"  NOT FINISHED in time: {dict(counts)}")
            for index, worker in enumerate(workers):
                print(f"  worker {index} log tail:\n{worker.log()[-2000:]}")

        httpx.post(f"{sandbox_url}/_reset", timeout=10).raise_for_status()
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as child:
            run = child.submit(
                run_baseline, sandbox_url, options.posts, options.x_accounts, options.threads
            ).result()
        print()
        baseline_p50, baseline_rate = report_baseline(options, run, read_ledger(sandbox_url))
        print()
        print(
            f"overhead: median lateness {pipeline_p50 * 1000:.1f} ms vs {baseline_p50 * 1000:.1f}"
            f" ms from start; throughput {pipeline_rate:.1f} vs {baseline_rate:.1f} publishes/s"
        )
        print(f"total run {time.monotonic() - began:.1f} s (cleaning up)")
        return 0 if complete and counts["published"] == options.posts else 1


if __name__ == "__main__":
    sys.exit(main())
