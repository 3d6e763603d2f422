"""Flower, started from the Procfile's own line against the suite's broker."""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Tenant
from tests.integration.conftest import ROOT, Stack, wait_until


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"Procfile has no {name} line")


def test_flower_lists_workers_and_publish_tasks(
    stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bin_dir = str(Path(sys.executable).parent)
    flower = stack.spawn(
        "flower",
        ["bash", "-c", procfile_line("flower")],
        {
            "FLOWER_PORT": str(port),
            "FLOWER_UNAUTHENTICATED_API": "true",
            "PATH": f"{bin_dir}:{stack.env['PATH']}",
        },
    )
    flower.wait_for("Visit me at", timeout=30)
    stack.worker("flowerwatched")
    account_id = make_account(tenant, "x")
    for n in range(2):
        assert (
            tenant.api.post(
                "/posts", json={"content": f"Watched by Flower {n}", "account_ids": [account_id]}
            ).status_code
            == 201
        )

    def publish_tasks() -> list[dict[str, Any]] | None:
        tasks = httpx.get(f"http://127.0.0.1:{port}/api/tasks", timeout=5).json()
        done = [
            t
            for t in tasks.values()
            if t["name"].startswith("publish x account=") and t["state"] == "SUCCESS"
        ]
        return done if len(done) >= 2 else None

    tasks = wait_until(publish_tasks, timeout=30, interval=0.5)
    assert {t["worker"].split("@")[0] for t in tasks} == {"flowerwatched"}
    # Published now, so each task fired itself and reports the outcome.
    assert all(t["result"] in ("'published'", "published") for t in tasks)
    # Flower names each publish by platform, account and post (the task's shadow name),
    # and its args never show the dispatch token (a UUID) or the post's full id.
    for task in tasks:
        assert task["name"] == f"publish x account={account_id} post={task['name'][-9:]}"
        assert task["name"].endswith("…")
        assert task["args"].startswith(f"account={account_id} post=")
        assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", task["args"] + task["name"])
    # Flower's own Prometheus endpoint, scraped beside Crier's (deploy/prometheus).
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert metrics.status_code == 200 and "flower_events_total" in metrics.text
    workers = wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/api/workers?refresh=1", timeout=10).json(),
        timeout=30,
        interval=1,
    )
    assert any(name.startswith("flowerwatched@") for name in workers)
