"""`make bench` in its smoke mode: every scenario at a tiny size, through the real stack
(gunicorn, the Procfile's workers and beat, bare Celery, the sandbox). The JSON must carry
every figure with its baseline, nothing may be published early, and everything the run
made (processes, databases, Redis dbs, files) must be gone. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from devtools.scratch import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]
LATENESS_KEYS = {"count", "min", "p50", "p95", "p99", "max", "early"}

pytestmark = pytest.mark.integration


def databases_left(names: list[str]) -> list[str]:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)
        ).fetchall()
    return [name for (name,) in rows]


def redis_claims_left(urls: list[str], claimed_by: int) -> list[str]:
    """The run's Redis dbs that still hold the run's own claim: a claim key whose value
    is the id of the process that claimed it (another run, even another benchmark, may
    have claimed a freed db since, with a claim of its own)."""
    left = []
    for url in urls:
        client = redis.Redis.from_url(url)
        if any(client.get(key) == str(claimed_by).encode() for key in client.scan_iter("crier:*")):
            left.append(url)
    return left


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose environment names `text` (the run's scratch directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def assert_lateness(stats: dict[str, Any], count: int) -> None:
    assert set(stats) == LATENESS_KEYS, stats
    assert stats["count"] == count, stats
    assert stats["early"] == 0, f"published before the instant: {stats}"
    assert stats["min"] <= stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]


def assert_bare_celery(figure: dict[str, Any], tasks: int) -> None:
    assert figure["tasks"] == tasks
    assert figure["pool"] and figure["concurrency"] >= 1
    assert figure["drain_seconds"] >= 0
    assert figure["per_second"] is None or figure["per_second"] > 0


def test_smoke_run_reports_every_figure_beside_its_baseline_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out" / "results.json"
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--output", str(output)],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch_root)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["errors"] == {}
    assert results["meta"]["smoke"] is True

    [(size, burst)] = results["burst"].items()
    assert burst["targets"] == int(size) == burst["published"] == burst["ledger_entries"]
    assert_lateness(burst["lateness"], int(size))
    assert burst["throughput"]["count"] == int(size)
    assert_bare_celery(burst["bare_celery"], int(size))
    # When each delivery fired (one attempt each), and the sandbox taking the same
    # number of calls straight from as many threads as a worker fires with.
    assert_lateness(burst["fired_lateness"], int(size))
    alone = burst["sandbox_alone"]
    assert alone["calls"] == alone["received"] == int(size)
    assert alone["lateness"]["count"] == int(size) and alone["lateness"]["min"] >= 0

    video = results["video"]
    n = video["posts_per_platform"]
    assert video["published"] == 2 * n
    for platform in ("instagram", "linkedin"):
        assert video[platform]["ledger_entries"] == n
        assert_lateness(video[platform]["lateness"], n)
    assert_lateness(video["lateness"], 2 * n)
    assert_bare_celery(video["bare_celery"], 2 * n)

    throughput = results["throughput"]
    assert throughput["crier_per_second"] > 0 and throughput["bare_celery_per_second"] > 0
    assert throughput["ratio"] > 0

    now = results["now"]
    assert now["targets"] == now["published"] == now["ledger_entries"]
    assert now["throughput"]["count"] == now["targets"]
    assert_bare_celery(now["bare_celery"], now["targets"])

    cancel = results["cancel"]
    assert cancel["changes"] == cancel["accepted"] + cancel["refused"] > 0
    # A change answered 200 never reached the platform; one refused did, once.
    assert cancel["accepted_yet_published"] == 0
    assert cancel["refused_and_published"] == cancel["refused"]

    intake = results["intake"]
    for figure in (
        "single",
        "bulk",
        "floor_single",
        "floor_bulk",
        "http_ceiling",
        "http_floor",
        "http_round_trips",
    ):
        assert intake[figure]["clients"] == 8
        assert intake[figure]["items"] > 0 and intake[figure]["per_second"] > 0
        assert intake[figure]["errors"] == []

    memory = results["memory"]
    assert memory["total_kib_none"] > 0 and memory["total_kib_loaded"] > 0
    assert set(memory["rss_kib_none"]) == set(memory["rss_kib_loaded"])
    assert len(memory["rss_kib_none"]) >= 1 and memory["ratio"] > 0

    sweep = results["sweep"]
    sizes = sorted(int(k) for k in sweep if k.isdigit())
    assert len(sizes) == 2
    for rows in sizes:
        assert sweep[str(rows)]["rows"] == rows
        assert len(sweep[str(rows)]["timings"]) == sweep[str(rows)]["runs"]
        assert sweep[str(rows)]["median_seconds"] > 0
    assert sweep["ratio"] > 0

    # The printed table names every figure.
    labels = ("due at one instant", "Reels", "throughput", "POST /posts", "RSS", "sweep")
    for label in (*labels, "published now", "cancel or reschedule still accepted"):
        assert label in completed.stdout

    # Nothing is left behind.
    claimed = results["meta"]["claimed"]
    assert len(claimed["databases"]) == 2 and len(claimed["redis"]) == 3
    assert databases_left(claimed["databases"]) == []
    assert redis_claims_left(claimed["redis"], claimed["by"]) == []
    assert processes_mentioning(str(scratch_root)) == []
    assert list(scratch_root.iterdir()) == []
