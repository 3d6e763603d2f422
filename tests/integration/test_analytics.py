"""Analytics end to end: a post published to all seven platforms by a real worker, then
the sandbox's clock moved to each scheduled age and the collector run by name (as beat
runs it, with the same clock offset): every target has a reading at each age of
CRIER_METRICS_SCHEDULE, with the figures the sandbox answered (sandbox/insights.py).
"""

from __future__ import annotations

from typing import Any

import httpx
from flask import Flask
from sqlalchemy import select

from app.analytics_models import AccountMetricSnapshot, MetricSnapshot
from app.db import get_db
from app.models import PostTarget
from app.queues import ACCOUNT_METRICS_DUE_TASK, METRICS_DUE_TASK, METRICS_QUEUE
from sandbox.insights import figures
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_seven_platforms import EXTERNAL_IDS, VIDEO_CONTENT
from tests.media_samples import mp4_bytes

AGES = (3600, 86400, 604800, 2592000)
# How long after a scheduled age a reading may come: the collector is run right after
# the clock moves, but a loaded machine may take a while to publish and to run it.
LATE = 600
# Which of Crier's figures each platform fills, and from which of the sandbox's figures
# (X counts a view as an impression).
HAS: dict[str, dict[str, str]] = {
    "x": {
        "views": "impressions",
        "likes": "likes",
        "comments": "comments",
        "shares": "shares",
        "impressions": "impressions",
        "saves": "saves",
    },
    "youtube": {"views": "views", "likes": "likes", "comments": "comments"},
    "tiktok": {"views": "views", "likes": "likes", "comments": "comments", "shares": "shares"},
    "linkedin": {"likes": "likes", "comments": "comments"},
    "facebook": {
        "likes": "likes",
        "comments": "comments",
        "shares": "shares",
        "impressions": "impressions",
        "clicks": "clicks",
    },
    "instagram": {
        "views": "views",
        "likes": "likes",
        "comments": "comments",
        "shares": "shares",
        "saves": "saves",
    },
    "threads": {"views": "views", "likes": "likes", "comments": "comments", "shares": "shares"},
}
FIELDS = ("views", "likes", "comments", "shares", "impressions", "clicks", "saves")


def readings(app: Flask) -> dict[int, list[MetricSnapshot]]:
    with get_db(app).session() as session:
        rows = session.scalars(
            select(MetricSnapshot).order_by(MetricSnapshot.target_id, MetricSnapshot.age_seconds)
        ).all()
        found: dict[int, list[MetricSnapshot]] = {}
        for row in rows:
            session.expunge(row)
            found.setdefault(row.target_id, []).append(row)
        return found


def test_each_platforms_figures_are_read_at_the_scheduled_ages(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker(concurrency=8)
    accounts = {
        platform: make_account(
            tenant, platform, access_token=f"{platform}-access", external_id=external_id
        )
        for platform, external_id in EXTERNAL_IDS.items()
    }
    upload = tenant.api.post("/media/upload", files={"file": ("v.mp4", mp4_bytes(seconds=12.0))})
    assert upload.status_code == 201, upload.text
    content = {
        **VIDEO_CONTENT,
        # Only a public TikTok has its post id, which the video query needs.
        "tiktok": {"settings": {"privacyLevel": "PUBLIC_TO_EVERYONE"}},
    }
    created = tenant.api.post(
        "/posts",
        json={
            "content": "Figures, please.",
            "account_ids": list(accounts.values()),
            "media_ids": [upload.json()["data"]["id"]],
            "platform_content": content,
        },
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]
    wait_until(
        lambda: tenant.api.get(f"/posts/{post_id}").json()["data"]["status"] == "published",
        timeout=120,
    )
    with get_db(app).session() as session:
        targets = {
            t.id: (t.platform, t.platform_post_id)
            for t in session.scalars(select(PostTarget).where(PostTarget.post_id == post_id))
        }
    assert len(targets) == 7
    celery = app.extensions["celery"]

    for step, age in enumerate(AGES, start=1):
        offset = sandbox.post(
            "/_clock", json={"advance_seconds": age - (AGES[step - 2] if step > 1 else 0)}
        )
        assert offset.json()["offset_seconds"] == age
        celery.send_task(METRICS_DUE_TASK, args=[age], queue=METRICS_QUEUE)
        wait_until(
            lambda step=step: all(len(readings(app).get(t, [])) >= step for t in targets),
            timeout=120,
            interval=0.5,
        )
    answered = sandbox.get("/_insights").json()
    found = readings(app)
    for target_id, (platform, post_ref) in targets.items():
        rows = found[target_id]
        assert len(rows) == len(AGES), (platform, [r.age_seconds for r in rows])
        for row, age in zip(rows, AGES, strict=True):
            assert age <= row.age_seconds < age + LATE, (platform, row.age_seconds, age)
            # The sandbox's answer for this post at (about) this age, and its figures.
            [reading] = [
                r
                for r in answered
                if r["platform"] == platform
                and r["id"] == post_ref
                and age <= r["age_seconds"] < age + LATE
            ]
            expected = figures(platform, post_ref, reading["age_seconds"])
            assert reading["figures"] == expected
            mapping = HAS[platform]
            got = {name: getattr(row, name) for name in FIELDS}
            assert got == {n: expected[mapping[n]] if n in mapping else None for n in FIELDS}, (
                platform
            )
        views = [r.likes for r in rows]
        assert views == sorted(views) and views[-1] > views[0], (platform, views)

    # The post's figures over HTTP, and the summary's sums of the latest readings.
    analytics = tenant.api.get(f"/posts/{post_id}/analytics").json()["data"]
    assert all(len(t["series"]) == len(AGES) for t in analytics["targets"])
    summary = tenant.api.get("/analytics/summary?period=all").json()["data"]
    latest = [found[t][-1] for t in targets]
    assert summary["metrics"]["likes"] == sum(r.likes or 0 for r in latest)
    assert summary["by_platform"] == [
        {"platform": p, "total": 1, "scheduled": 0, "published": 1, "failed": 0}
        for p in sorted(EXTERNAL_IDS)
    ]

    # Accounts' followers, where the platform reports them (a LinkedIn member: no).
    celery.send_task(ACCOUNT_METRICS_DUE_TASK, args=[AGES[-1]], queue=METRICS_QUEUE)

    def account_readings() -> set[str] | None:
        with get_db(app).session() as session:
            platforms = set(session.scalars(select(AccountMetricSnapshot.platform)))
        return platforms if len(platforms) == 6 else None

    assert wait_until(account_readings, timeout=60) == set(EXTERNAL_IDS) - {"linkedin"}
