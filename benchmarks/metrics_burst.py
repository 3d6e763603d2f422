"""`metrics_burst`: does collecting analytics move publishing's lateness? One run measures
the same scheduled burst (N targets due at one instant, benchmarks/bursts.py) with only
the publishing workers busy, twice, then once while the analytics collector reads the
figures of 10,000 published targets (seeded as benchmarks/metrics_collection.py seeds
them), then alone once more, and prints them side by side with the collection's cost.

    python -m benchmarks.run --only metrics_burst [--metrics-burst-size 500]
        [--metrics-targets 10000] [--metrics-head-start 5] [--lead 15]

How the collection runs: the Procfile's `worker_metrics` line, as is, started once the
quiet bursts are done (benchmarks/counted_worker.py runs it in a process that counts its
database writes, transactions and tasks). The targets are due `--metrics-head-start`
seconds before the burst's instant, and the finder beat sends every minute
(`crier.find_due_metrics`) is sent then, once per DUE_BATCH targets, so all 10,000 are
being collected at the instant (beat would hand out DUE_BATCH a minute: this is the
heavier case). Their accounts' ids interleave the seven platforms, so any stretch of the
collection mixes batched reads with Instagram's and Threads' one call a post. The
insights calls go to a sandbox of their own in this process, counted as they arrive; the
publishing calls to the stack's sandbox process, whose ledger gives the lateness. A
platform serves reads and posts on machines of its own: one sandbox process for both
would measure its own queue. Both still run on the same cores as Crier.

Overlap is checked, not assumed: the metrics worker's own commits (with the readings
each wrote) and the insights calls are kept with their moments, so the figures say when
the collection wrote its first and last readings and how many readings, transactions and
calls fell between the instant and the last publish. PostgreSQL's count of readings,
sampled every 0.1 s (during the quiet bursts too, so each burst bears the same
sampling), cross-checks them.

Collection steps aside for a burst (workers/analytics.py): its batches, sent before the
instant, meet the burst's open targets and are sent again a little later, until it has
published; the table counts them. So the collection is under way at the instant without
sharing the burst's seconds.

Whether lateness moved: the burst under collection against the quiet ones (two before,
one after). Their spread is this run's own noise, from the machine and from whatever
else runs on it; the tolerance is that spread, and at least TOLERANCE_SHARE of the quiet
runs' median p99 (on a quiet machine a burst's p99 varies by about a tenth from run to
run). Lateness moved when the p99 under collection exceeds the highest quiet p99 by more
than the tolerance.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.bursts import scheduled_burst
from benchmarks.harness import BIN, Proc, Stack, connect, due_in, procfile
from benchmarks.metrics_collection import InsightsSandbox, insights_sandbox, seed_published

METRICS_LINE = "worker_metrics"
# Bursts with publishing alone: before the collection, and one after it.
QUIET_BEFORE = 2
TOLERANCE_SHARE = 0.10
SAMPLE_SECONDS = 0.1
ACCOUNTS_PER_PLATFORM = 10
# The collection's own tables; any other write of the metrics worker (its heartbeat) is
# counted apart.
COLLECTION_TABLES = ("metric_snapshots", "post_targets")


@dataclass
class Sampler:
    """count(*) of the readings every SAMPLE_SECONDS, on a connection of its own."""

    database_url: str
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with connect(self.database_url) as conn:
            while not self._stop.is_set():
                (count,) = conn.execute("SELECT count(*) FROM metric_snapshots").fetchone()
                self.samples.append((time.time(), int(count)))
                self._stop.wait(SAMPLE_SECONDS)

    def written_between(self, start: float, end: float) -> int:
        """Readings committed between `start` and `end`, at least: from the first sample
        at or after `start` to the last at or before `end`."""
        inside = [count for moment, count in self.samples if start <= moment <= end]
        return inside[-1] - inside[0] if len(inside) >= 2 else 0

    def count_by(self, moment: float) -> int:
        """Readings committed by `moment`, as last seen at or before it."""
        seen = [count for at, count in self.samples if at <= moment]
        return seen[-1] if seen else 0

    def last(self) -> int:
        return self.samples[-1][1] if self.samples else 0


@contextmanager
def sampling(database_url: str) -> Iterator[Sampler]:
    sampler = Sampler(database_url)
    thread = threading.Thread(target=sampler.run, daemon=True, name="readings-sampler")
    thread.start()
    try:
        yield sampler
    finally:
        sampler._stop.set()
        thread.join(timeout=10)


def stop_line(stack: Stack, name: str) -> None:
    """Stop the stack's process of a Procfile line, if it runs."""
    for proc in [p for p in stack.workers if p.name == name]:
        stack.procs.stop(proc)
        stack.workers.remove(proc)


def start_counted(stack: Stack, name: str, out: Path, env: dict[str, str]) -> Proc:
    """The Procfile line `name`, expanded by the shell as the Procfile's runner would, in a
    process that counts its writes into `out`."""
    command = f"{BIN / 'python'} -m benchmarks.counted_worker {out} {procfile()[name]}"
    proc = stack.procs.spawn(name, ["/bin/sh", "-c", f"exec {command}"], env)
    proc.wait_for("ready.")
    return proc


def wait_for_readings(sampler: Sampler, wanted: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sampler.last() < wanted and time.monotonic() < deadline:
        time.sleep(SAMPLE_SECONDS)


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def collection_cost(
    counts: dict[str, Any], sandbox: InsightsSandbox, started: float, window: tuple[float, float]
) -> dict[str, Any]:
    """Platform calls, write statements, transactions and readings of the collection, and
    how many of each fell in `window` (the instant to the last publish)."""
    writes = [w for w in counts["writes"] if w[2] in COLLECTION_TABLES]
    commits = [c for c in counts["commits"] if set(c[1]) & set(COLLECTION_TABLES)]
    readings = [c for c in commits if "metric_snapshots" in c[1]]
    finished = max((c[0] for c in readings), default=started)
    seconds = finished - started
    by_kind = Counter(f"{verb} {table}" for _, verb, table in writes)
    start, end = window
    inside = [c for c in commits if start <= c[0] <= end]
    calls = sandbox.calls_between(start, end)
    span = max(end - start, 1e-3)
    from workers.analytics import YIELDED

    total_calls = sum(sandbox.calls.values())
    yielded = counts.get("outcomes", {}).get(YIELDED, 0)
    return {
        "tasks": counts["tasks"],
        # Batches collected; a batch that stepped aside for the burst ran once more each
        # time it did.
        "messages": counts["tasks"].get("crier.collect_metrics", 0) - yielded,
        "yielded": yielded,
        "platform_calls": total_calls,
        "platform_calls_by_platform": dict(sorted(sandbox.calls.items())),
        "db_write_statements": len(writes),
        "db_writes_by_kind": dict(sorted(by_kind.items())),
        "db_transactions": len(commits),
        "other_writes": len(counts["writes"]) - len(writes),
        "readings_reported": sum(c[2] for c in readings),
        "seconds": round(seconds, 2),
        "calls_per_second": round(total_calls / seconds, 1) if seconds > 0 else None,
        # The collection's first and last readings, from the instant (negative: before).
        "first_reading_at": round(min((c[0] for c in readings), default=start) - start, 3),
        "last_reading_at": round(finished - start, 3),
        "during_burst": {
            "window_seconds": round(end - start, 3),
            "readings": sum(c[2] for c in inside if "metric_snapshots" in c[1]),
            "db_transactions": len(inside),
            "db_write_statements": sum(1 for w in writes if start <= w[0] <= end),
            "platform_calls": calls,
            "calls_per_second": round(calls / span, 1),
        },
    }


def verdict(quiet: list[dict[str, Any]], busy: dict[str, Any]) -> dict[str, Any]:
    """Whether the p99 under collection left the quiet runs' band (see the module's doc)."""
    p99s = [q["lateness"]["p99"] for q in quiet if q["lateness"].get("p99") is not None]
    p99 = busy["lateness"].get("p99")
    if not p99s or p99 is None:
        return {"moved": None}
    spread = max(p99s) - min(p99s)
    tolerance = max(spread, TOLERANCE_SHARE * statistics.median(p99s))
    return {
        "quiet_p99": p99s,
        "quiet_spread": round(spread, 4),
        "tolerance": round(tolerance, 4),
        "limit": round(max(p99s) + tolerance, 4),
        "p99": p99,
        "change": round(p99 - max(p99s), 4),
        "moved": p99 > max(p99s) + tolerance,
    }


def quiet_burst(stack: Stack, label: str, size: int, lead: float) -> dict[str, Any]:
    """The burst with the publishing workers alone, sampled as the busy one is."""
    with sampling(stack.database_url):
        return scheduled_burst(stack, label, size, lead)


def run_metrics_burst(
    stack: Stack,
    size: int,
    targets: int,
    lead: float,
    head_start: float,
    scratch: Path,
) -> dict[str, Any]:
    from app.queues import METRICS_DUE_TASK, METRICS_QUEUE
    from workers.analytics import DUE_BATCH

    if head_start >= lead:
        raise ValueError("the collection must start after the burst's posts are created")
    # Only the publishing workers: the metrics line starts with the collection.
    stop_line(stack, METRICS_LINE)
    quiet = [quiet_burst(stack, f"quiet{run}", size, lead) for run in range(QUIET_BEFORE)]
    counts_path = scratch / "metrics-worker-counts.json"
    with insights_sandbox() as sandbox, sampling(stack.database_url) as sampler:
        env = {**stack.env, "CRIER_PLATFORM_BASE_URL": sandbox.url}
        worker = start_counted(stack, METRICS_LINE, counts_path, env)
        # Seeding has its own seconds before the burst's posts are created, as the quiet
        # runs' are, `lead` seconds ahead.
        due = due_in(lead + 2 + targets / 1000)
        collect_at = due - timedelta(seconds=head_start)
        accounts = seed_published(
            stack.app, stack.database_url, sandbox, targets, ACCOUNTS_PER_PLATFORM, collect_at
        )
        if time.time() > due.timestamp() - lead:
            raise RuntimeError("seeding the published targets overran its allowance")
        sleep_until(due.timestamp() - lead)
        celery = stack.app.extensions["celery"]
        started: dict[str, float] = {}

        def collect_before_the_instant() -> None:
            sleep_until(collect_at.timestamp())
            started["at"] = time.time()
            for _ in range(math.ceil(targets / DUE_BATCH)):
                celery.send_task(METRICS_DUE_TASK, args=[0.0], queue=METRICS_QUEUE)

        busy = scheduled_burst(stack, "collecting", size, lead, due, collect_before_the_instant)
        wait_for_readings(sampler, targets, timeout=120 + targets / 50)
        stack.procs.stop(worker)  # its counts are written once more as it exits
        counts = json.loads(counts_path.read_text())
        window = (due.timestamp(), busy["last_publish"] or due.timestamp())
        collection = collection_cost(counts, sandbox, started["at"], window)
        readings = sampler.last()
        # PostgreSQL's own count, sampled: readings seen committed by the instant, between
        # samples inside the window (a lower bound), and after the last publish.
        collection["sampled"] = {
            "by_instant": sampler.count_by(window[0]),
            "in_window_at_least": sampler.written_between(*window),
            "after_window": readings - sampler.count_by(window[1]),
        }
    # And once more after, so a change in the machine's other load over the run shows.
    quiet.append(quiet_burst(stack, "quiet-after", size, lead))
    collection.update(
        targets=targets,
        accounts=accounts,
        readings=readings,
        readings_per_second=(
            round(readings / collection["seconds"], 1) if collection["seconds"] else None
        ),
        head_start_seconds=head_start,
        # Under way at the instant (its batches were sent before it, and then either
        # wrote readings or stepped aside during the burst) and still after the last
        # publish.
        overlapped=(
            collection["last_reading_at"] > collection["during_burst"]["window_seconds"]
            and (collection["yielded"] > 0 or collection["during_burst"]["readings"] > 0)
        ),
    )
    return {
        "size": size,
        "quiet": [trim(q) for q in quiet],
        "collecting": trim(busy),
        "collection": collection,
        "verdict": verdict(quiet, busy),
    }


def trim(burst: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in burst.items() if k not in ("organisation_id", "last_publish")}


# -- the table ----------------------------------------------------------------------------


def _spread(burst: dict[str, Any]) -> str:
    stats = burst["lateness"]
    if not stats.get("count"):
        return "nothing published"
    fired = burst.get("fired_lateness", {}).get("p99")
    return (
        ", ".join(f"{name} {stats[name]:.3f}" for name in ("p50", "p95", "p99", "max"))
        + f" s, early {stats['early']}"
        + ("" if fired is None else f"; fired p99 {fired:.3f} s")
    )


def table_rows(
    results: dict[str, Any], verdict_text: Callable[[bool | None], str]
) -> list[tuple[str, str, str, str, str]]:
    """(figure, Crier, baseline in the same run, goal, met) rows of `metrics_burst`."""
    if "metrics_burst" not in results:
        return []
    m = results["metrics_burst"]
    size, c, v = m["size"], m["collection"], m["verdict"]
    names = [f"before ({n})" for n in range(1, len(m["quiet"]))] + ["after"]
    rows: list[tuple[str, str, str, str, str]] = [
        (f"{size} due at one instant, publishing alone, {name}", _spread(quiet), "", "", "")
        for name, quiet in zip(names, m["quiet"], strict=True)
    ]
    busy = m["collecting"]
    quiet_p99 = " / ".join(f"{p:.3f}" for p in v.get("quiet_p99", []))
    moved = v.get("moved")
    rows.append(
        (
            f"{size} due at one instant, collecting {c['targets']:,} targets' metrics "
            f"({busy['published']}/{busy['targets']} published)",
            _spread(busy),
            f"alone: p99 {quiet_p99} s",
            f"p99 <= {v['limit']:.3f} s (tolerance {v['tolerance']:.3f} s)"
            if moved is not None
            else "",
            verdict_text(None if moved is None else not moved)
            + ("" if moved is None else (" (moved)" if moved else " (did not move)")),
        )
    )
    during = c["during_burst"]
    rows.append(
        (
            f"  collection during the burst ({during['window_seconds']:.3f} s, instant to last)",
            f"{during['readings']:,} readings, {during['db_transactions']} transactions, "
            f"{during['platform_calls']:,} calls ({during['calls_per_second']} /s); "
            f"{c['yielded']:,} collect messages stepped aside for it",
            f"batches sent at {-c['head_start_seconds']:+.1f} s; readings from "
            f"{c['first_reading_at']:+.1f} s to {c['last_reading_at']:+.1f} s; "
            f"{c['calls_per_second']} calls/s overall",
            "under way at the instant",
            verdict_text(c["overlapped"]),
        )
    )
    by_platform = ", ".join(f"{p} {n:,}" for p, n in c["platform_calls_by_platform"].items())
    rows.append(
        (
            f"  collection of {c['targets']:,} targets ({c['accounts']} accounts, "
            f"{c['messages']} messages)",
            f"{c['platform_calls']:,} calls, {c['db_write_statements']} write statements in "
            f"{c['db_transactions']} transactions",
            f"{c['readings']:,} readings in {c['seconds']} s, {c['readings_per_second']} /s",
            "",
            "",
        )
    )
    rows.append((f"    calls by platform: {by_platform}", "", "", "", ""))
    return rows
