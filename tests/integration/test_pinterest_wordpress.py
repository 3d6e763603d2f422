"""One scheduled video post to Pinterest and WordPress through the whole pipeline: API →
PostgreSQL → Redis → a real Celery worker on their queues → the adapters → the
sandbox, on time, with every setting arriving under the platform's own field name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.queues import MAINTENANCE_QUEUE, publish_queue
from sandbox.pinterest import DEFAULT_LOGIN, boards_of
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.media_samples import jpeg_bytes, mp4_bytes

LEAD = timedelta(seconds=6)
QUEUES = ",".join([publish_queue("pinterest"), publish_queue("wordpress"), MAINTENANCE_QUEUE])
BOARD = boards_of(DEFAULT_LOGIN)[1]["id"]


def upload(tenant: Tenant, name: str, data: bytes) -> str:
    response = tenant.api.post("/media/upload", files={"file": (name, data)})
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def test_a_video_post_reaches_pinterest_and_wordpress_on_time(
    stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker(queues=QUEUES, concurrency=4)
    pinterest = make_account(tenant, "pinterest", access_token="pin-access", refresh_token="r")
    wordpress = make_account(
        tenant,
        "wordpress",
        access_token="editor:abcd efgh",
        external_id="https://blog.example.com",
    )
    media = [
        upload(tenant, "clip.mp4", mp4_bytes(seconds=12.0)),
        upload(tenant, "s.jpg", jpeg_bytes()),
    ]
    due = datetime.now(UTC).replace(microsecond=0) + LEAD
    body = {
        "content": "Launch day",
        "account_ids": [pinterest, wordpress],
        "scheduled_at": due.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "media_ids": media[:1],
        "platform_content": {
            "pinterest": {
                "settings": {
                    "boardId": BOARD,
                    "title": "Launch",
                    "link": "https://shop.example/launch",
                    "coverKeyFrameTime": 3,
                }
            },
            "wordpress": {
                "content": "<p>Launch day, in full.</p>",
                "settings": {
                    "title": "Launch",
                    "excerpt": "Launch day",
                    "status": "private",
                    "categories": ["News"],
                    "tags": ["launch"],
                    "slug": "launch-day",
                },
            },
        },
    }
    created = tenant.api.post("/posts", json=body)
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]

    def finished() -> dict[str, Any] | None:
        post = tenant.api.get(f"/posts/{post_id}").json()["data"]
        done = all(t["status"] in ("published", "failed", "unconfirmed") for t in post["targets"])
        return post if done else None

    post = wait_until(finished, timeout=30, interval=0.25)
    targets = {t["platform"]: t for t in post["targets"]}
    for target in targets.values():
        assert target["status"] == "published" and target["attempts"] == 1, target
        assert datetime.fromisoformat(target["published_at"].replace("Z", "+00:00")) >= due
    entries = {e["platform"]: e for e in sandbox.get("/_ledger").json()}
    pin, article = entries["pinterest"], entries["wordpress"]
    assert targets["pinterest"]["platform_post_id"] == pin["id"]
    assert targets["pinterest"]["url"] == f"https://www.pinterest.com/pin/{pin['id']}/"
    assert (pin["params"]["board_id"], pin["params"]["title"], pin["params"]["link"]) == (
        BOARD,
        "Launch",
        "https://shop.example/launch",
    )
    assert pin["params"]["source_type"] == "video_id" and pin["text"] == "Launch day"
    assert targets["wordpress"]["platform_post_id"] == article["id"]
    params = article["params"]
    assert (params["title"], params["excerpt"], params["status"], params["slug"]) == (
        "Launch",
        "Launch day",
        "private",
        "launch-day",
    )
    assert params["categories"] and params["tags"]
    assert article["text"].startswith("<p>Launch day, in full.</p>")
    assert [m["kind"] for m in article["media"]] == ["video"]
    # Each platform's video was staged ahead of the instant: nothing public before it.
    received = {
        p: datetime.fromisoformat(e["received_at"].replace("Z", "+00:00"))
        for p, e in entries.items()
    }
    assert all(moment >= due for moment in received.values()), received
