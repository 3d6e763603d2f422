"""The Discord adapter against the sandbox, over real HTTP: what is particular to it."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest

from app.config import Settings
from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthRevokedError,
    MediaItem,
    NullContext,
    PermanentError,
    PublishRequest,
    RateLimitedError,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.discord import DiscordAdapter, classify

CHANNEL = "1300000000000000001"
WEBHOOK = "https://discord.com/api/webhooks/1400000000000000001/hook-token_1"


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> DiscordAdapter:
    return DiscordAdapter(http, base_url=sandbox_url)


def ledger(sandbox: httpx.Client) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": "discord"}).json()


def request_for(
    credential: str = "Bot crier-bot-token",
    media: list[MediaItem] | None = None,
    channel: str | None = CHANNEL,
    text: str = "Hello server",
    **settings: object,
) -> PublishRequest:
    return make_request(
        "discord",
        text=text,
        settings=dict(settings),
        media=media,
        access_token=credential,
        refresh_token=None,
        external_id=channel,
    )


def test_a_webhook_post_waits_for_the_message_and_links_to_it(
    adapter: DiscordAdapter, sandbox: httpx.Client, image_item: MediaItem, video_item: MediaItem
) -> None:
    embed = {"title": "Launch", "description": "Today", "color": 0x5865F2, "footer": "crier"}
    request = request_for(
        WEBHOOK,
        [image_item, video_item],
        username="Crier News",
        suppressEmbeds=True,
        embeds=[embed],
    )
    result = adapter.publish(request, NullContext())
    [entry] = ledger(sandbox)
    hook = sandbox.get("/discord/api/v10/webhooks/1400000000000000001/hook-token_1").json()
    assert result.platform_post_id == entry["id"]
    assert result.url == (
        f"https://discord.com/channels/{hook['guild_id']}/{hook['channel_id']}/{entry['id']}"
    )
    assert [m["kind"] for m in entry["media"]] == ["image", "video"]
    assert [m["sha256"] for m in entry["media"]] and entry["text"] == "Hello server"
    params = entry["params"]
    assert params["username"] == "Crier News" and params["flags"] == 4
    assert params["embeds"] == [
        {"title": "Launch", "description": "Today", "color": 0x5865F2, "footer": {"text": "crier"}}
    ]
    assert params["allowed_mentions"] == {"parse": []} and "nonce" not in params
    assert result.details["rate_limit"]["remaining"] >= 0

    adapter.delete_post(request.account, result.platform_post_id)
    assert "deleted_at" in ledger(sandbox)[0]


def test_a_bot_retry_inside_the_nonce_window_returns_the_first_message(
    adapter: DiscordAdapter, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"discord": {"lose_response_every": 1}})
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request_for(), context)
    nonce = context.handle["nonce"] if context.handle else None
    assert nonce and len(nonce) <= 25
    sandbox.post("/_faults", json={})

    again = adapter.publish(replace(request_for(), handle=context.handle), NullContext())

    [entry] = ledger(sandbox)
    assert again.platform_post_id == entry["id"] and entry["params"]["nonce"] == nonce
    assert entry["params"]["enforce_nonce"] is True


def test_a_webhook_account_is_reconciled_by_the_operators_bot_or_not_at_all(
    http: httpx.Client, sandbox_url: str, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"discord": {"lose_response_every": 1}})
    plain = DiscordAdapter(http, sandbox_url)
    context = NullContext()
    with pytest.raises(TransientError):
        plain.publish(request_for(WEBHOOK), context)
    after = replace(request_for(WEBHOOK), handle=context.handle)

    unknown = plain.reconcile(after)
    assert unknown.status is ReconcileStatus.UNKNOWN and "CRIER_DISCORD_BOT_TOKEN" in unknown.reason

    with_bot = DiscordAdapter(http, sandbox_url, Settings(discord_bot_token="operator-bot"))
    found = with_bot.reconcile(after)
    assert found.status is ReconcileStatus.FOUND and found.result is not None
    assert found.result.platform_post_id == ledger(sandbox)[0]["id"]


def test_a_deleted_webhook_needs_the_account_reconnected(
    adapter: DiscordAdapter, sandbox: httpx.Client
) -> None:
    path = "/discord/api/v10/webhooks/1400000000000000001/hook-token_1"
    assert sandbox.get(path).status_code == 200
    assert sandbox.delete(path).status_code == 204
    with pytest.raises(AuthRevokedError) as raised:
        adapter.publish(request_for(WEBHOOK), NullContext())
    assert raised.value.code == "discord_unknown_webhook"


def test_an_empty_bucket_is_a_hold_for_the_wait_discord_names(
    adapter: DiscordAdapter, sandbox: httpx.Client
) -> None:
    seen: list[RateLimitedError] = []
    for n in range(8):  # the sandbox's bucket is 5 per 2 seconds
        try:
            adapter.publish(request_for(text=f"burst {n}"), NullContext())
        except RateLimitedError as error:
            seen.append(error)
            break
    assert seen, "the sixth request in the window is refused"
    assert 0 < (seen[0].retry_after or 0) <= 2.0 and seen[0].scope == "account"
    assert seen[0].details["bucket"]


def test_classify_reads_discord_answers() -> None:
    def answer(status: int, body: dict, **headers: str) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    global_limit = classify(
        answer(429, {"message": "You are being rate limited.", "retry_after": 1.5,
                     "global": True}, **{"X-RateLimit-Scope": "global"})
    )  # fmt: skip
    assert isinstance(global_limit, RateLimitedError)
    assert global_limit.retry_after == 1.5 and global_limit.scope == "app"
    assert global_limit.code == "discord_global_rate_limit"
    denied = classify(answer(403, {"message": "Missing Permissions", "code": 50013}))
    assert isinstance(denied, AuthRevokedError)
    assert denied.code == "discord_missing_permissions"
    bad = classify(answer(400, {"message": "Invalid Form Body", "code": 50035,
                                "errors": {"content": "too long"}}))  # fmt: skip
    assert isinstance(bad, PermanentError) and bad.code == "discord_invalid_form_body"
    assert "too long" in bad.message
    big = classify(answer(413, {"message": "Request entity too large", "code": 40005}))
    assert big.code == "discord_file_too_large"
    assert classify(answer(503, {"message": "503"})).code == "discord_server_error"


def test_a_retry_after_the_nonce_window_gets_a_new_nonce(
    adapter: DiscordAdapter, sandbox: httpx.Client
) -> None:
    stale = {"channel_id": CHANNEL, "guild_id": "1", "author_id": "2", "nonce": "old",
             "started": time.time() - 3600}  # fmt: skip
    adapter.publish(replace(request_for(), handle=stale), NullContext())
    assert ledger(sandbox)[0]["params"]["nonce"] != "old"
