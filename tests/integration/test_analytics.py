"""Analytics end to end: a post published to all thirteen platforms by a real worker, then
the sandbox's clock moved to each scheduled age and the collector run by name (as beat
runs it, with the same clock offset): every target on a platform with a collector has a
reading at each age of CRIER_METRICS_SCHEDULE, with the figures the sandbox answered
(sandbox/insights.py); Telegram's and Discord's have none, and nothing was scheduled
for them.
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
from sandbox.pinterest import DEFAULT_LOGIN, boards_of
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
    # A video Pin: its video views too.
    "pinterest": {
        "views": "views",
        "impressions": "impressions",
        "clicks": "clicks",
        "saves": "saves",
    },
    "bluesky": {"likes": "likes", "comments": "comments", "shares": "shares"},
    "mastodon": {"likes": "likes", "comments": "comments", "shares": "shares"},
    "wordpress": {"comments": "comments"},
}
FIELDS = ("views", "likes", "comments", "shares", "impressions", "clicks", "saves")
# The other six platforms' accounts, as they are connected: (token, refresh token,
# external id).
CREDENTIALS: dict[str, tuple[str, str | None, str | None]] = {
    "pinterest": ("pin-access", "pin-refresh", None),
    "bluesky": ("wxyz-1234-abcd-5678", None, "brand.bsky.social"),
    "mastodon": ("mastodon-brand-token", None, "https://sandbox.social/@brand"),
    "wordpress": ("editor:abcd efgh", None, "https://blog.example.com"),
    "telegram": ("123456789:AAH-crier_bot", None, "@crier_news"),
    "discord": (
        "https://discord.com/api/webhooks/1400000000000000007/hook-token_7",
        None,
        "1300000000000000007",
    ),
}
# No collector: the Bot API shows no channel post's views, a webhook reads no reactions.
WITHOUT = ("telegram", "discord")
# Platforms reporting an account's followers (not a LinkedIn member, not a WordPress site;
# a Telegram channel's subscribers, though none of its posts' figures).
AUDIENCE = (set(HAS) - {"linkedin", "wordpress"}) | {"telegram"}


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
    for platform, (token, refresh, external_id) in CREDENTIALS.items():
        accounts[platform] = make_account(
            tenant, platform, access_token=token, refresh_token=refresh, external_id=external_id
        )
    assert len(accounts) == 13
    upload = tenant.api.post("/media/upload", files={"file": ("v.mp4", mp4_bytes(seconds=12.0))})
    assert upload.status_code == 201, upload.text
    content = {
        **VIDEO_CONTENT,
        # Only a public TikTok has its post id, which the video query needs.
        "tiktok": {"settings": {"privacyLevel": "PUBLIC_TO_EVERYONE"}},
        "pinterest": {"settings": {"boardId": boards_of(DEFAULT_LOGIN)[0]["id"]}},
        "wordpress": {"settings": {"title": "Figures"}},
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
        rows = session.scalars(select(PostTarget).where(PostTarget.post_id == post_id)).all()
        every = {t.id: (t.platform, t.platform_post_id) for t in rows}
        # Where no collector is, no reading is ever scheduled.
        unscheduled = {t.platform for t in rows if t.next_metrics_at is None}
    assert len(every) == 13 and unscheduled == set(WITHOUT)
    targets = {t: found for t, found in every.items() if found[0] not in WITHOUT}
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
    assert {every[t][0] for t in found} == set(HAS), "no reading of Telegram or Discord"
    assert {r["platform"] for r in answered} == set(HAS), "and nothing asked of them"
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
        # A figure the platform has grows from the first reading to the last.
        grown = [getattr(r, next(iter(mapping))) for r in rows]
        assert grown == sorted(grown) and grown[-1] > grown[0], (platform, grown)

    # The post's figures over HTTP, and the summary's sums of the latest readings.
    analytics = tenant.api.get(f"/posts/{post_id}/analytics").json()["data"]
    series = {t["platform"]: len(t["series"]) for t in analytics["targets"]}
    assert series == {p: 0 if p in WITHOUT else len(AGES) for p in accounts}
    assert {t["platform"]: t["status"] for t in analytics["targets"]} == dict.fromkeys(
        accounts, "published"
    )
    summary = tenant.api.get("/analytics/summary?period=all").json()["data"]
    latest = [found[t][-1] for t in targets]
    assert summary["metrics"]["likes"] == sum(r.likes or 0 for r in latest)
    assert summary["metrics"]["comments"] == sum(r.comments or 0 for r in latest)
    assert summary["by_platform"] == [
        {"platform": p, "total": 1, "scheduled": 0, "published": 1, "failed": 0}
        for p in sorted(accounts)
    ]

    # Accounts' followers, where the platform reports them.
    celery.send_task(ACCOUNT_METRICS_DUE_TASK, args=[AGES[-1]], queue=METRICS_QUEUE)

    def account_readings() -> set[str] | None:
        with get_db(app).session() as session:
            platforms = set(session.scalars(select(AccountMetricSnapshot.platform)))
        return platforms if len(platforms) == len(AUDIENCE) else None

    assert wait_until(account_readings, timeout=60) == AUDIENCE
