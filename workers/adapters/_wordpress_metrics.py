"""WordPress's one figure (docs/analytics.md): a post's comments. A self-hosted site's
core REST API keeps no views or likes; the count of a post's comments is the
`X-WP-Total` header of GET /wp/v2/comments?post=<id>&per_page=1, one post a call.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from workers.adapters.base import AccountCredentials, Metrics, PermanentError, count

COMMENTS_PATH = "/wp-json/wp/v2/comments"


class _Site(Protocol):
    """What the read needs of the WordPress adapter."""

    def site_url(self, account: AccountCredentials, path: str) -> str: ...

    def _call(
        self, method: str, url: str, account: AccountCredentials, **kwargs: Any
    ) -> httpx.Response: ...


class WordPressMetrics:
    """The WordPress adapter's collector; no audience figures (`fetch_account_metrics`
    stays None): core has no followers."""

    metrics_batch_size = 1

    def fetch_metrics(
        self: _Site, account: AccountCredentials, post_ids: list[str]
    ) -> dict[str, Metrics]:
        """Approved comments, as the site shows them. WordPress answers a post it no
        longer shows (trashed) with no comments rather than an error: it reads 0."""
        found: dict[str, Metrics] = {}
        for post_id in post_ids:
            response = self._call(
                "GET",
                self.site_url(account, COMMENTS_PATH),
                account,
                params={"post": int(post_id), "per_page": 1, "_fields": "id"},
            )
            total = count(response.headers.get("x-wp-total"))
            if total is None:
                raise PermanentError(
                    "the site's comment listing has no X-WP-Total header",
                    code="wordpress_no_comment_total",
                    http_status=response.status_code,
                )
            found[post_id] = Metrics(comments=total, raw={"comments_total": total})
        return found
