"""Threads (graph.threads.net/v1.0): container (TEXT/IMAGE/VIDEO/CAROUSEL) → status →
threads_publish → permalink (docs/platforms.md)."""

from __future__ import annotations

from workers.adapters import register
from workers.adapters._containers import ContainerPlan, GraphContainerAdapter
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    MediaItem,
    Metrics,
    PermanentError,
    PlatformError,
    PublishRequest,
    TokenSet,
    TransientError,
    sum_counts,
)
from workers.adapters.graph import (
    MEDIA_FETCH_HINT,
    insight_values,
    refresh_long_lived_token,
)

THREADS_VERSION = "v1.0"
# Container error_message values worth another try (download/processing hiccups);
# INVALID_* describe the media itself and are final.
RETRYABLE_CONTAINER_ERRORS = frozenset(
    {"FAILED_DOWNLOADING_VIDEO", "FAILED_PROCESSING_AUDIO", "FAILED_PROCESSING_VIDEO", "UNKNOWN"}
)


@register
class ThreadsAdapter(GraphContainerAdapter):
    platform = "threads"
    hosts = {"api": "graph.threads.net"}
    supports_refresh = True
    refreshes_access_token = True

    api_version = THREADS_VERSION
    deletable = True
    create_edge = "threads"
    publish_edge = "threads_publish"
    text_field = "text"
    status_field = "status"
    status_detail_field = "error_message"
    permalink_fields = "permalink,shortcode,media_type"

    def container_plan(self, request: PublishRequest) -> ContainerPlan:
        if not request.media:
            if not request.text:
                raise PermanentError(
                    "a Threads post needs text or media", code="threads_empty_post"
                )
            return ContainerPlan({"media_type": "TEXT", "text": request.text})
        if len(request.media) == 1:
            return ContainerPlan(_with_text(_media_params(request.media[0]), request.text))
        children = [{**_media_params(item), "is_carousel_item": "true"} for item in request.media]
        return ContainerPlan(_with_text({"media_type": "CAROUSEL"}, request.text), children)

    def container_failure(self, container_id: str, detail: str) -> PlatformError:
        reason = detail or "UNKNOWN"
        message = f"Threads could not process the media: {reason}"
        details = {"container_id": container_id, "error_message": reason}
        if reason == "FAILED_DOWNLOADING_VIDEO":
            # Retryable by Threads' docs: each attempt sends a freshly signed link.
            return TransientError(
                f"{message} ({MEDIA_FETCH_HINT})",
                code="threads_media_fetch_failed",
                details=details,
            )
        if reason in RETRYABLE_CONTAINER_ERRORS:
            return TransientError(message, code="threads_media_processing_failed", details=details)
        return PermanentError(message, code="threads_media_rejected", details=details)

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """Media insights, one post a call (the insights edge takes one id)."""
        found: dict[str, Metrics] = {}
        for media_id in post_ids:
            params = {"metric": "views,likes,replies,reposts,quotes,shares"}
            values = insight_values(
                self.call("GET", f"/{media_id}/insights", account, params=params).body
            )
            found[media_id] = Metrics(
                views=values.get("views"),
                likes=values.get("likes"),
                comments=values.get("replies"),
                shares=sum_counts(
                    values.get("reposts"), values.get("quotes"), values.get("shares")
                ),
                raw=dict(values),
            )
        return found

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        path = f"/{account.external_id or 'me'}/threads_insights"
        body = self.call("GET", path, account, params={"metric": "followers_count"}).body
        values = insight_values(body)
        return AccountMetrics(followers=values.get("followers_count"), raw=dict(values))

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """GET /refresh_access_token?grant_type=th_refresh_token: 60 more days."""
        return refresh_long_lived_token(
            self, "/refresh_access_token", "th_refresh_token", account.access_token
        )


def _media_params(item: MediaItem) -> dict[str, str]:
    if item.kind == "video":
        return {"media_type": "VIDEO", "video_url": item.public_url}
    return {"media_type": "IMAGE", "image_url": item.public_url}


def _with_text(params: dict[str, str], text: str) -> dict[str, str]:
    return {**params, "text": text} if text else params
