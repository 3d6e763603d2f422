"""The Telegram adapter against the sandbox, over real HTTP: what is particular to it."""

from __future__ import annotations

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
    RateLimitedError,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.telegram import TelegramAdapter, classify

TOKEN = "123456:crier-test-bot"


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> TelegramAdapter:
    return TelegramAdapter(http, base_url=sandbox_url)


def ledger(sandbox: httpx.Client) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": "telegram"}).json()


def request_for(
    media: list[MediaItem] | None = None,
    chat: str | None = "@crier_news",
    text: str = "Hello channel",
    **settings: object,
):  # type: ignore[no-untyped-def]
    return make_request(
        "telegram",
        text=text,
        settings=dict(settings),
        media=media,
        access_token=TOKEN,
        refresh_token=None,
        external_id=chat,
    )


def test_text_goes_out_with_its_settings_and_a_public_permalink(
    adapter: TelegramAdapter, sandbox: httpx.Client
) -> None:
    request = request_for(
        parseMode="HTML",
        disableNotification=True,
        disableWebPagePreview=True,
        messageThreadId=7,
    )
    result = adapter.publish(request, NullContext())
    [entry] = ledger(sandbox)
    assert entry["text"] == "Hello channel" and entry["media"] == []
    params = entry["params"]
    assert params["parse_mode"] == "HTML" and params["disable_notification"] is True
    assert params["link_preview_options"] == {"is_disabled": True}
    assert params["message_thread_id"] == 7
    assert result.url == f"https://t.me/crier_news/{entry['id']}"


def test_a_private_chat_has_no_public_permalink(
    adapter: TelegramAdapter, sandbox: httpx.Client
) -> None:
    result = adapter.publish(request_for(chat="-1001234567890"), NullContext())
    assert result.url is None
    assert result.details["private_link"] == f"https://t.me/c/1234567890/{result.platform_post_id}"


def test_an_album_is_one_call_with_the_caption_on_its_first_item(
    adapter: TelegramAdapter, sandbox: httpx.Client, image_item: MediaItem, video_item: MediaItem
) -> None:
    result = adapter.publish(request_for([image_item, video_item]), NullContext())
    [entry] = ledger(sandbox)
    assert [m["kind"] for m in entry["media"]] == ["image", "video"]
    assert entry["text"] == "Hello channel"
    ids = entry["params"]["message_ids"]
    assert result.platform_post_id == ",".join(str(i) for i in ids) and len(ids) == 2
    # By URL: Telegram fetches the signed links itself.
    assert [m["url"] for m in entry["media"]] == [image_item.public_url, video_item.public_url]

    adapter.delete_post(request_for().account, result.platform_post_id)
    assert "deleted_at" in ledger(sandbox)[0]


def test_media_are_uploaded_when_telegram_cannot_reach_crier(
    http: httpx.Client, sandbox_url: str, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    adapter = TelegramAdapter(http, sandbox_url, Settings(telegram_upload_media=True))
    adapter.publish(request_for([image_item]), NullContext())
    [entry] = ledger(sandbox)
    [media] = entry["media"]
    assert media["bytes"] == image_item.size_bytes and "url" not in media


def test_a_photo_over_the_url_limit_is_uploaded(
    adapter: TelegramAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    large = replace(image_item, size_bytes=6 * 1024 * 1024)  # declared: over 5 MB by URL
    adapter.publish(request_for([large]), NullContext())
    assert "sha256" in ledger(sandbox)[0]["media"][0]


@pytest.mark.parametrize(
    ("chat", "code"),
    [("@sandbox_kicked", "telegram_no_rights"), ("@sandbox_member", "telegram_no_rights")],
)
def test_a_bot_that_cannot_post_needs_the_account_fixed(
    adapter: TelegramAdapter, chat: str, code: str
) -> None:
    with pytest.raises(AuthRevokedError) as raised:
        adapter.publish(request_for(chat=chat), NullContext())
    assert raised.value.code == code


def test_a_flood_wait_holds_for_the_seconds_telegram_names(
    adapter: TelegramAdapter, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"telegram": {"rate_limit_every": 1, "retry_after": 17}})
    with pytest.raises(RateLimitedError) as raised:
        adapter.publish(request_for(), NullContext())
    assert raised.value.retry_after == 17 and raised.value.code == "telegram_flood_wait"


def test_a_lost_answer_cannot_be_reconciled(
    adapter: TelegramAdapter, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"telegram": {"lose_response_every": 1}})
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request_for(), context)
    assert context.irreversible and context.handle and context.handle["chat_id"] == "@crier_news"
    assert len(ledger(sandbox)) == 1  # it did go out
    found = adapter.reconcile(replace(request_for(), handle=context.handle))
    assert found.status is ReconcileStatus.UNKNOWN
    assert "history" in found.reason and adapter.cannot_reconcile


def test_classify_reads_telegram_bodies() -> None:
    def answer(status: int, body: dict) -> httpx.Response:
        return httpx.Response(status, json={"ok": False, "error_code": status, **body})

    migrated = classify(
        answer(400, {"description": "Bad Request: group chat was upgraded to a supergroup chat",
                     "parameters": {"migrate_to_chat_id": -1009}})
    )  # fmt: skip
    assert isinstance(migrated, AuthRevokedError) and migrated.code == "telegram_chat_migrated"
    assert classify(answer(401, {"description": "Unauthorized"})).code == "telegram_unauthorized"
    too_big = classify(answer(413, {"description": "Request Entity Too Large"}))
    assert isinstance(too_big, PermanentError) and too_big.code == "telegram_file_too_large"
    assert classify(answer(502, {"description": "Bad Gateway"})).code == "telegram_server_error"
    plain = classify(answer(400, {"description": "Bad Request: message text is empty"}))
    assert plain.code == "telegram_bad_request"
