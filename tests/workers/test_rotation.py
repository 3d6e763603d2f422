"""`crier rotate-secrets`, run as an operator runs it, covers every encrypted column: once
the old key is dropped, every webhook still delivers (signature verified by the receiver)
and every account still publishes. A re-run, or a run after a crash midway, is safe; a
delivery whose secret no key decrypts ends failed with a reason instead of looping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import String, Text, select

from app.db import Base, get_db
from app.models import InstanceApp
from app.security import decrypt_token, encrypt_token, generate_secret_key
from app.services import connect as connect_service
from app.services import rotation
from app.services.webhooks import verify_signature, verify_signature_v2
from tests.api.helpers import sql
from tests.conftest import Tenant
from tests.workers.conftest import Receiver
from tests.workers.test_pipeline import create_target, queue_now
from workers.pipeline import PipelineDeps, publish_target
from workers.webhooks import claim_due, deliver_webhook

CRIER = str(Path(sys.executable).parent / "crier")


def run_rotate(
    app_settings: dict[str, Any], secret: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": app_settings["redis_url"],
        "CRIER_MEDIA_DIR": app_settings["media_dir"],
        "CRIER_SECRET_KEY": secret,
    }
    return subprocess.run(
        [CRIER, "rotate-secrets", *extra], env=env, capture_output=True, text=True, timeout=120
    )


def deliver_all(app: Flask, settings: Any) -> list[str]:
    with httpx.Client(follow_redirects=False) as http:
        with get_db(app).session() as session:
            claims = claim_due(session, settings)
            session.commit()
        return [
            deliver_webhook(
                get_db(app), settings, app.extensions["celery"], http, str(c.delivery_id), c.token
            )
            for c in claims
        ]


def string_values(app: Flask) -> Iterator[tuple[str, str]]:
    """(table.column, value) of every non-empty string stored in any mapped table."""
    with get_db(app).session() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String | Text):
                    continue
                for value in session.scalars(select(column).where(column.is_not(None))):
                    if value:
                        yield f"{table.name}.{column.name}", value


def test_every_encrypted_column_is_found_from_the_models() -> None:
    names = {c.name for c in rotation.encrypted_columns()}
    assert names == {
        "accounts.access_token_encrypted",
        "accounts.refresh_token_encrypted",
        "connect_links.pending_choices_encrypted",
        "connect_links.pkce_verifier_encrypted",
        "instance_apps.client_secret_encrypted",
        "webhook_endpoints.secret_encrypted",
    }
    # A column named for ciphertext without the marker would be skipped by a rotation.
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if "encrypted" in column.name or "secret" in column.name:
                assert column.info.get("encrypted"), f"{table.name}.{column.name} is unmarked"


def hold_connect_secrets(app: Flask, tenant: Tenant, secret: str) -> None:
    """A connect link mid-flow (a PKCE verifier and the pages awaiting the user's choice)
    and Crier's app on a Mastodon instance."""
    with get_db(app).session() as session:
        link, _token = connect_service.create_link(
            session,
            organisation_id=tenant.organisation_id,
            profile_id=None,
            platform="x",
            redirect_url="https://agency.example/back",
            client_state=None,
            account_id=None,
        )
        link.pkce_verifier_encrypted = encrypt_token(secret, "verifier-" + "v" * 40)
        link.pending_choices_encrypted = encrypt_token(secret, json.dumps([{"id": "p1"}]))
        # Crier's app on a Mastodon instance: its client secret.
        session.add(
            InstanceApp(
                platform="mastodon",
                instance="https://mastodon.example",
                redirect_uri="https://crier.example/oauth/mastodon/callback",
                scopes="write:statuses",
                client_id="client-id",
                client_secret_encrypted=encrypt_token(secret, "instance-app-secret"),
            )
        )
        session.commit()


def test_after_rotation_and_dropping_the_old_key_everything_still_works(
    app: Flask,
    app_settings: dict[str, Any],
    tenant: Tenant,
    make_account: Any,
    deps: PipelineDeps,
    sandbox: httpx.Client,
    receiver: tuple[Receiver, str],
) -> None:
    hook, hook_url = receiver
    old, new = app_settings["secret_key"], generate_secret_key()
    accounts = [
        make_account(tenant, "x", access_token="acc-x"),
        make_account(tenant, "linkedin", access_token="acc-li", refresh_token=None),
        make_account(tenant, "threads", access_token="acc-th"),
    ]
    # A removed account keeps its row with its tokens wiped: nothing to re-encrypt.
    removed = make_account(tenant, "x", access_token="acc-gone")
    sql(app, "UPDATE accounts SET access_token_encrypted = '', refresh_token_encrypted = NULL, "
        "status = 'disconnected' WHERE id = :id", id=removed)  # fmt: skip
    endpoints = {}
    for n in range(3):
        created = tenant.api.post("/webhooks", json={"url": f"{hook_url}/h{n}"}).json()["data"]
        endpoints[created["id"]] = created["secret"]
    hold_connect_secrets(app, tenant, old)

    done = run_rotate(app_settings, f"{new},{old}", "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    for line in (
        "accounts.access_token_encrypted: 3 re-encrypted",
        "accounts.refresh_token_encrypted: 2 re-encrypted",
        "connect_links.pending_choices_encrypted: 1 re-encrypted",
        "connect_links.pkce_verifier_encrypted: 1 re-encrypted",
        "instance_apps.client_secret_encrypted: 1 re-encrypted",
        "webhook_endpoints.secret_encrypted: 3 re-encrypted",
        "re-encrypted 11 stored values in 6 columns",
    ):
        assert line in done.stdout, done.stdout

    # No column, marked or not, still holds a value that needs the old key.
    leftovers = []
    for name, value in string_values(app):
        try:
            decrypt_token(old, value)
        except ValueError:
            continue
        leftovers.append(name)
    assert leftovers == []

    # The old key is dropped: every process now runs with the new key alone.
    only_new = replace(app.config["CRIER"], secret_key=new)
    for endpoint_id in endpoints:
        assert tenant.api.post(f"/webhooks/{endpoint_id}/test").status_code == 202
    assert deliver_all(app, only_new) == ["ok"] * 3
    assert len(hook.requests) == 3
    for headers, body in hook.requests:
        endpoint_id = json.loads(body)["data"]["webhook_id"]
        secret = endpoints[endpoint_id]
        assert verify_signature(secret, body, headers["X-Crier-Signature"])
        assert verify_signature_v2(secret, body, headers["X-Crier-Signature-V2"])

    publishing = replace(deps, settings=only_new)
    for account_id in accounts:
        target_id, token = queue_now(app, create_target(tenant, account_id, f"after {account_id}"))
        assert publish_target(publishing, target_id, token) == "published"
    texts = {entry["text"] for entry in sandbox.get("/_ledger").json()}
    assert texts >= {f"after {a}" for a in accounts}

    # A second run, with the new key alone, finds nothing left to do (run in this process:
    # the command's own output was checked above).
    with app.app_context(), get_db(app).session() as session:
        again = rotation.rotate_secrets(session, new)
    assert again.rotated == 0
    assert sum(column.current for column in again.columns) == 11


def test_a_rotation_that_crashed_midway_is_finished_by_running_it_again(
    app: Flask,
    app_settings: dict[str, Any],
    tenant: Tenant,
    make_account: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = app_settings["secret_key"], generate_secret_key()
    for n in range(5):
        make_account(tenant, "x", access_token=f"acc-{n}", refresh_token=None)
    real = rotation.reencrypt_token
    calls = 0

    def crash_on_the_third(secret_key: str, ciphertext: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("killed")
        return real(secret_key, ciphertext)

    monkeypatch.setattr(rotation, "reencrypt_token", crash_on_the_third)
    with (
        app.app_context(),
        get_db(app).session() as session,
        pytest.raises(RuntimeError, match="killed"),
    ):
        rotation.rotate_secrets(session, f"{new},{old}", batch_size=2)
    stored = [r["access_token_encrypted"] for r in sql(app, "SELECT * FROM accounts ORDER BY id")]
    under_new = [v for v in stored if rotation.encrypted_with_newest(new, v)]
    assert len(under_new) == 2  # the first batch was committed, nothing after it
    monkeypatch.undo()

    done = run_rotate(app_settings, f"{new},{old}", "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    assert "accounts.access_token_encrypted: 3 re-encrypted, 2 already under" in done.stdout
    after = [r["access_token_encrypted"] for r in sql(app, "SELECT * FROM accounts ORDER BY id")]
    assert [decrypt_token(new, v) for v in after] == [f"acc-{n}" for n in range(5)]
    assert set(under_new) <= set(after)  # what the first run did was not redone


def test_a_missing_key_refuses_the_rotation_and_changes_nothing(
    app: Flask, app_settings: dict[str, Any], tenant: Tenant, make_account: Any
) -> None:
    old, new, lost = app_settings["secret_key"], generate_secret_key(), generate_secret_key()
    make_account(tenant, "x", access_token="acc-kept")
    endpoint = tenant.api.post("/webhooks", json={"url": "http://127.0.0.1:9/h"}).json()["data"]
    sql(app, "UPDATE webhook_endpoints SET secret_encrypted = :v",
        v=encrypt_token(lost, "whsec_lost"))  # fmt: skip
    before = sql(app, "SELECT access_token_encrypted FROM accounts")
    refused = run_rotate(app_settings, f"{new},{old}")
    assert refused.returncode == 2
    assert f"webhook_endpoints.secret_encrypted id={endpoint['id']}" in refused.stderr
    assert "a secret that encrypted a stored value is missing" in refused.stderr
    assert sql(app, "SELECT access_token_encrypted FROM accounts") == before


def test_a_delivery_whose_secret_cannot_be_decrypted_fails_with_a_reason(
    app: Flask, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    hook, hook_url = receiver
    endpoint = tenant.api.post("/webhooks", json={"url": hook_url}).json()["data"]
    # Encrypted under a key this deployment no longer has.
    sql(app, "UPDATE webhook_endpoints SET secret_encrypted = :v",
        v=encrypt_token(generate_secret_key(), "whsec_lost"))  # fmt: skip
    assert tenant.api.post(f"/webhooks/{endpoint['id']}/test").status_code == 202
    settings = app.config["CRIER"]
    assert deliver_all(app, settings) == ["failed"]
    assert hook.requests == []
    [delivery] = tenant.api.get(f"/webhooks/{endpoint['id']}/deliveries").json()["data"]
    assert delivery["status"] == "failed"
    assert "cannot be decrypted with CRIER_SECRET_KEY" in delivery["error"]
    assert deliver_all(app, settings) == []  # not claimed again, ever
