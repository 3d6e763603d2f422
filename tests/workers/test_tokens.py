"""Token refresh: proactive before expiry, and safe when two workers race on one account."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from flask import Flask

from app.db import get_db
from app.models import Account
from app.services.accounts import account_tokens
from tests.conftest import Tenant
from workers.adapters.base import AccountCredentials
from workers.pipeline import PipelineDeps
from workers.tokens import refresh_account, refresh_expiring_tokens


def set_expiry(app: Flask, account_id: int, moment: datetime) -> None:
    with get_db(app).session() as session:
        session.get(Account, account_id).token_expires_at = moment
        session.commit()


def tokens_of(app: Flask, account_id: int) -> tuple[str, str | None, str]:
    with get_db(app).session() as session:
        account = session.get(Account, account_id)
        access, refresh = account_tokens(app.config["CRIER"], account)
        return access, refresh, account.status


def test_tokens_expiring_soon_are_refreshed_ahead(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    soon = make_account(tenant, "x", access_token="soon-a", refresh_token="soon-r")
    later = make_account(tenant, "x", access_token="later-a", refresh_token="later-r")
    set_expiry(app, soon, datetime.now(UTC) + timedelta(hours=1))
    set_expiry(app, later, datetime.now(UTC) + timedelta(days=20))
    report = refresh_expiring_tokens(deps.db, deps.settings, deps.adapter_for)
    assert report == {"refreshed": 1, "revoked": 0, "failed": 0}
    access, refresh, status = tokens_of(app, soon)
    assert access != "soon-a" and refresh not in (None, "", "soon-r") and status == "active"
    assert tokens_of(app, later)[:2] == ("later-a", "later-r")


def test_refused_refresh_marks_the_account(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x", access_token="dead-a", refresh_token="dead-r")
    set_expiry(app, account_id, datetime.now(UTC) + timedelta(minutes=5))
    sandbox.post("/_faults", json={"x": {"revoked_tokens": ["dead-a", "dead-r"]}})
    report = refresh_expiring_tokens(deps.db, deps.settings, deps.adapter_for)
    assert report["revoked"] == 1
    assert tokens_of(app, account_id)[2] == "needs_reconnect"


def test_racing_refreshes_use_a_single_use_token_once(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x", access_token="race-a", refresh_token="race-r")
    credentials = AccountCredentials(
        account_id=account_id,
        platform="x",
        name="x",
        external_id=None,
        access_token="race-a",
        refresh_token="race-r",
    )
    adapter = deps.adapter_for("x")
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: refresh_account(deps.db, deps.settings, adapter, credentials), range(4)
            )
        )
    # X refresh tokens are single-use: had two workers spent "race-r", one would have
    # been refused and the account locked out. All four end with the same new token.
    assert len({r.access_token for r in results}) == 1
    access, _refresh, status = tokens_of(app, account_id)
    assert status == "active" and results[0].access_token == access != "race-a"


def test_no_token_reaches_the_logs(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    caplog: Any,
) -> None:
    """Instagram's refresh takes the token in the query string; nothing may log it."""
    import logging

    caplog.set_level(logging.DEBUG)
    account_id = make_account(
        tenant,
        "instagram",
        access_token="SECRET-ig-token-123",
        refresh_token=None,
        external_id="17841400000000009",
    )
    credentials = AccountCredentials(
        account_id=account_id,
        platform="instagram",
        name="ig",
        external_id="17841400000000009",
        access_token="SECRET-ig-token-123",
    )
    fresh = refresh_account(deps.db, deps.settings, deps.adapter_for("instagram"), credentials)
    assert fresh.access_token != "SECRET-ig-token-123"
    assert "SECRET-ig-token-123" not in caplog.text
    assert fresh.access_token not in caplog.text


def test_one_bad_account_never_stops_the_others_refreshing(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """A malformed token answer and a token that no longer decrypts are each logged and
    counted on that account's health block; every other account is refreshed."""
    malformed = make_account(tenant, "x", access_token="bad-a", refresh_token="bad-r")
    undecryptable = make_account(tenant, "x", access_token="enc-a", refresh_token="enc-r")
    good = [
        make_account(tenant, "x", access_token=f"good-a{n}", refresh_token=f"good-r{n}")
        for n in range(2)
    ]
    # Expiring first, so a loop that stopped at the first error would refresh nothing.
    set_expiry(app, malformed, datetime.now(UTC) + timedelta(minutes=1))
    set_expiry(app, undecryptable, datetime.now(UTC) + timedelta(minutes=2))
    for account_id in good:
        set_expiry(app, account_id, datetime.now(UTC) + timedelta(hours=3))
    with get_db(app).session() as session:
        session.get(Account, undecryptable).access_token_encrypted = "gAAAAA-not-a-fernet-token"
        session.commit()
    sandbox.post("/_faults", json={"x": {"malformed_refresh_tokens": ["bad-r"]}})

    report = refresh_expiring_tokens(deps.db, deps.settings, deps.adapter_for)

    assert report == {"refreshed": 2, "revoked": 0, "failed": 2}
    for account_id, n in zip(good, range(2), strict=True):
        assert tokens_of(app, account_id)[0] != f"good-a{n}"
    health = {a["id"]: a["health"] for a in tenant.api.get("/accounts").json()["data"]}
    assert health[malformed]["refresh_failures"] == 1
    assert "JSONDecodeError" in health[malformed]["last_refresh_error"]
    assert health[undecryptable]["refresh_failures"] == 1
    assert health[undecryptable]["last_refresh_error"] == "ValueError while refreshing the token"
    assert all(health[a]["refresh_failures"] == 0 for a in good)


def test_instagram_page_tokens_are_left_alone_and_instagram_tokens_refreshed(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """An Instagram account connected through Facebook Login holds its Page's token: no
    ig_refresh_token for it, even with an expiry on record; Instagram Login's is refreshed."""
    own = make_account(tenant, "instagram", access_token="ig-user-a", refresh_token=None)
    paged = make_account(tenant, "instagram", access_token="EAAP-page-a", refresh_token=None)
    with get_db(app).session() as session:
        session.get(Account, paged).settings = {"login": "facebook", "page_id": "1001"}
        session.commit()
    for account_id in (own, paged):
        set_expiry(app, account_id, datetime.now(UTC) + timedelta(hours=1))
    report = refresh_expiring_tokens(deps.db, deps.settings, deps.adapter_for)
    assert report == {"refreshed": 1, "revoked": 0, "failed": 0}
    assert tokens_of(app, own)[0] != "ig-user-a"
    assert tokens_of(app, paged) == ("EAAP-page-a", None, "active")
