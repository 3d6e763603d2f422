"""Telegram and Discord at intake: their rows in GET /platform-rules, Telegram's caption
limit (1,024 with media, 4,096 for a message), Discord's embed limits, and the credential
forms POST /accounts takes."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import future, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes

TELEGRAM_TOKEN = "123456789:AAH-crier_bot"


def _account(tenant: Tenant, platform: str, token: str, external_id: str) -> int:
    response = tenant.api.post(
        "/accounts",
        json={
            "platform": platform,
            "name": platform,
            "access_token": token,
            "external_id": external_id,
        },
    )
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


def _post(tenant: Tenant, account_id: int, content: str, **extra: Any) -> Any:
    body = {"content": content, "account_ids": [account_id], "scheduled_at": future(), **extra}
    return tenant.api.post("/posts", json=body)


def test_platform_rules_show_telegram_and_discord(tenant: Tenant) -> None:
    rules = tenant.api.get("/platform-rules").json()["data"]
    assert rules["telegram"]["text_limit"] == 4096
    assert rules["telegram"]["caption_limit"] == 1024
    assert rules["telegram"]["text_unit"] == "UTF-16 code units"
    assert rules["telegram"]["media"]["max_images"] == 10
    assert rules["discord"]["text_limit"] == 2000 and rules["discord"]["caption_limit"] is None
    assert rules["x"]["caption_limit"] is None


def test_telegram_caption_is_limited_only_with_media(tenant: Tenant) -> None:
    account = _account(tenant, "telegram", TELEGRAM_TOKEN, "@crier_news")
    assert _post(tenant, account, "a" * 4096).status_code == 201
    too_long = _post(tenant, account, "a" * 4097)
    assert too_long.status_code == 400
    assert "4096 UTF-16 code units" in too_long.text
    image = upload(tenant.api, "photo.jpg", jpeg_bytes())
    caption = _post(tenant, account, "a" * 1025, media_ids=[image])
    assert caption.status_code == 400 and "1024 UTF-16 code units in the caption" in caption.text
    assert _post(tenant, account, "a" * 1024, media_ids=[image]).status_code == 201
    # An emoji is two UTF-16 code units, as Telegram counts.
    assert _post(tenant, account, "🙂" * 513, media_ids=[image]).status_code == 400


def test_discord_settings_are_checked(tenant: Tenant) -> None:
    account = _account(tenant, "discord", "Bot crier-bot-token", "1300000000000000001")

    def with_settings(settings: dict[str, Any]) -> Any:
        return _post(tenant, account, "Hi", platform_content={"discord": {"settings": settings}})

    embeds = [{"title": "t", "description": "d" * 4000}, {"description": "d" * 2500}]
    over = with_settings({"embeds": embeds})
    assert over.status_code == 400 and "at most 6000" in over.text
    assert with_settings({"embeds": [{"footer": "only"}]}).status_code == 400
    assert with_settings({"threadId": "general"}).status_code == 400
    fine = {"embeds": [{"title": "Launch", "color": 255}], "username": "News", "threadId": "42"}
    assert with_settings(fine).status_code == 201
    assert _post(tenant, account, "a" * 2001).status_code == 400


def test_accounts_take_the_chat_platforms_credential_forms(tenant: Tenant) -> None:
    bad = tenant.api.post(
        "/accounts",
        json={
            "platform": "discord",
            "name": "d",
            "access_token": "https://evil.example/api/webhooks/1/x",
            "external_id": "1300000000000000001",
        },
    )
    assert bad.status_code == 400
    assert "access_token" in bad.json()["error"]["details"]
    account = _account(tenant, "telegram", TELEGRAM_TOKEN, "t.me/crier_news")
    assert tenant.api.get(f"/accounts/{account}").json()["data"]["external_id"] == "@crier_news"
