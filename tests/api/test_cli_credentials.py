"""`crier accounts add` for a platform that connects with a credential: WordPress takes
the site URL as `--external-id` and `user:application-password` as `--access-token`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from flask import Flask

from app.security import decrypt_token
from tests.adapters.conftest import make_request
from tests.api.helpers import ok_data, sql
from tests.api.test_cli import crier
from workers.adapters import get_adapter
from workers.adapters.base import AccountCredentials, NullContext

__all__ = ["crier"]


def test_accounts_add_connects_a_wordpress_site_that_publishes(
    crier: Any, app: Flask, live_url: str, sandbox: httpx.Client, sandbox_url: str
) -> None:
    key = crier("keys", "create", "--name", "ops", "--org", "Blogs").stdout.strip()
    result = crier(
        "accounts",
        "add",
        "--platform",
        "wordpress",
        "--name",
        "Company blog",
        "--access-token",
        "editor:abcd EFGH 1234",
        "--external-id",
        "https://Blog.Example.com/",
        "--key",
        key,
    )
    assert result.exit_code == 0, result.output
    account_id = int(result.stdout.strip())
    response = httpx.get(
        f"{live_url}/accounts/{account_id}", headers={"Authorization": f"Bearer {key}"}
    )
    assert ok_data(response)["external_id"] == "https://blog.example.com"
    [row] = sql(app, "SELECT * FROM accounts WHERE id = :a", a=account_id)
    token = decrypt_token(app.config["CRIER"].secret_key, row["access_token_encrypted"])
    assert token == "editor:abcd EFGH 1234"

    account = AccountCredentials(
        account_id=account_id,
        platform="wordpress",
        name=row["name"],
        external_id=row["external_id"],
        access_token=token,
    )
    request = make_request("wordpress", text="From the CLI", settings={"title": "CLI"})
    with httpx.Client(timeout=10) as http:
        adapter = get_adapter("wordpress", http, sandbox_url)
        published = adapter.publish(replace(request, account=account), NullContext())
    [entry] = sandbox.get("/_ledger", params={"platform": "wordpress"}).json()
    assert entry["id"] == published.platform_post_id and entry["account"] == "editor"


@pytest.mark.parametrize(
    ("token", "external_id", "message"),
    [
        (
            "editor:pw",
            "blog.example.com",
            "error: --external-id: a WordPress account's external id is its site URL, e.g. "
            "https://blog.example.com",
        ),
        (
            "application-password-only",
            "https://blog.example.com",
            "error: --access-token: a WordPress account's access token is "
            "`user:application-password`",
        ),
    ],
)
def test_accounts_add_refuses_a_malformed_wordpress_credential(
    crier: Any, app: Flask, token: str, external_id: str, message: str
) -> None:
    key = crier("keys", "create", "--name", "ops").stdout.strip()
    result = crier(
        "accounts",
        "add",
        "--platform",
        "wordpress",
        "--name",
        "Blog",
        "--access-token",
        token,
        "--external-id",
        external_id,
        "--key",
        key,
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert sql(app, "SELECT count(*) AS n FROM accounts") == [{"n": 0}]
