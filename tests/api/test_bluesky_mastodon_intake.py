"""Intake for Bluesky (300 graphemes) and Mastodon (500 characters, URLs count 23, its
settings), as POST /posts checks them before anything is stored."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask

from tests.api.helpers import assert_error, future, sql
from tests.conftest import Tenant

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one grapheme


def _post(tenant: Tenant, account_id: int, content: str, **extra: Any) -> Any:
    body = {"content": content, "account_ids": [account_id], "scheduled_at": future(), **extra}
    return tenant.api.post("/posts", json=body)


def test_bluesky_counts_graphemes(tenant: Tenant, make_account: Any) -> None:
    account = make_account(tenant, "bluesky", external_id="alice.bsky.social")
    assert _post(tenant, account, "e\u0301" * 300).status_code == 201
    error = assert_error(_post(tenant, account, "a" * 301), 400, "validation_error")
    assert error["details"]["content"] == [
        "Bluesky allows at most 300 graphemes; this text has 301."
    ]
    assert _post(tenant, account, FAMILY * 10).status_code == 201


def test_mastodon_counts_urls_as_23(tenant: Tenant, make_account: Any) -> None:
    account = make_account(tenant, "mastodon", external_id="https://sandbox.social/@alice")
    long_link = "a" * 470 + " https://example.com/" + "p" * 200
    assert _post(tenant, account, long_link).status_code == 201
    error = assert_error(_post(tenant, account, "b" * 501), 400, "validation_error")
    assert error["details"]["content"] == [
        "Mastodon allows at most 500 characters; this text has 501."
    ]


def test_mastodon_settings_are_checked(tenant: Tenant, make_account: Any) -> None:
    account = make_account(tenant, "mastodon", external_id="https://sandbox.social/@alice")
    good = {"visibility": "private", "spoilerText": "cw", "sensitive": True, "language": "de"}
    ok = _post(tenant, account, "Hallo", platform_content={"mastodon": {"settings": good}})
    assert ok.status_code == 201, ok.text
    bad = {"visibility": "friends", "language": "German"}
    error = assert_error(
        _post(tenant, account, "Hallo", platform_content={"mastodon": {"settings": bad}}),
        400,
        "validation_error",
    )
    assert set(error["details"]) == {
        "platform_content.mastodon.settings.visibility",
        "platform_content.mastodon.settings.language",
    }


def test_accounts_api_checks_the_external_id(tenant: Tenant) -> None:
    refused = tenant.api.post(
        "/accounts",
        json={"platform": "mastodon", "name": "m", "access_token": "t", "external_id": "alice"},
    )
    error = assert_error(refused, 400, "validation_error")
    assert "profile URL" in error["details"]["external_id"][0]
    added = tenant.api.post(
        "/accounts",
        json={
            "platform": "bluesky",
            "name": "b",
            "access_token": "abcd-efgh-ijkl-mnop",
            "external_id": "alice.bsky.social",
        },
    )
    assert added.status_code == 201, added.text


def test_mastodon_intake_uses_the_instances_own_limit_once_known(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    big = make_account(tenant, "mastodon", external_id="https://big.example/@alice")
    plain = make_account(tenant, "mastodon", external_id="https://sandbox.social/@bob")
    sql(
        app,
        "UPDATE accounts SET settings = CAST(:s AS jsonb) WHERE id = :a",
        s=json.dumps({"instance": "https://big.example", "limits": {"max_characters": 1000}}),
        a=big,
    )
    assert _post(tenant, big, "c" * 900).status_code == 201
    error = assert_error(
        tenant.api.post(
            "/posts",
            json={"content": "c" * 900, "account_ids": [big, plain], "scheduled_at": future()},
        ),
        400,
        "validation_error",
    )
    assert error["details"]["content"] == [
        "Mastodon allows at most 500 characters; this text has 900."
    ]
