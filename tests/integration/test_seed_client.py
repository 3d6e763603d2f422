"""The seed product's own SDK (npm `@posteverywhere/sdk`, pinned in tests/seed_client),
run unchanged against a live Crier: its paths under `/api/v1`, its `pe_live_` key check,
and the answers in the shapes its type definitions document. Only its host is pointed at
Crier (tests/seed_client/redirect.mjs), as a hosts-file entry would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from app.db import get_db
from app.models import Organisation
from app.queues import MAINTENANCE_QUEUE, publish_queue
from app.security import SEED_KEY_PREFIX
from app.services.keys import create_api_key
from tests.conftest import Tenant
from tests.integration.conftest import Stack

SEED_CLIENT = Path(__file__).parents[1] / "seed_client"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="the seed client runs on Node.js")

# What the SDK's types (dist/index.d.ts) promise, field by field.
SUMMARY_FIELDS = {"period", "range", "posts", "by_platform", "metrics", "ai_credits"}
POST_COUNTS = {
    "total", "draft", "scheduled", "publishing", "published", "partially_failed", "failed",
}  # fmt: skip
PLATFORM_COUNTS = {"platform", "total", "scheduled", "published", "failed"}
METRICS = {"views", "likes", "comments", "shares", "impressions", "clicks"}
CAPTION_FIELDS = {
    "captions", "platform", "tone", "length", "count_requested", "count_returned",
    "credits_used", "credits_remaining",
}  # fmt: skip
# The API contract's answer to POST /posts (where the SDK's types still name older fields).
CREATE_FIELDS = {"post_id", "status", "scheduled_for", "accounts_count", "message"}


@pytest.fixture
def seed_key(app: Flask, tenant: Tenant) -> str:
    """A key of the tenant's organisation in the seed product's format."""
    with app.app_context(), get_db(app).session() as session:
        organisation = session.get(Organisation, tenant.organisation_id)
        plain, _ = create_api_key(
            session, "seed sdk", organisation=organisation, key_prefix=SEED_KEY_PREFIX
        )
        session.commit()
    return plain


def run_seed_client(script: str, live_url: str, key: str, **env: str) -> Any:
    assert NODE is not None
    if not (SEED_CLIENT / "node_modules" / "@posteverywhere" / "sdk").is_dir():
        pytest.fail("the seed client is not installed: run `make install`")
    done = subprocess.run(
        [NODE, "--import", "./redirect.mjs", script],
        cwd=SEED_CLIENT,
        env={**os.environ, "CRIER_URL": live_url, "CRIER_SEED_KEY": key, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_seed_client_posts_a_bluesky_first_comment_and_an_x_thread(
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    live_url: str,
    seed_key: str,
) -> None:
    stack.worker(
        queues=",".join([publish_queue("bluesky"), publish_queue("x"), MAINTENANCE_QUEUE]),
        concurrency=4,
    )
    accounts = {
        "bluesky": make_account(
            tenant, "bluesky", access_token="seed-tokn-abcd-efgh", refresh_token=None,
            external_id="seed.bsky.social",
        ),
        "x": make_account(tenant, "x", access_token="x-seed-token"),
    }  # fmt: skip

    out = run_seed_client(
        "publish.mjs", live_url, seed_key, CRIER_SEED_ACCOUNTS=json.dumps(accounts)
    )

    assert set(out["created"]) >= CREATE_FIELDS and out["created"]["accounts_count"] == 2
    results = {r["platform"]: r for r in out["results"]["results"]}
    statuses = {p: r["status"] for p, r in results.items()}
    assert statuses == {"bluesky": "published", "x": "published"}, out
    sky = sandbox.get("/_ledger", params={"platform": "bluesky"}).json()
    [post] = [e for e in sky if e["reply_to"] is None]
    [comment] = [e for e in sky if e["reply_to"] is not None]
    assert results["bluesky"]["platform_post_id"] == post["id"]
    assert comment["text"] == "Shop it at https://shop.example/launch #launch"
    assert comment["reply_to"] == post["id"]
    tweets = sandbox.get("/_ledger", params={"platform": "x"}).json()
    assert [t["text"] for t in tweets] == [
        "Launch day: the new range is in.",
        "Three colours, two sizes.",
        "Free returns for thirty days.",
    ]
    assert [t["reply_to"] for t in tweets] == [None, tweets[0]["id"], tweets[1]["id"]]
    assert results["x"]["platform_post_id"] == tweets[0]["id"]


def test_the_seed_client_reads_the_summary_for_each_period_and_has_captions_written(
    tenant: Tenant, make_account: Any, live_url: str, seed_key: str
) -> None:
    account = make_account(tenant, "x")
    draft = tenant.api.post(
        "/posts", json={"content": "Later", "account_ids": [account], "draft": True}
    )
    assert draft.status_code == 201, draft.text

    out = run_seed_client("analytics.mjs", live_url, seed_key)

    summaries = out["summaries"]
    assert set(summaries) == {"today", "week", "month", "all", "default", "custom"}
    for period, summary in summaries.items():
        assert set(summary) == SUMMARY_FIELDS, period
        assert set(summary["posts"]) == POST_COUNTS, period
        assert set(summary["metrics"]) == METRICS, period
        assert set(summary["ai_credits"]) == {"used_this_period", "bonus"}, period
        assert all(set(row) == PLATFORM_COUNTS for row in summary["by_platform"]), period
        assert set(summary["range"]) == {"from", "to"}, period
        assert summary["posts"]["total"] == summary["posts"]["draft"] == 1, period
    assert summaries["default"]["period"] == "month"
    assert summaries["all"]["range"]["from"] is None
    assert summaries["custom"]["period"] == "custom"

    captions = out["captions"]
    assert set(captions) >= CAPTION_FIELDS
    assert len(captions["captions"]) == captions["count_returned"] == 2
    assert (captions["platform"], captions["tone"], captions["length"]) == (
        "bluesky",
        "witty",
        "short",
    )
    assert captions["credits_used"] == 2
    assert all(isinstance(c, str) and c for c in captions["captions"])
    # A refusal reaches the SDK as its own ValidationError, from the envelope's error.
    assert out["refused"]["name"] == "ValidationError" and out["refused"]["status"] == 400
