"""Insights figures: what the sandbox answers when asked how a post or an account is doing.

A post's figures are a pure function of its platform, its id and its age by the sandbox
clock (`POST /_clock` moves that clock on; `POST /_reset` sets it back): they start at
zero, grow fast in the first days and level off, and never shrink. A test computes the
same numbers with `figures()`. Every answer given is kept (GET /_insights): platform, id,
the age it was read at and the figures.

Faults (POST /_faults, per platform): `metrics_rate_limit_every` answers every Nth
insights call "rate limited" in the platform's shape; `metrics_forbidden_tokens` lack the
permission to read insights; `revoked_tokens` / `expired_tokens` apply as everywhere.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Response

from sandbox.core import FaultStyle, SandboxState, json_response, state
from sandbox.graph import requested_fields

# Figures approach their final value over about this many seconds (three days).
GROWTH_SECONDS = 3 * 86400.0
# Canonical figure names; each platform's handlers render the ones the platform has.
FIELDS = ("views", "likes", "comments", "shares", "impressions", "clicks", "saves")
# Per thousand views, before a per-post variation.
ACCOUNT_FIELDS = ("followers_count", "follows_count", "media_count", "fan_count")
RATES = {"likes": 40, "comments": 6, "shares": 3, "clicks": 12, "saves": 4}


def _seed(*parts: str) -> int:
    return int(hashlib.sha256(":".join(parts).encode()).hexdigest()[:12], 16)


def figures(platform: str, post_id: str, age_seconds: float) -> dict[str, int]:
    """The post's figures at `age_seconds` after it was published (0 before)."""
    seed = _seed(platform, str(post_id))
    final_views = 500 + seed % 20000
    grown = 0.0 if age_seconds <= 0 else 1.0 - math.exp(-float(age_seconds) / GROWTH_SECONDS)
    views = int(final_views * grown)
    result = {"views": views, "impressions": views + views * (20 + seed % 30) // 100}
    for offset, (name, rate) in enumerate(RATES.items()):
        per_thousand = rate + (seed >> (8 + 4 * offset)) % (rate + 1)
        result[name] = views * per_thousand // 1000
    return {name: result[name] for name in FIELDS}


def followers(platform: str, account: str, clock_seconds: float) -> int:
    """An account's followers `clock_seconds` after the sandbox (re)started: a base and a
    steady gain per hour, both its own."""
    seed = _seed("followers", platform, str(account))
    per_hour = 1 + seed % 9
    return 1000 + seed % 50000 + int(max(clock_seconds, 0.0) / 3600 * per_hour)


def published_at(state: SandboxState, platform: str, post_id: str) -> float | None:
    """When the post was received (unix seconds), or None when the platform has no such
    post (never made, or deleted)."""
    with state.lock:
        entry = state.ledger_index.get((platform, str(post_id)))
        if entry is None or "deleted_at" in entry:
            return None
        stamp = str(entry["received_at"]).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()


def read_post(state: SandboxState, platform: str, post_id: str) -> dict[str, int] | None:
    """The post's figures now, by the sandbox clock, logged; None without such a post."""
    created = published_at(state, platform, post_id)
    if created is None:
        return None
    age = int(state.now() - created)
    values = figures(platform, post_id, age)
    with state.lock:
        state.readings.append(
            {"platform": platform, "id": str(post_id), "age_seconds": age, "figures": values}
        )
    return values


def read_followers(state: SandboxState, platform: str, account: str) -> int:
    return followers(platform, account, state.now() - state.started_at)


def metrics_fault(
    state: SandboxState,
    platform: str,
    style: FaultStyle,
    token: str | None,
    forbidden: Callable[[], Response],
) -> Response | None:
    """The faults of an insights call, once the platform's own checks (token, the usual
    injected faults) have passed: a token without the permission, a rate limit."""
    faults = state.faults_for(platform)
    if token is not None and token in faults.metrics_forbidden_tokens:
        return forbidden()
    if faults.metrics_rate_limit_every:
        with state.lock:
            faults.metrics_counter += 1
            limited = faults.metrics_counter % faults.metrics_rate_limit_every == 0
        if limited:
            return style.rate_limited(faults.retry_after)
    return None


def graph_insights(values: dict[str, int], names: list[str], object_id: str) -> dict[str, Any]:
    """Graph's insights answer for the metrics asked."""
    return {
        "data": [
            {
                "name": name,
                "period": "lifetime",
                "values": [{"value": values[name]}],
                "title": name.replace("_", " ").title(),
                "id": f"{object_id}/insights/{name}/lifetime",
            }
            for name in names
            if name in values
        ]
    }


def graph_account_fields(platform: str, object_id: str) -> Response | None:
    """GET /{user or Page id}?fields=followers_count,…: the account's audience, when the
    fields asked are those; None for any other read (the caller goes on)."""
    fields = requested_fields(("id",))
    if not any(f in ACCOUNT_FIELDS for f in fields):
        return None
    posts = posts_of(platform, object_id)
    followers = read_followers(state, platform, object_id)
    item = {
        "id": object_id,
        "followers_count": followers,
        "fan_count": followers,
        "follows_count": 75,
        "media_count": posts,
    }
    return json_response({k: v for k, v in item.items() if k == "id" or k in fields})


def posts_of(platform: str, account: str) -> int:
    """The account's posts still on the platform (deleted ones no longer count)."""
    with state.lock:
        return sum(
            1
            for e in state.ledger
            if e["platform"] == platform and e["account"] == account and "deleted_at" not in e
        )


def user_metrics(user_id: str) -> dict[str, int]:
    """X's public_metrics of a user (GET /2/users/me?user.fields=public_metrics)."""
    return {
        "followers_count": read_followers(state, "x", user_id),
        "following_count": 150,
        "tweet_count": posts_of("x", user_id),
        "listed_count": 3,
    }


def video_statistics(video_id: str) -> dict[str, str]:
    """YouTube's `statistics` part of a video (numbers as strings, as YouTube sends)."""
    values = read_post(state, "youtube", video_id) or dict.fromkeys(FIELDS, 0)
    return {
        "viewCount": str(values["views"]),
        "likeCount": str(values["likes"]),
        "favoriteCount": "0",
        "commentCount": str(values["comments"]),
    }


def channel_statistics(channel: str) -> dict[str, Any]:
    """YouTube's `statistics` part of a channel."""
    return {
        "viewCount": "0",
        "subscriberCount": str(read_followers(state, "youtube", channel)),
        "hiddenSubscriberCount": False,
        "videoCount": str(posts_of("youtube", channel)),
    }
