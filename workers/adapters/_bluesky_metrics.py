"""Bluesky's figures (docs/analytics.md): `app.bsky.feed.getPosts` for posts' likes,
reposts and quotes, and replies, and `app.bsky.actor.getProfile` for the account's
followers, both asked of the account's PDS (which hands them to the AppView) with the
account's session: reused, refreshed with refreshSession when it runs out, never made
anew for a collection while a refresh works.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from workers.adapters._atproto import Session, classify
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    Classifier,
    Metrics,
    count,
    json_body,
    sum_counts,
)

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# getPosts takes up to 25 AT URIs.
POSTS_PER_CALL = 25
POST_COUNTS = ("likeCount", "repostCount", "quoteCount", "replyCount")
PROFILE_COUNTS = ("followersCount", "followsCount", "postsCount")


class _SessionAdapter(Protocol):
    """What the reads need of the Bluesky adapter."""

    def session(self, account: AccountCredentials) -> Session: ...

    def xrpc(self, method: str, pds: str | None = None) -> str: ...

    def send(
        self,
        method: str,
        url: str,
        *,
        failure: str,
        classify: Classifier | None = None,
        **kwargs: Any,
    ) -> httpx.Response: ...


class BlueskyMetrics:
    """The Bluesky adapter's collector."""

    metrics_batch_size = POSTS_PER_CALL

    def fetch_metrics(
        self: _SessionAdapter, account: AccountCredentials, post_ids: list[str]
    ) -> dict[str, Metrics]:
        """Posts gone from the network are left out of getPosts' answer."""
        body = _read(self, account, "app.bsky.feed.getPosts", {"uris": post_ids})
        found: dict[str, Metrics] = {}
        for post in body.get("posts") or []:
            if not isinstance(post, dict) or not post.get("uri"):
                continue
            found[str(post["uri"])] = Metrics(
                likes=count(post.get("likeCount")),
                comments=count(post.get("replyCount")),
                shares=sum_counts(post.get("repostCount"), post.get("quoteCount")),
                raw={k: post[k] for k in POST_COUNTS if k in post},
            )
        return found

    def fetch_account_metrics(self: _SessionAdapter, account: AccountCredentials) -> AccountMetrics:
        did = self.session(account).did
        body = _read(self, account, "app.bsky.actor.getProfile", {"actor": did})
        return AccountMetrics(
            followers=count(body.get("followersCount")),
            following=count(body.get("followsCount")),
            posts_count=count(body.get("postsCount")),
            raw={k: body[k] for k in PROFILE_COUNTS if k in body},
        )


def _read(
    adapter: _SessionAdapter, account: AccountCredentials, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    """A GET of an app.bsky method with the account's session. An access JWT refused as
    expired raises AuthExpiredError: the collector then refreshes the session once."""
    session = adapter.session(account)
    response = adapter.send(
        "GET",
        adapter.xrpc(method, session.pds),
        failure="reading Bluesky figures failed",
        classify=classify,
        params=params,
        headers={"Authorization": f"Bearer {session.access_jwt}"},
        timeout=TIMEOUT,
    )
    return json_body(response)
