"""compose heals itself: restart policies and the health checks it runs, each run here
for real against the suite's processes (web, a worker, beat), and beat's liveness in
/health."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Tenant
from tests.integration.conftest import ROOT, Stack, wait_until

COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = [name for name in SERVICES if name != "release"]


def test_compose_restarts_and_checks_every_long_running_service() -> None:
    for name in LONG_RUNNING:
        assert SERVICES[name].get("restart") in ("unless-stopped", "always", "on-failure:3"), name
        if name != "flower":
            assert SERVICES[name]["healthcheck"]["test"], name
    assert [n for n, s in SERVICES.items() if s.get("ports")] == ["web"]
    assert SERVICES["flower"]["command"][:2] == ["crier", "flower"]
    assert "FLOWER_UNAUTHENTICATED_API" not in (ROOT / "deploy" / "compose.yaml").read_text()
    for name in ("worker_meta", "worker_text", "worker_video", "worker_maintenance"):
        node = next(a for a in SERVICES[name]["command"] if a.endswith("@%h"))
        check = SERVICES[name]["healthcheck"]["test"][1]
        assert f"inspect ping -d {node.split('@')[0]}@$$HOSTNAME" in check, name
    for name in ("web", "worker_text", "beat"):
        depends = SERVICES[name]["depends_on"]
        assert depends["redis"] == {"condition": "service_healthy"}
        assert depends["postgres"] == {"condition": "service_healthy"}


def _run(command: list[str] | str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        shell=isinstance(command, str),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(stack: Stack) -> dict[str, str]:
    return {**stack.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def test_web_health_check(stack: Stack, live_url: str) -> None:
    env = _env(stack)
    check = SERVICES["web"]["healthcheck"]["test"][1:]
    up = _run([*check[:-1], f"{live_url}/health"], env)
    assert up.returncode == 0, up.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    down = _run([*check[:-1], f"http://127.0.0.1:{dead_port}/health"], env)
    assert down.returncode == 1 and "web is down" in down.stderr


def test_worker_health_check_pings_its_own_node(stack: Stack) -> None:
    env = _env(stack)
    check = SERVICES["worker_text"]["healthcheck"]["test"][1].replace("$$", "$")
    stack.worker("text", queues="publish.x,publish.linkedin", concurrency=2)
    alive = _run(check, {**env, "HOSTNAME": socket.gethostname()})
    assert alive.returncode == 0, alive.stdout + alive.stderr
    elsewhere = _run(check, {**env, "HOSTNAME": "no-such-host"})
    assert elsewhere.returncode != 0


def test_beat_health_check_and_health_see_a_dead_beat(
    stack: Stack, tenant: Tenant, app: Any
) -> None:
    env = _env(stack)
    check = [*SERVICES["beat"]["healthcheck"]["test"][1:-1], "3"]
    assert _run(check, env).returncode == 1  # never stamped
    beat = stack.beat()
    wait_until(lambda: _run(check, env).returncode == 0, timeout=30, interval=0.5)
    wait_until(lambda: tenant.api.get("/health").json()["data"]["checks"]["beat"]["ok"], timeout=10)
    beat.kill(signal.SIGKILL)
    time.sleep(4)
    dead = _run(check, env)
    assert dead.returncode == 1 and "beat is dead" in dead.stderr
    from app.api import meta

    original = meta.BEAT_FRESH_SECONDS
    meta.BEAT_FRESH_SECONDS = 3
    try:
        body = tenant.api.get("/health").json()
    finally:
        meta.BEAT_FRESH_SECONDS = original
    assert body["data"]["status"] == "ok"  # the API itself is up
    assert body["data"]["checks"]["beat"]["ok"] is False
