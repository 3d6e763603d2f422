"""Metrics collection at scale: N published targets (10,000 by default) spread over the
accounts of the eleven platforms with a collector, all due, read by the collector's own
functions against the sandbox. Prints how many platform calls and database writes it
took: both must follow the number of accounts and batches, not of targets one by one
(except where the platform reads one post a call).

    python -m benchmarks.metrics_collection [--targets 10000] [--accounts-per-platform 10]

Also `python -m benchmarks.run --only metrics` (not part of the default `make bench`).
The collector runs in this process (the finder, then each collect message on 8 threads
as a `worker_metrics` would), on a scratch database and Redis db of its own, against an
in-process sandbox that knows every post. Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from benchmarks.harness import connect, create_tenant, note_claim

PLATFORMS = (
    "x",
    "youtube",
    "tiktok",
    "linkedin",
    "facebook",
    "instagram",
    "threads",
    "pinterest",
    "bluesky",
    "mastodon",
    "wordpress",
)
THREADS = 8


@dataclass
class Outbox:
    """Celery's send_task, kept: the collect messages the finder would send."""

    sent: list[list[Any]] = field(default_factory=list)

    def send_task(self, name: str, args: list[Any], **_: Any) -> None:
        self.sent.append(args)


def post_id(platform: str, number: int) -> str:
    if platform == "linkedin":
        return f"urn:li:share:{7_000_000 + number}"
    if platform == "bluesky":  # an AT URI, as Bluesky names a post
        return f"at://did:plc:bench/app.bsky.feed.post/3l{number:011d}"
    return str(10**9 + number)


def insert_published(
    database_url: str, organisation_id: int, rows: list[tuple[Any, ...]], due: datetime | None
) -> None:
    """Published posts with one target each, published two hours ago, due for a reading
    at `due` (None: an hour ago)."""
    published = datetime.now(UTC) - timedelta(hours=2)
    due = due or published + timedelta(hours=1)
    with connect(database_url) as conn, conn.cursor() as cursor:
        with cursor.copy(
            "COPY posts (id, organisation_id, content, scheduled_at, publish_now, timezone, "
            "platform_content, media_ids, status, published_at, created_at, updated_at) FROM STDIN"
        ) as copy:
            for post, *_ in rows:
                copy.write_row(
                    (post, organisation_id, "bench", published, True, "UTC", "{}", "[]",
                     "published", published, published, published)
                )  # fmt: skip
        with cursor.copy(
            "COPY post_targets (post_id, account_id, platform, status, attempts, "
            "next_attempt_at, worker_losses, platform_post_id, published_at, next_metrics_at, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for post, account_id, platform, ref in rows:
                copy.write_row(
                    (post, account_id, platform, "published", 1, published, 0, ref, published,
                     due, published, published)
                )  # fmt: skip
        conn.commit()
        # Planned on the rows as they are, as after any day's publishing.
        conn.execute("ANALYZE post_targets")


@dataclass
class InsightsSandbox:
    """The sandbox in this process, serving the platforms' insights calls: its state (to
    seed posts into) and every call it received, by platform and by moment."""

    url: str
    state: Any
    calls: Counter[str] = field(default_factory=Counter)
    moments: list[float] = field(default_factory=list)

    def calls_between(self, start: float, end: float) -> int:
        return sum(1 for moment in self.moments if start <= moment <= end)


@contextmanager
def insights_sandbox() -> Iterator[InsightsSandbox]:
    from devtools.servers import serve_wsgi
    from sandbox import create_sandbox_app

    app = create_sandbox_app()
    sandbox = InsightsSandbox("", app.extensions["sandbox.state"])
    served = app.wsgi_app

    def counted(environ: dict[str, Any], start_response: Any) -> Any:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith("/_"):
            sandbox.calls[path.split("/")[1]] += 1
            sandbox.moments.append(time.time())
        return served(environ, start_response)

    app.wsgi_app = counted  # type: ignore[method-assign]
    with serve_wsgi(app) as url:
        sandbox.url = url
        yield sandbox


def seed_published(
    app: Any,
    database_url: str,
    sandbox: InsightsSandbox,
    targets: int,
    accounts_per_platform: int,
    due: datetime | None = None,
) -> int:
    """`targets` published targets spread over `accounts_per_platform` accounts of each
    platform, known to the sandbox, due for a reading at `due`; the number of accounts."""
    tenant = create_tenant(app, "metrics", dict.fromkeys(PLATFORMS, accounts_per_platform))
    accounts = [(p, a) for p in PLATFORMS for a in tenant.accounts[p]]
    rows = []
    for number in range(targets):
        platform, account_id = accounts[number % len(accounts)]
        ref = post_id(platform, number)
        rows.append((uuid.uuid4(), account_id, platform, ref))
        sandbox.state.record(platform, str(account_id), ref, "bench", [], {})
        if platform == "youtube":  # videos.list reads the sandbox's videos
            videos = sandbox.state.store("youtube").setdefault("videos", {})
            videos[ref] = {
                "id": ref,
                "status": {"privacyStatus": "public"},
                "snippet": {"channelId": f"UC{account_id}"},
            }
    insert_published(database_url, tenant.organisation_id, rows, due)
    return len(accounts)


def run_metrics(scratch: Path, targets: int, accounts_per_platform: int = 10) -> dict[str, Any]:
    from app import create_app
    from app.db import get_db
    from devtools.scratch import scratch_database, scratch_redis
    from workers.adapters import get_adapter
    from workers.analytics import MetricsDeps, collect_metrics, find_due_metrics
    from workers.quotas import SharedQuotas

    with ExitStack() as stack:
        database_url = stack.enter_context(scratch_database("crier_bench_metrics"))
        redis_url = stack.enter_context(scratch_redis("crier:bench-metrics-claim"))
        note_claim(database_url, redis_url)
        app = create_app(
            {
                "database_url": database_url,
                "redis_url": redis_url,
                "secret_key": "bench-" + uuid.uuid4().hex,
                "media_dir": str(scratch / "metrics-media"),
            }
        )
        db = get_db(app)
        stack.callback(db.engine.dispose)
        db.resize(THREADS + 4)
        sandbox = stack.enter_context(insights_sandbox())
        accounts = seed_published(app, database_url, sandbox, targets, accounts_per_platform)
        writes: Counter[str] = Counter()

        @event.listens_for(db.engine, "before_cursor_execute")
        def count_write(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            verb = statement.lstrip().split(" ", 1)[0].upper()
            if verb in ("INSERT", "UPDATE", "DELETE"):
                writes[verb] += 1

        @event.listens_for(db.engine, "commit")
        def count_commit(conn: Any) -> None:
            writes["COMMIT"] += 1

        http = stack.enter_context(httpx.Client(timeout=30))
        settings = app.config["CRIER"]
        adapters = {p: get_adapter(p, http, sandbox.url, settings) for p in PLATFORMS}
        outbox = Outbox()
        deps = MetricsDeps(db, settings, outbox, SharedQuotas(redis_url), adapters.__getitem__)  # type: ignore[arg-type]
        began = time.monotonic()
        now = datetime.now(UTC)
        with app.app_context():
            while find_due_metrics(db, outbox, now):  # type: ignore[arg-type]
                pass
            found_in = time.monotonic() - began
            with ThreadPoolExecutor(THREADS) as pool:
                reports = list(pool.map(lambda args: collect_metrics(deps, *args), outbox.sent))
        seconds = time.monotonic() - began
        snapshots = sum(r.snapshots for r in reports)
        return {
            "targets": targets,
            "accounts": accounts,
            "messages": len(outbox.sent),
            "snapshots": snapshots,
            "skipped": sum(r.skipped for r in reports),
            "platform_calls": sum(sandbox.calls.values()),
            "platform_calls_by_platform": dict(sorted(sandbox.calls.items())),
            "db_write_statements": writes["INSERT"] + writes["UPDATE"] + writes["DELETE"],
            "db_writes_by_kind": dict(sorted(writes.items())),
            "find_seconds": round(found_in, 2),
            "seconds": round(seconds, 2),
            "readings_per_second": round(snapshots / seconds, 1) if seconds else None,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics_collection")
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--accounts-per-platform", type=int, default=10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="crier-bench-metrics-") as scratch:
        result = run_metrics(Path(scratch), args.targets, args.accounts_per_platform)
    print(json.dumps(result, indent=2))
    return 0 if result["snapshots"] == args.targets else 1


if __name__ == "__main__":
    sys.exit(main())
