"""Media imported from a URL, end to end: an image and a video fetched on a real worker,
then published together as an Instagram Reel with its cover on the sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import future, sql
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_webhooks import Receiver, create_webhook
from tests.media_samples import jpeg_bytes, mp4_bytes
from tests.servers import TrickleServer, serve_wsgi


class Source:
    """Serves files; any other path is 404 (a vanished file)."""

    def __init__(self) -> None:
        self.files = {"/cover.jpg": jpeg_bytes(1080, 1920), "/reel.mp4": mp4_bytes(12.0)}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = self.files.get(environ["PATH_INFO"])
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"gone"]
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def source() -> Iterator[str]:
    with serve_wsgi(Source()) as url:
        yield url


def media_of(tenant: Tenant, media_id: str) -> dict[str, Any]:
    return tenant.api.get(f"/media/{media_id}").json()["data"]


def test_image_and_video_from_urls_become_a_published_reel(
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    source: str,
) -> None:
    stack.worker()
    stack.beat()
    receiver = Receiver()
    with serve_wsgi(receiver) as hook_url:
        create_webhook(tenant, f"{hook_url}/in", events=["media.processed"])
        cover = tenant.api.post("/media/upload-from-url", json={"url": f"{source}/cover.jpg"})
        assert cover.status_code == 202, cover.text
        assert cover.json()["data"]["media_status"] == "uploading"
        video = tenant.api.post(
            "/media/upload-from-url", json={"url": f"{source}/reel.mp4", "filename": "reel.mp4"}
        )
        assert video.status_code == 202, video.text
        video_id = video.json()["data"]["id"]
        assert video.json()["data"]["media_status"] == "uploading"
        ready = wait_until(
            lambda: (m := media_of(tenant, video_id))["media_status"] == "ready" and m, timeout=30
        )
        assert ready["duration_seconds"] == pytest.approx(12.0)
        assert (ready["width"], ready["height"]) == (1080, 1920)
        assert ready["size_bytes"] == len(mp4_bytes(12.0))
        cover_id = cover.json()["data"]["id"]
        image = wait_until(
            lambda: (m := media_of(tenant, cover_id))["media_status"] == "ready" and m
        )
        assert (image["kind"], image["width"], image["height"]) == ("image", 1080, 1920)

        processed = wait_until(lambda: len(receiver.delivered()) >= 2 and receiver.delivered())
        events = {r.event["data"]["id"]: r.event for r in processed}
        assert set(events) == {cover.json()["data"]["id"], video_id}
        assert {e["type"] for e in events.values()} == {"media.processed"}
        assert events[video_id]["data"]["media_status"] == "ready"

    account = make_account(tenant, "instagram", external_id="1784140000000101")
    created = tenant.api.post(
        "/posts",
        json={
            "content": "From URLs to a Reel",
            "account_ids": [account],
            "media_ids": [video_id],
            "cover_photo": cover.json()["data"]["id"],
            "platform_content": {"instagram": {"contentType": "Reels"}},
        },
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]
    post = wait_until(
        lambda: (
            (d := tenant.api.get(f"/posts/{post_id}").json()["data"])["status"]
            in ("published", "failed")
            and d
        ),
        timeout=60,
    )
    assert post["status"] == "published", post
    assert "/reel/" in post["targets"][0]["platform_post_url"]
    [entry] = [e for e in sandbox.get("/_ledger").json() if e["platform"] == "instagram"]
    assert entry["params"]["media_type"] == "REELS"
    assert entry["params"]["cover_url"]
    assert entry["text"] == "From URLs to a Reel"


def test_a_video_that_vanishes_is_failed_with_its_reason(
    stack: Stack, tenant: Tenant, source: str
) -> None:
    stack.worker()
    response = tenant.api.post("/media/upload-from-url", json={"url": f"{source}/gone.mp4"})
    assert response.status_code == 202, response.text
    media_id = response.json()["data"]["id"]
    failed = wait_until(
        lambda: (m := media_of(tenant, media_id))["media_status"] != "uploading" and m,
        timeout=30,
    )
    assert failed["media_status"] == "failed"
    assert failed["status_reason"] == "The URL answered HTTP 404."


def test_trickling_imports_hold_neither_the_api_nor_the_sweeper(
    app: Any, stack: Stack, tenant: Tenant, make_account: Any
) -> None:
    """Workers split as the Procfile splits them. Twelve imports from a source that
    trickles its answer, three times as many as the import threads: the API answers at
    once, and the sweeper (two threads on `maintenance`) still publishes a post that only
    it can find."""
    media_env = {"CRIER_MEDIA_IMPORT_DEADLINE": "2"}
    started = [
        (stack.worker("maintenance", queues="maintenance", concurrency=2, wait=False), "ready."),
        (
            stack.worker("media", "media_import", concurrency=4, extra_env=media_env, wait=False),
            "ready.",
        ),
        (stack.worker("text", "publish.x,publish.linkedin", concurrency=4, wait=False), "ready."),
        (stack.beat(wait=False), "beat: Starting"),
    ]
    for proc, ready in started:  # started together, then waited for in turn
        proc.wait_for(ready)
    account = make_account(tenant, "x", external_id="2244994945")
    with TrickleServer(interval=0.5) as slow:
        ids = []
        began = time.monotonic()
        for n in range(12):
            response = tenant.api.post("/media/upload-from-url", json={"url": f"{slow.url}/{n}"})
            assert response.status_code == 202, response.text
            ids.append(response.json()["data"]["id"])
        assert time.monotonic() - began < 6.0
        assert tenant.api.get("/health").status_code == 200
        # A post beyond the horizon is left to the sweeper; then it falls due.
        created = tenant.api.post(
            "/posts",
            json={"content": "Swept", "account_ids": [account], "scheduled_at": future(days=1)},
        )
        assert created.status_code == 201, created.text
        post_id = created.json()["data"]["post_id"]
        sql(
            app,
            "UPDATE post_targets SET next_attempt_at = now() WHERE post_id = :post_id",
            post_id=post_id,
        )
        sql(app, "UPDATE posts SET scheduled_at = now() WHERE id = :post_id", post_id=post_id)
        wait_until(lambda: slow.accepted >= 4, timeout=20)  # imports are trickling
        post = wait_until(
            lambda: (
                (d := tenant.api.get(f"/posts/{post_id}").json()["data"])["status"]
                in ("published", "failed")
                and d
            ),
            timeout=30,
        )
        assert post["status"] == "published", post
        # Each import ends at its deadline, failed with the reason.
        failed = wait_until(
            lambda: all(media_of(tenant, i)["media_status"] == "failed" for i in ids), timeout=40
        )
        assert failed
    reason = media_of(tenant, ids[0])["status_reason"]
    assert reason.startswith("Fetching the URL timed out") and "2 s" in reason
