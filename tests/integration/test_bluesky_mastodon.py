"""A scheduled post to a Bluesky and a Mastodon account through the whole pipeline: API →
PostgreSQL → Redis → a real Celery worker consuming only those platforms' queues → the
adapters → the sandbox, with each platform's settings arriving under its own names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.queues import MAINTENANCE_QUEUE, publish_queue
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.media_samples import jpeg_bytes

QUEUES = ",".join([publish_queue("bluesky"), publish_queue("mastodon"), MAINTENANCE_QUEUE])
APP_PASSWORD = "wxyz-1234-abcd-5678"


def test_a_scheduled_post_reaches_bluesky_and_mastodon(
    stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker(queues=QUEUES, concurrency=4)
    bluesky = make_account(
        tenant, "bluesky", access_token=APP_PASSWORD, refresh_token=None,
        external_id="brand.bsky.social",
    )  # fmt: skip
    mastodon = make_account(
        tenant, "mastodon", access_token="mastodon-brand-token", refresh_token=None,
        external_id="https://sandbox.social/@brand",
    )  # fmt: skip
    image = tenant.api.post("/media/upload", files={"file": ("still.jpg", jpeg_bytes())})
    assert image.status_code == 201, image.text
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    created = tenant.api.post(
        "/posts",
        json={
            "content": "Launch day \U0001f680 https://example.com/launch #crier",
            "account_ids": [bluesky, mastodon],
            "scheduled_at": due.isoformat().replace("+00:00", "Z"),
            "media_ids": [image.json()["data"]["id"]],
            "platform_content": {
                "bluesky": {"settings": {"langs": ["en"], "altTexts": ["The launch"]}},
                "mastodon": {
                    "settings": {
                        "visibility": "unlisted",
                        "spoilerText": "Launch",
                        "language": "en",
                        "altTexts": ["The launch"],
                    }
                },
            },
        },
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]

    def done() -> dict[str, Any] | None:
        data = tenant.api.get(f"/posts/{post_id}").json()["data"]
        return data if data["status"] not in ("scheduled", "publishing") else None

    post = wait_until(done, timeout=60, interval=0.3)
    assert post["status"] == "published", post
    urls = {t["platform"]: t["url"] for t in post["targets"]}
    assert urls["bluesky"].startswith("https://bsky.app/profile/brand.bsky.social/post/")
    # The status's own url (the sandbox names a user it never issued a token to by it).
    assert urls["mastodon"].startswith("https://sandbox.social/@")

    [sky] = sandbox.get("/_ledger", params={"platform": "bluesky"}).json()
    assert sky["params"]["langs"] == ["en"] and sky["media"][0]["alt"] == "The launch"
    assert datetime.fromisoformat(sky["received_at"].replace("Z", "+00:00")) >= due
    [toot] = sandbox.get("/_ledger", params={"platform": "mastodon"}).json()
    assert toot["params"]["visibility"] == "unlisted" and toot["params"]["spoiler_text"] == "Launch"
    assert toot["media"][0]["description"] == "The launch"
    assert datetime.fromisoformat(toot["received_at"].replace("Z", "+00:00")) >= due
