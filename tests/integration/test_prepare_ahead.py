"""Prepare ahead with real workers: videos whose platform processing takes seconds are
uploaded and processed before their instant, and go live at it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from flask import Flask

from tests.conftest import Tenant
from tests.integration.conftest import Stack
from tests.integration.test_delivery import all_final, attempts, ledger, parse_ts
from tests.media_samples import mp4_bytes


def test_videos_are_prepared_ahead_and_published_at_the_instant(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    processing = 8.0
    sandbox.post(
        "/_faults",
        json={
            "linkedin": {"processing_seconds": processing},
            "x": {"processing_seconds": processing},
        },
    )
    window = {"CRIER_PREPARE_WINDOW_VIDEO": "20"}
    stack.worker(concurrency=8, extra_env=window)
    stack.beat(extra_env=window)
    video = tenant.api.post("/media/upload", files={"file": ("clip.mp4", mp4_bytes())})
    assert video.status_code == 201, video.text
    accounts = [
        make_account(tenant, "linkedin", external_id="urn:li:person:prep1"),
        make_account(tenant, "x"),
    ]
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=25)
    created = tenant.api.post(
        "/posts",
        json={
            "content": "Processed before its instant",
            "account_ids": accounts,
            "media_ids": [video.json()["data"]["id"]],
            "scheduled_at": due.isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all_final(app, 2):
        for target in tenant.api.get(f"/posts/{post_id}").json()["data"]["targets"]:
            seen.add(target["status"])
        time.sleep(0.3)
    assert all_final(app, 2)
    assert {"preparing", "prepared"} <= seen, seen
    entries = ledger(sandbox)
    assert sorted(e["platform"] for e in entries) == ["linkedin", "x"]
    lateness = [(parse_ts(e["received_at"]) - due).total_seconds() for e in entries]
    print(f"\nvideo posts with {processing:.0f} s processing: lateness {lateness}")
    assert min(lateness) >= 0, "published before its instant"
    assert max(lateness) < processing / 2, "the processing was not done ahead"
    # The publish at the instant was only the irreversible call, not upload + processing.
    published = [a for a in attempts(app) if a.outcome == "published"]
    assert len(published) == 2
    assert all(a.latency_ms < processing * 1000 / 2 for a in published)
