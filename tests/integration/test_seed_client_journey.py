"""The API contract's client journey over real HTTP against real workers: who am I, the
rules, a campaign, a webhook, media from a URL, a draft scheduled to publish now, its
events arriving signed, then the failed account retried once reconnected."""

from __future__ import annotations

from typing import Any

import httpx

from app.services.webhooks import verify_signature
from tests.api.helpers import sql
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_webhooks import Receiver, create_webhook
from tests.media_samples import jpeg_bytes
from tests.servers import serve_wsgi


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"data", "error", "meta"} and body["error"] is None
    return body["data"]


def test_the_client_journey(
    app: Any,
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
) -> None:
    stack.worker()
    stack.beat()
    api = tenant.api
    me = ok(api.get("/me"))
    assert me["organisation"]["id"] == tenant.organisation_id
    assert ok(api.get("/platform-rules"))["linkedin"]["text_limit"] == 3000
    x = make_account(tenant, "x", external_id="2244994945")
    linkedin = make_account(tenant, "linkedin", external_id="urn:li:person:7000001")
    health = ok(api.get(f"/accounts/{linkedin}/health"))
    assert health["can_post"] and not health["needs_reconnection"]
    campaign = ok(api.post("/campaigns", json={"name": "Journey", "color": "#112233"}), 201)

    receiver = Receiver()
    files = {"/pic.jpg": jpeg_bytes(640, 480)}

    def source(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = files[environ["PATH_INFO"]]
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    with serve_wsgi(receiver) as hook_base, serve_wsgi(source) as files_base:
        hook = create_webhook(tenant, f"{hook_base}/in")
        media = ok(api.post("/media/upload-from-url", json={"url": f"{files_base}/pic.jpg"}), 202)
        assert media["media_status"] == "uploading"  # a worker fetches it
        wait_until(lambda: ok(api.get(f"/media/{media['id']}"))["media_status"] == "ready")
        sandbox.post("/_faults", json={"linkedin": {"error_rate": 1.0, "error_status": 400}})
        draft = ok(
            api.post(
                "/posts",
                json={
                    "content": "The whole journey",
                    "account_ids": [x, linkedin],
                    "media_ids": [media["id"]],
                    "campaign_id": campaign["id"],
                    "draft": True,
                },
            ),
            201,
        )
        assert draft["status"] == "draft"
        live = ok(api.post(f"/posts/{draft['post_id']}/schedule", json={"publish_now": True}))
        assert live["status"] == "publishing"
        wait_until(
            lambda: (
                {r.event["type"] for r in receiver.delivered()}
                >= {"post.partially_published", "post.platform.failed", "post.platform.published"}
            ),
            timeout=60,
        )
        listed = api.get(
            f"/posts?status=partially_published&campaign_id={campaign['id']}&platform=x,linkedin"
        ).json()["data"]
        assert [p["post_id"] for p in listed] == [draft["post_id"]]
        failed = next(t for t in listed[0]["targets"] if t["platform"] == "linkedin")
        assert failed["status"] == "failed" and failed["error"]["message"]

        # The failed account is retried once LinkedIn behaves; the post ends published.
        sandbox.post("/_faults", json={})
        sql(app, "UPDATE accounts SET status = 'needs_reconnect' WHERE id = :a", a=linkedin)
        skipped = ok(api.post("/posts/retry-failed", json={"post_ids": [draft["post_id"]]}))
        assert skipped["retried_count"] == 0 and skipped["skipped"][0]["account_id"] == linkedin
        sql(app, "UPDATE accounts SET status = 'active' WHERE id = :a", a=linkedin)
        retried = ok(api.post("/posts/retry-failed", json={"platform": "linkedin"}))
        assert retried["retried_count"] == 1
        # The retry's two events (LinkedIn's post.platform.published, then post.published)
        # come from one transaction but are delivered by different webhook threads, in
        # either order: wait for all six.
        wait_until(
            lambda: (
                "post.published" in {r.event["type"] for r in receiver.delivered()}
                and len(receiver.delivered()) >= 6
            ),
            timeout=60,
        )
        for item in receiver.delivered():
            assert verify_signature(hook["secret"], item.body, item.headers["X-Crier-Signature"])
        types = sorted(r.event["type"] for r in receiver.delivered())
        assert types == [
            "media.processed",
            "post.partially_published",
            "post.platform.failed",
            "post.platform.published",
            "post.platform.published",
            "post.published",
        ]
    final = ok(api.get(f"/posts/{draft['post_id']}"))
    assert final["status"] == "published" and final["campaign_id"] == campaign["id"]
    assert all(t["platform_post_url"] for t in final["targets"])
    assert ok(api.get(f"/campaigns/{campaign['id']}"))["posts_count"] == 1
    deliveries = api.get(f"/webhooks/{hook['id']}/deliveries").json()
    assert deliveries["meta"]["pagination"]["total"] == 6
