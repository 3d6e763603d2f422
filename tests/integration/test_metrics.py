"""/metrics on the web process and on a worker's port: posts published through faults are
counted back from the metrics."""

from __future__ import annotations

import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from app.queues import queue_names
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_delivery import all_final, attempts, create, targets


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_worker_and_web_metrics_count_what_happened(
    app: Flask,
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    live_url: str,
) -> None:
    sandbox.post(
        "/_faults",
        json={
            "x": {"error_rate": 0.3, "error_status": 503, "rate_limit_every": 3, "retry_after": 1},
            "linkedin": {"revoked_tokens": ["li-revoked"]},
        },
    )
    port = free_port()
    stack.worker(concurrency=4, extra_env={"CRIER_METRICS_PORT": str(port)})
    stack.beat()
    x_account = make_account(tenant, "x")
    li_account = make_account(
        tenant, "linkedin", access_token="li-revoked", external_id="urn:li:person:m1"
    )
    make_account(tenant, "tiktok", status="needs_reconnect")
    for n in range(6):
        create(tenant, [x_account], f"Counted post {n}")
    create(tenant, [li_account], "Refused post")
    wait_until(lambda: all_final(app, 7), timeout=90)

    worker = scrape(f"http://127.0.0.1:{port}/metrics")
    recorded = Counter((a.target_id, a.outcome) for a in attempts(app))
    by_outcome = Counter(outcome for _, outcome in recorded.elements())
    platform_of = {t.id: t.platform for t in targets(app)}
    for (target_id, outcome), count in recorded.items():
        assert count <= value(
            worker,
            "crier_publish_outcomes_total",
            platform=platform_of[target_id],
            outcome=outcome,
        )
    for outcome, count in by_outcome.items():
        assert value(worker, "crier_publish_outcomes_total", outcome=outcome) == count, outcome
    assert by_outcome["rate_limited"] >= 1  # every third call to X answered 429
    assert value(worker, "crier_holds_total", platform="x") == by_outcome["rate_limited"]
    assert value(worker, "crier_publish_outcomes_total", **{"class": "success"}) == sum(
        1 for t in targets(app) if t.status == "published"
    )
    published_x = sum(1 for t in targets(app) if t.platform == "x" and t.status == "published")
    assert value(worker, "crier_publish_lateness_seconds_count", platform="x") >= published_x
    assert value(worker, "crier_publish_attempts_total", platform="x") == sum(
        c for (t, o), c in recorded.items() if platform_of[t] == "x"
    )
    assert value(worker, "crier_sweeper_runs_total") >= 1

    web = scrape(f"{live_url}/metrics")
    statuses = Counter((t.platform, t.status) for t in targets(app))
    for status in ("published", "failed", "unconfirmed", "queued", "scheduled"):
        assert value(web, "crier_targets", platform="x", status=status) == statuses[("x", status)]
    assert value(web, "crier_targets", platform="linkedin", status="failed") == 1
    assert value(web, "crier_accounts", platform="tiktok", status="needs_reconnect") == 1
    assert value(web, "crier_accounts", platform="x", status="active") == 1
    assert value(web, "crier_broker_up") == 1
    for name in queue_names():
        assert value(web, "crier_queue_depth", queue=name) == 0
        assert value(web, "crier_queue_oldest_message_age_seconds", queue=name) == 0
    assert value(web, "crier_beat_last_tick_timestamp_seconds") > 0


def test_prefork_worker_in_multiprocess_mode_adds_up_its_children(
    app: Flask,
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    tmp_path: Path,
) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    port = free_port()
    stack.worker(
        concurrency=2,
        pool="prefork",
        extra_env={"CRIER_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
    )
    account_id = make_account(tenant, "x")
    for n in range(4):
        create(tenant, [account_id], f"Prefork post {n}")
    wait_until(lambda: all_final(app, 4), timeout=60)
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(samples, "crier_publish_outcomes_total", platform="x", outcome="published") == 4
    assert len(list(multiproc.glob("counter_*.db"))) >= 1


def test_gunicorn_web_serves_metrics_in_multiprocess_mode(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, tmp_path: Path
) -> None:
    """The web process as deployed: gunicorn with two workers and PROMETHEUS_MULTIPROC_DIR;
    any of them answers /metrics with the state and everyone's counters."""
    multiproc = tmp_path / "web-prometheus"
    multiproc.mkdir()
    port = free_port()
    web = stack.spawn(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            f"--bind=127.0.0.1:{port}",
            "--workers=2",
            "--threads=2",
            "app.wsgi:app",
        ],
        {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
    )
    web.wait_for("Booting worker", timeout=30)
    make_account(tenant, "youtube", status="needs_reconnect")
    samples = wait_until(
        lambda: _scrape_quietly(f"http://127.0.0.1:{port}/metrics"), timeout=30, interval=0.5
    )
    assert value(samples, "crier_accounts", platform="youtube", status="needs_reconnect") == 1
    assert value(samples, "crier_broker_up") == 1 and value(samples, "crier_database_up") == 1
    # Counters come from the files of every gunicorn process, not one process's memory.
    assert "crier_sweeper_runs_total" in {name for name, _ in samples}
    assert list(multiproc.glob("counter_*.db"))


def _scrape_quietly(url: str) -> dict[Any, float] | None:
    try:
        return scrape(url)
    except (httpx.HTTPError, AssertionError):
        return None
