"""`make bench --only metrics_burst` at a tiny size, through the real stack: the quiet
bursts and the one under collection each report their lateness, the collection its calls
and batched writes, the table prints them, and nothing the run made is left. No timing is
asserted (whether lateness moved, or the collection overlapped the burst, is a figure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.test_bench_smoke import (
    ROOT,
    assert_lateness,
    databases_left,
    processes_mentioning,
    redis_claims_left,
)

pytestmark = pytest.mark.integration

# --smoke sizes: a burst of 4, 200 targets over 110 accounts (10 on each of the eleven
# platforms with a collector), so each account has one or two.
BURST, TARGETS, ACCOUNTS = 4, 200, 110
EACH = ACCOUNTS // 11
BATCHED = ("x", "youtube", "tiktok", "linkedin", "facebook", "mastodon")
ONE_A_POST = ("instagram", "threads", "pinterest", "wordpress")


def test_metrics_burst_reports_each_burst_and_the_collection_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out" / "results.json"
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    command = ["-m", "benchmarks.run", "--only", "metrics_burst", "--smoke", "--output"]
    completed = subprocess.run(
        [sys.executable, *command, str(output)],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch_root)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["errors"] == {}
    m = results["metrics_burst"]

    # Two quiet bursts before the collection and one after, and the one under it.
    assert m["size"] == BURST and len(m["quiet"]) == 3
    for burst in [*m["quiet"], m["collecting"]]:
        assert burst["targets"] == burst["published"] == burst["ledger_entries"] == BURST
        assert_lateness(burst["lateness"], BURST)
        assert_lateness(burst["fired_lateness"], BURST)

    c = m["collection"]
    assert c["targets"] == c["readings"] == TARGETS and c["accounts"] == ACCOUNTS
    # At most 100 targets an account: one collect message each, one INSERT of its
    # readings, and one UPDATE of next instants per message and per finder run.
    assert c["messages"] == ACCOUNTS
    assert c["db_writes_by_kind"]["INSERT metric_snapshots"] == ACCOUNTS
    finders = c["tasks"]["crier.find_due_metrics"]
    assert ACCOUNTS + 1 <= c["db_writes_by_kind"]["UPDATE post_targets"] <= ACCOUNTS + finders
    assert c["db_write_statements"] == sum(c["db_writes_by_kind"].values())
    assert ACCOUNTS + 1 <= c["db_transactions"] <= ACCOUNTS + finders
    # Batched platforms take one call for an account's few posts (Bluesky a sign-in too,
    # where the worker holds no session yet); the others one a post.
    calls = c["platform_calls_by_platform"]
    assert set(calls) == {*BATCHED, *ONE_A_POST, "bluesky"}
    for platform in BATCHED:
        assert calls[platform] == EACH, platform
    assert EACH <= calls["bluesky"] <= 2 * EACH
    for platform in ONE_A_POST:
        assert EACH <= calls[platform] <= 2 * EACH, platform
    assert c["platform_calls"] == sum(calls.values())
    # The worker's commits report every reading PostgreSQL holds.
    assert c["readings_reported"] == TARGETS
    during = c["during_burst"]
    assert 0 <= during["readings"] <= TARGETS and during["window_seconds"] >= 0
    assert c["first_reading_at"] <= c["last_reading_at"]
    assert isinstance(c["overlapped"], bool)

    verdict = m["verdict"]
    assert len(verdict["quiet_p99"]) == 3 and verdict["tolerance"] > 0
    assert isinstance(verdict["moved"], bool)

    for label in ("publishing alone, before (1)", "publishing alone, after", "collecting 200"):
        assert label in completed.stdout
    assert "collection during the burst" in completed.stdout

    claimed = results["meta"]["claimed"]
    assert databases_left(claimed["databases"]) == []
    assert redis_claims_left(claimed["redis"], claimed["by"]) == []
    assert processes_mentioning(str(scratch_root)) == []
    assert list(scratch_root.iterdir()) == []
