"""`crier keys create` and `crier accounts add`, run as an operator would, against the test DB."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from flask import Flask

from app.cli import main
from app.models import Platform
from app.security import decrypt_token
from tests.api.helpers import ok_data, sql


@pytest.fixture
def crier(app: Flask, app_settings: dict[str, Any]) -> Any:
    """Run `crier ARGS` with the environment pointing at the suite's database and Redis."""
    env = {
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": app_settings["redis_url"],
        "CRIER_SECRET_KEY": app_settings["secret_key"],
        "CRIER_MEDIA_DIR": app_settings["media_dir"],
    }

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


def test_keys_create_prints_a_working_key_once(crier: Any, app: Flask, live_url: str) -> None:
    result = crier("keys", "create", "--name", "ci-bot", "--org", "Acme Agency")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("crier_") and len(key) > 40
    assert "\n" not in key
    assert "for organisation 'Acme Agency'; it is shown only once" in result.stderr
    [row] = sql(
        app,
        "SELECT k.name, k.key_hash, k.prefix, o.name AS org, row_to_json(k)::text AS raw "
        "FROM api_keys k JOIN organisations o ON o.id = k.organisation_id",
    )
    assert row["name"] == "ci-bot"
    assert row["org"] == "Acme Agency"
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in row["raw"]
    assert f"(prefix {row['prefix']})" in result.stderr
    response = httpx.get(f"{live_url}/accounts", headers={"Authorization": f"Bearer {key}"})
    assert ok_data(response) == []


def test_keys_create_mints_a_key_in_the_seed_products_format(
    crier: Any, app: Flask, live_url: str
) -> None:
    result = crier("keys", "create", "--name", "migrated", "--prefix", "pe_live_")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("pe_live_") and len(key) > 45
    [row] = sql(app, "SELECT prefix FROM api_keys WHERE name = 'migrated'")
    assert row["prefix"] == key[: len("pe_live_") + 6]
    # The seed product's clients call under /api/v1; the same routes answer there.
    for path in ("/accounts", "/api/v1/accounts"):
        response = httpx.get(f"{live_url}{path}", headers={"Authorization": f"Bearer {key}"})
        assert ok_data(response) == []


@pytest.mark.parametrize("prefix", ["pe-live_", "pe_live", "_x_", "a_b_c_", ""])
def test_keys_create_refuses_a_malformed_prefix(crier: Any, prefix: str) -> None:
    result = crier("keys", "create", "--name", "odd", "--prefix", prefix)
    assert result.exit_code == 2
    assert "letters and digits ending in an underscore" in result.output


def test_keys_create_defaults_the_organisation_to_the_name(crier: Any, app: Flask) -> None:
    assert crier("keys", "create", "--name", "solo").exit_code == 0
    assert crier("keys", "create", "--name", "second", "--org", "solo").exit_code == 0
    rows = sql(
        app,
        "SELECT k.name, o.name AS org FROM api_keys k "
        "JOIN organisations o ON o.id = k.organisation_id ORDER BY k.id",
    )
    assert rows == [{"name": "solo", "org": "solo"}, {"name": "second", "org": "solo"}]
    assert sql(app, "SELECT count(*) AS n FROM organisations") == [{"n": 1}]
    # The CLI makes admin keys, restricted to no profile (see API key scopes).
    assert (
        sql(app, "SELECT scopes, profile_id FROM api_keys")
        == [{"scopes": ["admin"], "profile_id": None}] * 2
    )


def test_accounts_add_joins_the_keys_organisation(
    crier: Any, app: Flask, live_url: str, make_tenant: Any
) -> None:
    key = crier("keys", "create", "--name", "ops", "--org", "Brandy").stdout.strip()
    result = crier(
        "accounts",
        "add",
        "--platform",
        "linkedin",
        "--name",
        "Brandy Company Page",
        "--access-token",
        "li-access-secret",
        "--refresh-token",
        "li-refresh-secret",
        "--external-id",
        "urn:li:organization:42",
        "--key",
        key,
    )
    assert result.exit_code == 0, result.output
    account_id = int(result.stdout.strip())
    response = httpx.get(
        f"{live_url}/accounts/{account_id}", headers={"Authorization": f"Bearer {key}"}
    )
    account = ok_data(response)
    assert (account["platform"], account["name"], account["external_id"]) == (
        "linkedin",
        "Brandy Company Page",
        "urn:li:organization:42",
    )
    assert "li-access-secret" not in response.text
    [row] = sql(app, "SELECT row_to_json(a)::text AS raw, * FROM accounts a")
    assert "li-access-secret" not in row["raw"] and "li-refresh-secret" not in row["raw"]
    secret = app.config["CRIER"].secret_key
    assert decrypt_token(secret, row["access_token_encrypted"]) == "li-access-secret"
    assert decrypt_token(secret, row["refresh_token_encrypted"]) == "li-refresh-secret"
    # Another organisation does not see it.
    stranger = make_tenant("stranger")
    assert stranger.api.get(f"/accounts/{account_id}").status_code == 404


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--platform", "myspace", "--key", "KEY"],
            "error: unknown platform 'myspace'; expected one of "
            + ", ".join(p.value for p in Platform),
        ),
        (["--platform", "x"], "error: --key is required: the account joins the key's organisation"),
        (["--platform", "x", "--key", "crier_wrong"], "error: the API key is unknown or revoked"),
    ],
)
def test_accounts_add_errors(crier: Any, app: Flask, args: list[str], message: str) -> None:
    key = crier("keys", "create", "--name", "ops").stdout.strip()
    args = [key if a == "KEY" else a for a in args]
    result = crier("accounts", "add", "--name", "n", "--access-token", "t", *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert result.stdout == ""
    assert sql(app, "SELECT count(*) AS n FROM accounts") == [{"n": 0}]


def test_keys_list_and_revoke(crier: Any, app: Flask, live_url: str) -> None:
    key = crier("keys", "create", "--name", "rotating", "--org", "Acme").stdout.strip()
    [line] = crier("keys", "list", "--org", "Acme").stdout.splitlines()
    key_id, prefix, name, org, last_used, state = line.split("\t")
    assert (prefix, name, org, last_used, state) == (
        key[:12],
        "rotating",
        "Acme",
        "never used",
        "active",
    )
    assert key not in line
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{live_url}/accounts", headers=headers).status_code == 200
    revoked = crier("keys", "revoke", key_id)
    assert revoked.exit_code == 0 and f"revoked key {key_id}" in revoked.stdout
    response = httpx.get(f"{live_url}/accounts", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert crier("keys", "list").stdout.split("\t")[-1].startswith("revoked ")
    missing = crier("keys", "revoke", "999999")
    assert missing.exit_code == 2 and "no API key with id 999999" in missing.stderr


def test_accounts_add_records_when_the_token_expires(crier: Any, app: Flask) -> None:
    key = crier("keys", "create", "--name", "expiring").stdout.strip()
    result = crier(
        "accounts",
        "add",
        "--platform",
        "x",
        "--name",
        "Soon",
        "--access-token",
        "a",
        "--refresh-token",
        "r",
        "--key",
        key,
        "--token-expires-at",
        "2030-01-02T03:04:05+01:00",
    )
    assert result.exit_code == 0, result.output
    [row] = sql(app, "SELECT token_expires_at FROM accounts")
    assert row["token_expires_at"].isoformat() == "2030-01-02T02:04:05+00:00"


def test_migrate_drops_the_bindings_older_versions_left_in_redis(
    crier: Any, redis_url: str
) -> None:
    """Older versions bound every queue to the `maintenance` exchange; the release step
    drops those bindings once (workers no longer do it at every start) and keeps the
    queue's own binding."""
    import redis

    from app.migrations.broker import STALE_BINDINGS_KEY

    sep = "\x06\x16"
    own = sep.join(["maintenance", "", "maintenance"])
    stale = [sep.join(["maintenance", "", q]) for q in ("publish.x", "publish.linkedin")]
    client = redis.Redis.from_url(redis_url)
    client.sadd(STALE_BINDINGS_KEY, own, *stale)
    try:
        result = crier("migrate")
        assert result.exit_code == 0, result.output
        assert "dropped 2 stale queue bindings" in result.output
        assert client.smembers(STALE_BINDINGS_KEY) == {own.encode()}
        again = crier("migrate")
        assert again.exit_code == 0 and "stale" not in again.output
    finally:
        client.delete(STALE_BINDINGS_KEY)


def test_migrate_does_not_need_the_broker(app_settings: dict[str, Any]) -> None:
    """The release step upgrades the database even while the broker is still starting."""
    env = {
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": "redis://127.0.0.1:9/0",  # nothing listens on the discard port
        "CELERY_BROKER_URL": None,
    }
    result = CliRunner().invoke(main, ["migrate"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "database is up to date" in result.output
    assert "broker not reachable" in result.output


def test_accounts_add_takes_telegram_and_discord_credentials(crier: Any, app: Flask) -> None:
    """The credential forms of the stable CLI: Telegram's bot token and chat, Discord's
    webhook URL and channel id; a t.me link is kept as @channel."""
    key = crier("keys", "create", "--name", "ops").stdout.strip()
    webhook = "https://discord.com/api/webhooks/1400000000000000001/tok-en_9"
    for platform, token, external_id in (
        ("telegram", "123456789:AAH-crier_bot", "https://t.me/crier_news"),
        ("discord", webhook, "1300000000000000001"),
    ):
        result = crier(
            "accounts", "add", "--platform", platform, "--name", platform,
            "--access-token", token, "--external-id", external_id, "--key", key,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    rows = sql(app, "SELECT platform, external_id, access_token_encrypted FROM accounts")
    secret = app.config["CRIER"].secret_key
    found = {r["platform"]: (r["external_id"], decrypt_token(secret, r["access_token_encrypted"]))
             for r in rows}  # fmt: skip
    assert found == {
        "telegram": ("@crier_news", "123456789:AAH-crier_bot"),
        "discord": ("1300000000000000001", webhook),
    }


@pytest.mark.parametrize(
    ("platform", "token", "external_id", "message"),
    [
        ("telegram", "not-a-bot-token", "@crier_news", "--access-token: A Telegram bot token"),
        ("telegram", "123:abc", "", "--external-id: Name the Telegram chat"),
        ("discord", "https://example.com/api/webhooks/1/x", "1300000000000000001",
         "--access-token: A Discord webhook URL"),
        ("discord", "https://discord.com/api/webhooks/1/x", "general",
         "--external-id: Name the Discord channel"),
    ],
)  # fmt: skip
def test_accounts_add_refuses_malformed_chat_credentials(
    crier: Any, app: Flask, platform: str, token: str, external_id: str, message: str
) -> None:
    key = crier("keys", "create", "--name", "ops").stdout.strip()
    args = ["--access-token", token, "--external-id", external_id, "--key", key]
    result = crier("accounts", "add", "--platform", platform, "--name", "n", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert sql(app, "SELECT count(*) AS n FROM accounts") == [{"n": 0}]
