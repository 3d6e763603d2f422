"""CRIER_SECRET_KEY: no public default, several keys newest first, and rotation.

The refusals are checked on the Procfile's own lines, run as a platform would run them.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from flask import Flask

from app import create_app
from app.cli import main
from app.db import get_db
from app.models import Media
from app.security import (
    InsecureSecretKey,
    check_secret_key,
    decrypt_token,
    encrypt_token,
    generate_secret_key,
)
from app.services import media as media_service
from tests.api.helpers import sql, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes
from tests.servers import serve_wsgi

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"Procfile has no {name} line")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "CRIER_SECRET_KEY is not set"),
        ("", "CRIER_SECRET_KEY is not set"),
        (" , ", "CRIER_SECRET_KEY is not set"),
        ("dev-insecure-secret-change-me", "CRIER_SECRET_KEY is a published default value"),
        ("changeme", "CRIER_SECRET_KEY is a published default value"),
        ("s3cr3t-short", "CRIER_SECRET_KEY is too short (12 characters, at least 16"),
        ("a" * 64, "CRIER_SECRET_KEY has too little variety"),
        pytest.param(
            generate_secret_key() + ",short-old-one",
            "CRIER_SECRET_KEY (key 2) is too short",
            id="good-then-short",  # the same name in every process
        ),
    ],
)
def test_weak_secrets_are_refused_with_the_fix(value: str | None, reason: str) -> None:
    with pytest.raises(InsecureSecretKey) as caught:
        check_secret_key(value)
    assert str(caught.value).startswith(reason)
    assert "`crier secret`" in str(caught.value)


def test_the_app_factory_refuses_a_missing_secret(app_settings: dict[str, Any]) -> None:
    with pytest.raises(InsecureSecretKey, match="CRIER_SECRET_KEY is not set"):
        create_app({**app_settings, "secret_key": ""})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("web", None),
        ("web", "dev-insecure-secret-change-me"),
        ("worker_text", "tiny"),
        ("worker_maintenance", None),
        ("beat", None),
        ("flower", "dev-insecure-secret-change-me"),
    ],
)
def test_procfile_processes_refuse_to_start_on_a_weak_secret(
    app_settings: dict[str, Any], tmp_path: Path, line: str, secret: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CRIER_SECRET_KEY"}
    env.update(
        DATABASE_URL=app_settings["database_url"],
        REDIS_URL=app_settings["redis_url"],
        PORT=str(_free_port()),
        FLOWER_PORT=str(_free_port()),
        FLOWER_BASIC_AUTH="ops:" + generate_secret_key(),
        CRIER_BEAT_SCHEDULE=str(tmp_path / "schedule"),
        PATH=f"{BIN}:{env['PATH']}",
    )
    if secret is not None:
        env["CRIER_SECRET_KEY"] = secret
    done = subprocess.run(
        ["bash", "-c", procfile_line(line)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "refuses to start: CRIER_SECRET_KEY" in done.stderr, done.stderr[-3000:]
    assert "`crier secret`" in done.stderr


def test_crier_secret_prints_a_fresh_strong_key() -> None:
    first = CliRunner().invoke(main, ["secret"]).stdout.strip()
    second = CliRunner().invoke(main, ["secret"]).stdout.strip()
    assert first != second
    check_secret_key(first)
    assert len(base64.urlsafe_b64decode(first + "==")) >= 32


def test_several_keys_encrypt_with_the_first_and_decrypt_with_any() -> None:
    old, new = generate_secret_key(), generate_secret_key()
    under_old = encrypt_token(old, "tok-old")
    both = f"{new},{old}"
    assert decrypt_token(both, under_old) == "tok-old"
    under_both = encrypt_token(both, "tok-new")
    assert decrypt_token(new, under_both) == "tok-new"
    with pytest.raises(ValueError, match="CRIER_SECRET_KEY"):
        decrypt_token(old, under_both)


def test_rotate_secrets_leaves_no_token_under_the_old_key(
    app: Flask, app_settings: dict[str, Any], tenant: Tenant, make_account: Any
) -> None:
    old = app_settings["secret_key"]
    new = generate_secret_key()
    ids = [make_account(tenant, "x", access_token=f"acc-{n}") for n in range(3)]
    make_account(tenant, "tiktok", access_token="acc-tt", refresh_token=None)
    env = {
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": app_settings["redis_url"],
        "CRIER_MEDIA_DIR": app_settings["media_dir"],
    }
    # Without the old key the stored tokens cannot be read: the command says so.
    refused = CliRunner().invoke(main, ["rotate-secrets"], env={**env, "CRIER_SECRET_KEY": new})
    assert refused.exit_code == 2
    assert "a secret that encrypted a stored value is missing" in refused.stderr
    done = CliRunner().invoke(
        main, ["rotate-secrets"], env={**env, "CRIER_SECRET_KEY": f"{new},{old}"}
    )
    assert done.exit_code == 0, done.output
    assert "accounts.access_token_encrypted: 4 re-encrypted" in done.stdout
    rows = sql(app, "SELECT id, access_token_encrypted, refresh_token_encrypted FROM accounts")
    assert len(rows) == 4
    for row in rows:
        access = decrypt_token(new, row["access_token_encrypted"])
        assert access.startswith("acc-")
        with pytest.raises(ValueError):
            decrypt_token(old, row["access_token_encrypted"])
        if row["id"] in ids:
            assert decrypt_token(new, row["refresh_token_encrypted"]) == "tok-refresh"
            with pytest.raises(ValueError):
                decrypt_token(old, row["refresh_token_encrypted"])
        else:
            assert row["refresh_token_encrypted"] is None


def _signed_path(app: Flask, media_id: str) -> str:
    with app.app_context(), get_db(app).session() as session:
        media = session.get(Media, __import__("uuid").UUID(media_id))
        assert media is not None
        return media_service.signed_media_url(app.config["CRIER"], media).split(
            "/media/public/", 1
        )[1]


def test_media_links_survive_a_rotation_and_use_hmac_sha256(
    app: Flask, app_settings: dict[str, Any], tenant: Tenant
) -> None:
    media_id = upload(tenant.api, "rotating.jpg", jpeg_bytes())
    before = _signed_path(app, media_id)
    signature = before.rsplit(".", 1)[0].rsplit(".", 1)[1]
    assert len(base64.urlsafe_b64decode(signature + "=")) == 32  # SHA-256, not SHA-1
    new = generate_secret_key()
    rotated = create_app({**app_settings, "secret_key": f"{new},{app_settings['secret_key']}"})
    only_new = create_app({**app_settings, "secret_key": new})
    try:
        with serve_wsgi(rotated) as rotated_url, serve_wsgi(only_new) as new_url:
            assert httpx.get(f"{rotated_url}/media/public/{before}").status_code == 200
            after = _signed_path(rotated, media_id)
            assert after != before
            assert httpx.get(f"{new_url}/media/public/{after}").status_code == 200
            # Once the old secret is dropped, its links stop working.
            assert httpx.get(f"{new_url}/media/public/{before}").status_code == 404
    finally:
        get_db(rotated).dispose()
        get_db(only_new).dispose()
