"""`crier accounts add` for the platforms that connect with a credential: the access token
carries it and the external id names where the account posts. Added through the real
CLI, then published with by the real adapter against the sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.models import Account
from tests.adapters.conftest import make_request
from tests.api.test_cli import crier  # noqa: F401  (the fixture)
from workers.adapters import get_adapter
from workers.adapters.base import NullContext
from workers.tokens import account_credentials


def _added(app: Flask, crier: Any, platform: str, token: str, external_id: str) -> Account:  # noqa: F811
    key = crier("keys", "create", "--name", "ops").stdout.strip()
    result = crier(
        "accounts", "add", "--platform", platform, "--name", f"{platform} account",
        "--access-token", token, "--external-id", external_id, "--key", key,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with get_db(app).session() as session:
        account = session.scalar(select(Account).where(Account.id == int(result.stdout)))
        assert account is not None
        session.expunge(account)
        return account


@pytest.mark.parametrize(
    ("platform", "token", "external_id", "settings"),
    [
        (
            "bluesky",
            "abcd-efgh-ijkl-mnop",
            "@Alice.bsky.social",
            {"handle": "alice.bsky.social"},
        ),
        (
            "mastodon",
            "mastodon-access-token",
            "https://sandbox.social/@alice",
            {"instance": "https://sandbox.social", "username": "alice"},
        ),
    ],
)
def test_a_credential_account_added_by_cli_publishes(
    crier: Any,  # noqa: F811
    app: Flask,
    sandbox_url: str,
    sandbox: httpx.Client,
    platform: str,
    token: str,
    external_id: str,
    settings: dict[str, str],
) -> None:
    account = _added(app, crier, platform, token, external_id)
    assert account.settings == settings

    credentials = account_credentials(app.config["CRIER"], account)
    assert credentials.access_token == token
    request = make_request(platform, text="Added by the CLI")
    request = type(request)(**{**request.__dict__, "account": credentials})
    with httpx.Client(timeout=10) as http:
        result = get_adapter(platform, http, sandbox_url).publish(request, NullContext())

    [entry] = sandbox.get("/_ledger", params={"platform": platform}).json()
    assert entry["id"] == result.platform_post_id and entry["text"] == "Added by the CLI"
    if platform == "bluesky":
        assert result.url and result.url.startswith("https://bsky.app/profile/alice.bsky.social/")
    else:
        assert result.url == f"https://sandbox.social/@{entry['params']['url'].split('@')[1]}"


@pytest.mark.parametrize(
    ("platform", "external_id", "message"),
    [
        ("bluesky", "not a handle", "Bluesky accounts need the handle as external id"),
        ("bluesky", "", "Bluesky accounts need the handle as external id"),
        ("mastodon", "alice@mastodon.social", "Mastodon accounts need the profile URL"),
        ("mastodon", "https://mastodon.social/alice", "Mastodon accounts need the profile URL"),
    ],
)
def test_the_cli_refuses_an_external_id_that_names_no_account(
    crier: Any,  # noqa: F811
    app: Flask,
    platform: str,
    external_id: str,
    message: str,
) -> None:
    key = crier("keys", "create", "--name", "ops").stdout.strip()
    result = crier(
        "accounts", "add", "--platform", platform, "--name", "n", "--access-token", "t",
        "--external-id", external_id, "--key", key,
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --external-id: {message}")
