"""Flower, started from the Procfile's own line against the suite's broker."""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.integration.conftest import ROOT, Stack, wait_until

FLOWER_PASSWORD = "flower-test-" + secrets.token_hex(8)
AUTH = ("ops", FLOWER_PASSWORD)


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
            "FLOWER_BASIC_AUTH": f"ops:{FLOWER_PASSWORD}",
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
        tasks = httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=AUTH, timeout=5).json()
        done = [
            t
            for t in tasks.values()
            if t["name"].startswith("publish x account=") and t["state"] == "SUCCESS"
        ]
        return done if len(done) >= 2 else None

    tasks = wait_until(publish_tasks, timeout=30, interval=0.5)
    assert {t["worker"].split("@")[0] for t in tasks} == {"flowerwatched"}
    # Published now: each delivery is readied and handed to the firing line, so the task
    # ends `ready` (the outcome is the target's: the API, webhooks and the metrics).
    assert all(t["result"] in ("'ready'", "ready") for t in tasks), [t["result"] for t in tasks]
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
        lambda: httpx.get(
            f"http://127.0.0.1:{port}/api/workers?refresh=1", auth=AUTH, timeout=10
        ).json(),
        timeout=30,
        interval=1,
    )
    assert any(name.startswith("flowerwatched@") for name in workers)
    # Without the password: nothing, neither the API nor the pages.
    assert httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=10).status_code == 401
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 401
    wrong = httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=("ops", "nope"), timeout=10)
    assert wrong.status_code == 401


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_flower_line_refuses_to_start_without_a_password(stack: Stack) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in stack.env.items() if not k.startswith("FLOWER_")},
        "FLOWER_PORT": str(_free_port()),
        "FLOWER_UNAUTHENTICATED_API": "true",
        "PATH": f"{bin_dir}:{stack.env['PATH']}",
    }
    for extra in ({}, {"FLOWER_BASIC_AUTH": "ops:short"}):
        done = subprocess.run(
            ["bash", "-c", procfile_line("flower")],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert "crier flower refuses to start" in done.stderr
        assert "FLOWER_BASIC_AUTH" in done.stderr


def test_flower_accepts_oauth_settings_instead_of_a_password() -> None:
    from app.flower import FlowerAuthMissing, check_flower_auth, flower_environment

    oauth = {
        "FLOWER_AUTH_PROVIDER": "flower.views.auth.GithubLoginHandler",
        "FLOWER_AUTH": ".*@example.com",
        "FLOWER_OAUTH2_KEY": "key",
        "FLOWER_OAUTH2_SECRET": "secret",
        "FLOWER_OAUTH2_REDIRECT_URI": "https://ops.example.com/login",
    }
    assert check_flower_auth(oauth) == "oauth"
    with pytest.raises(FlowerAuthMissing):
        check_flower_auth({**oauth, "FLOWER_OAUTH2_SECRET": ""})
    assert "FLOWER_UNAUTHENTICATED_API" not in flower_environment(
        {"FLOWER_UNAUTHENTICATED_API": "true", "FLOWER_BASIC_AUTH": "a:" + "b" * 20}
    )
