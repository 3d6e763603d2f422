"""`crier dev` — what `make run` starts — on the embedded default, from an empty folder."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from app.models import Platform
from tests.integration.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dev_stack_publishes_the_demo_post_to_every_platform(tmp_path: Path) -> None:
    web, sandbox, flower, redis_port = free_port(), free_port(), free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CRIER_PLATFORM_BASE_URL"}
    }
    env.update(
        PORT=str(web),
        CRIER_SANDBOX_PORT=str(sandbox),
        FLOWER_PORT=str(flower),
        CRIER_DEV_REDIS_PORT=str(redis_port),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "dev"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        output = wait_until(
            lambda: "Publish to all " in log_path.read_text() and log_path.read_text(),
            timeout=60,
        )
        assert "using the embedded SQLite file" in output
        assert "in-process Redis-compatible server" in output
        flower_login = re.search(
            rf"Flower:  http://127.0.0.1:{flower}   \(user:password (\w+):(\S+)\)", output
        )
        assert flower_login, output
        auth = flower_login.groups()
        assert len(auth[1]) >= 12
        assert "FLOWER_UNAUTHENTICATED_API" not in output
        command = re.search(r"curl -s -X POST (\S+) -H '([^']+)' -H '([^']+)' -d '(.+)'", output)
        assert command, output
        url, bearer, _content_type, body = command.groups()
        api = httpx.Client(headers=dict([bearer.split(": ", 1)]), timeout=10)
        wait_until(lambda: _answers(f"http://127.0.0.1:{web}/health"), timeout=60)
        # Flower records only the task events it receives: let it connect first.
        wait_until(lambda: _flower_workers(flower, auth), timeout=60, interval=1)
        response = api.post(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 201, response.text
        post_id = response.json()["data"]["post_id"]

        def done() -> dict | None:
            data = api.get(f"http://127.0.0.1:{web}/posts/{post_id}").json()["data"]
            return data if data["status"] not in ("scheduled", "publishing") else None

        post = wait_until(done, timeout=90, interval=0.5)
        assert post["status"] == "published", post
        assert sorted(t["platform"] for t in post["targets"]) == sorted(p.value for p in Platform)
        ledger = httpx.get(f"http://127.0.0.1:{sandbox}/_ledger").json()
        assert len(ledger) == len(Platform)
        # `crier sandbox` pulls media as the platforms do, here from the dev API's links.
        for entry in ledger:
            if entry["platform"] in ("instagram", "threads"):
                assert entry["media"][0]["url"].startswith(f"http://127.0.0.1:{web}/media/public/")
                assert len(entry["media"][0]["sha256"]) == 64, entry
        # Flower, on the same broker, lists the worker and the publish tasks.
        assert httpx.get(f"http://127.0.0.1:{flower}/api/workers", timeout=10).status_code == 401
        tasks = wait_until(lambda: _flower_tasks(flower, auth), timeout=30, interval=1)
        # Each publish is named by its platform, account and post.
        platforms = {t["name"].split()[1] for t in tasks.values() if _is_publish(t)}
        assert len(platforms) == len(Platform), tasks
        assert all(str(t["worker"]).startswith("dev@") for t in tasks.values())
        workers = wait_until(lambda: _flower_workers(flower, auth), timeout=30, interval=1)
        assert any(name.startswith("dev@") for name in workers)
        # The printed connect link works in a browser: the sandbox consents, Crier shows
        # the Page selection, and the client lands back with two connected Pages.
        link = re.search(r"valid 1 hour\):\n  (\S+)", output)
        assert link, output
        _connect_through(link.group(1), f"http://127.0.0.1:{web}/health")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert (tmp_path / "var" / "crier.sqlite3").exists()


def _connect_through(link: str, landing: str) -> None:
    with httpx.Client(timeout=20, follow_redirects=True) as browser:
        page = browser.get(link)
        assert page.status_code == 200 and "/connect/select/" in str(page.url), page.text
        action = re.search(r"action='([^']+)'", page.text)
        choices = re.findall(r"name='choice' value='([^']+)'", page.text)
        assert action and len(choices) == 2, page.text
        done = browser.post(
            str(page.url.join(action.group(1))), data={"choice": choices}, follow_redirects=False
        )
    assert done.headers["location"].startswith(landing + "?"), done.headers
    assert "status=connected" in done.headers["location"]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _flower_tasks(port: int, auth: tuple[str, str]) -> dict | None:
    try:
        tasks = httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=auth, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    published = [t for t in tasks.values() if _is_publish(t)]
    return tasks if len(published) >= 7 else None


def _is_publish(task: dict) -> bool:
    return re.fullmatch(r"publish \w+ account=\d+ post=\w+…", task.get("name") or "") is not None


def _flower_workers(port: int, auth: tuple[str, str]) -> dict | None:
    try:
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/workers?refresh=1", auth=auth, timeout=10
        )
        return response.json() or None
    except (httpx.HTTPError, ValueError):
        return None
