"""Telegram and Discord through the whole pipeline: API → PostgreSQL → Redis → a real
Celery worker on their queues → the adapters → the sandbox. A Telegram send whose answer
was lost ends unconfirmed and is never sent again: the Bot API cannot tell whether it
went out."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import upload
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.media_samples import jpeg_bytes

QUEUES = "publish.telegram,publish.discord,maintenance"
TELEGRAM_TOKEN = "123456789:AAH-crier_bot"
WEBHOOK = "https://discord.com/api/webhooks/1400000000000000007/hook-token_7"


def _final(tenant: Tenant, post_id: str) -> dict[str, Any] | None:
    data = tenant.api.get(f"/posts/{post_id}").json()["data"]
    done = all(t["status"] in ("published", "failed", "unconfirmed") for t in data["targets"])
    return data if done else None


def test_a_photo_post_reaches_a_telegram_channel_and_a_discord_webhook(
    stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker(queues=QUEUES)
    telegram = make_account(
        tenant, "telegram", access_token=TELEGRAM_TOKEN, refresh_token=None,
        external_id="@crier_news",
    )  # fmt: skip
    discord = make_account(
        tenant, "discord", access_token=WEBHOOK, refresh_token=None,
        external_id="1300000000000000007",
    )  # fmt: skip
    image = upload(tenant.api, "photo.jpg", jpeg_bytes())
    created = tenant.api.post(
        "/posts",
        json={
            "content": "Launch day",
            "account_ids": [telegram, discord],
            "media_ids": [image],
            "platform_content": {
                "telegram": {"settings": {"disableNotification": True}},
                "discord": {"settings": {"embeds": [{"title": "Launch"}]}},
            },
        },
    )
    assert created.status_code == 201, created.text

    data = wait_until(lambda: _final(tenant, created.json()["data"]["post_id"]), timeout=60)

    targets = {t["platform"]: t for t in data["targets"]}
    assert {t["status"] for t in targets.values()} == {"published"}, targets
    [sent] = sandbox.get("/_ledger", params={"platform": "telegram"}).json()
    assert sent["text"] == "Launch day" and sent["params"]["disable_notification"] is True
    assert targets["telegram"]["url"] == f"https://t.me/crier_news/{sent['id']}"
    [message] = sandbox.get("/_ledger", params={"platform": "discord"}).json()
    assert message["params"]["embeds"] == [{"title": "Launch"}]
    assert [m["kind"] for m in message["media"]] == ["image"]
    # The webhook's own channel (Discord's answer), where the message is.
    assert targets["discord"]["url"].endswith(f"/{message['account']}/{message['id']}")


def test_a_lost_telegram_answer_ends_unconfirmed_and_is_not_sent_again(
    stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"telegram": {"lose_response_every": 1}}).raise_for_status()
    stack.worker(queues=QUEUES)
    account = make_account(
        tenant, "telegram", access_token=TELEGRAM_TOKEN, refresh_token=None,
        external_id="@crier_news",
    )  # fmt: skip
    created = tenant.api.post("/posts", json={"content": "Maybe", "account_ids": [account]})
    assert created.status_code == 201, created.text

    data = wait_until(lambda: _final(tenant, created.json()["data"]["post_id"]), timeout=60)

    [target] = data["targets"]
    assert target["status"] == "unconfirmed", target
    assert "cannot tell" in (target.get("error") or {}).get("message", ""), target
    assert len(sandbox.get("/_ledger", params={"platform": "telegram"}).json()) == 1
    assert sandbox.get("/_arrived").json()["telegram"] == 1
