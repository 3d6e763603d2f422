"""Secrets stay secret: tokens from files or stdin, no token in a repr or a log, signed
media paths redacted in the access log, and /health details only for a key holder."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from flask import Flask

from app.cli import main
from app.db import get_db
from app.logs import redact_media_paths
from app.models import Media
from app.security import decrypt_token
from app.services import media as media_service
from tests.api.helpers import assert_envelope, sql, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes
from tests.secrets_guard import SEEN_TOKENS, leaked_tokens
from workers.adapters.base import AccountCredentials, TokenSet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def crier(app: Flask, app_settings: dict[str, Any]) -> Any:
    env = {
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": app_settings["redis_url"],
        "CRIER_SECRET_KEY": app_settings["secret_key"],
        "CRIER_MEDIA_DIR": app_settings["media_dir"],
    }

    def run(*args: str, stdin: str | None = None) -> Any:
        return CliRunner().invoke(main, list(args), env=env, input=stdin)

    return run


def _stored_tokens(app: Flask, account_id: int) -> tuple[str, str | None]:
    [row] = sql(app, "SELECT * FROM accounts WHERE id = :i", i=account_id)
    secret = app.config["CRIER"].secret_key
    refresh = row["refresh_token_encrypted"]
    return (
        decrypt_token(secret, row["access_token_encrypted"]),
        decrypt_token(secret, refresh) if refresh else None,
    )


def test_accounts_add_reads_tokens_from_stdin_and_files(
    crier: Any, app: Flask, tmp_path: Path
) -> None:
    key = crier("keys", "create", "--name", "ops").stdout.strip()
    base = ["accounts", "add", "--platform", "x", "--key", key]
    piped = crier(
        *base, "--name", "piped", "--access-token-file", "-", stdin="stdin-access-token\n"
    )
    assert piped.exit_code == 0, piped.output
    assert _stored_tokens(app, int(piped.stdout)) == ("stdin-access-token", None)
    (tmp_path / "access").write_text("file-access-token\n")
    (tmp_path / "refresh").write_text("file-refresh-token")
    filed = crier(
        *base,
        "--name",
        "filed",
        "--access-token-file",
        str(tmp_path / "access"),
        "--refresh-token-file",
        str(tmp_path / "refresh"),
    )
    assert filed.exit_code == 0, filed.output
    assert _stored_tokens(app, int(filed.stdout)) == ("file-access-token", "file-refresh-token")
    both = crier(*base, "--name", "n", "--access-token", "x", "--access-token-file", "-")
    assert both.exit_code == 2 and "not both" in both.output
    neither = crier(*base, "--name", "n")
    assert neither.exit_code == 2 and "--access-token-file (or --access-token)" in neither.output
    empty = crier(*base, "--name", "n", "--access-token-file", "-", stdin="\n")
    assert empty.exit_code == 2 and "gave no token" in empty.output


def test_credential_reprs_never_show_tokens() -> None:
    credentials = AccountCredentials(
        account_id=1,
        platform="x",
        name="n",
        external_id=None,
        access_token="repr-access-secret",
        refresh_token="repr-refresh-secret",
    )
    tokens = TokenSet(access_token="repr-new-access", refresh_token="repr-new-refresh")
    for text in (repr(credentials), str(credentials), repr(tokens), f"{tokens!s}"):
        assert "repr-" not in text, text
    assert "account_id=1" in repr(credentials)


def test_the_log_scan_catches_a_leaked_token() -> None:
    SEEN_TOKENS.add("leak-scan-canary-token")
    try:
        assert leaked_tokens(["all fine"]) == []
        assert leaked_tokens(["Bearer leak-scan-canary-token rejected"])
    finally:
        SEEN_TOKENS.discard("leak-scan-canary-token")


def test_signed_media_paths_are_redacted() -> None:
    line = '127.0.0.1 "GET /media/public/eyJhIjoxfQ.Z1.c2lnbmF0dXJl.mp4 HTTP/1.1" 200'
    assert redact_media_paths(line) == '127.0.0.1 "GET /media/public/[redacted].mp4 HTTP/1.1" 200'
    assert redact_media_paths("/media/public/abc?x=1") == "/media/public/[redacted]?x=1"
    assert redact_media_paths("/media/upload") == "/media/upload"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _web_line() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no web line")


def test_access_log_of_the_web_line_redacts_signed_media_paths(
    app: Flask, app_settings: dict[str, Any], tenant: Tenant, tmp_path: Path
) -> None:
    media_id = upload(tenant.api, "log.jpg", jpeg_bytes())
    with app.app_context(), get_db(app).session() as session:
        media = session.get(Media, __import__("uuid").UUID(media_id))
        assert media is not None
        token_path = media_service.signed_media_url(app.config["CRIER"], media).split(
            "/media/public/", 1
        )[1]
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": app_settings["redis_url"],
        "CRIER_SECRET_KEY": app_settings["secret_key"],
        "CRIER_MEDIA_DIR": app_settings["media_dir"],
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", _web_line()],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/media/public/{token_path}")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        assert response.status_code == 200
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    log_text = log_path.read_text()
    assert "GET /media/public/[redacted].jpg" in log_text, log_text
    signature = token_path.rsplit(".", 1)[0].rsplit(".", 1)[1]
    assert signature not in log_text


def test_health_is_up_or_down_for_anonymous_callers(live_url: str, tenant: Tenant) -> None:
    anonymous = httpx.get(f"{live_url}/health")
    assert anonymous.status_code == 200
    body = anonymous.json()
    assert_envelope(body)
    assert body["data"] == {"status": "ok"}
    wrong = httpx.get(f"{live_url}/health", headers={"Authorization": "Bearer crier_nope"})
    assert wrong.json()["data"] == {"status": "ok"}
    detailed = tenant.api.get("/health").json()["data"]
    assert detailed["status"] == "ok"
    assert detailed["checks"]["database"] == {"ok": True}
    assert detailed["checks"]["redis"] == {"ok": True}
    assert set(detailed["checks"]) == {"database", "redis", "workers", "beat"}
    assert detailed["checks"]["beat"] == {"ok": False, "last_seen": None}


def test_health_reports_beat_from_its_heartbeat(app: Flask, tenant: Tenant) -> None:
    import redis

    from app.api.meta import BEAT_HEARTBEAT_KEY

    client = redis.Redis.from_url(app.config["CRIER"].redis_url)
    client.set(BEAT_HEARTBEAT_KEY, repr(time.time() - 5))
    assert tenant.api.get("/health").json()["data"]["checks"]["beat"]["ok"] is True
    client.set(BEAT_HEARTBEAT_KEY, repr(time.time() - 600))
    beat = tenant.api.get("/health").json()["data"]["checks"]["beat"]
    assert beat["ok"] is False
    assert beat["last_seen"] < datetime.now(UTC).timestamp() - 500


def test_logs_of_an_account_add_hold_no_token(crier: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = crier("keys", "create", "--name", "quiet").stdout.strip()
    result = crier(
        "accounts", "add", "--platform", "x", "--name", "q", "--key", key,
        "--access-token-file", "-", stdin="caplog-visible-token\n",
    )  # fmt: skip
    assert result.exit_code == 0
    assert "caplog-visible-token" not in caplog.text
    assert "caplog-visible-token" not in result.output
