"""Threads (graph.threads.net/v1.0): container (TEXT/IMAGE/VIDEO/CAROUSEL) → status →
threads_publish → permalink (docs/platforms.md)."""

from __future__ import annotations

from dataclasses import replace

from workers.adapters import register
from workers.adapters._containers import ContainerPlan, GraphContainerAdapter
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    FollowUp,
    MediaItem,
    Metrics,
    PermanentError,
    PlatformError,
    PublishContext,
    PublishRequest,
    PublishResult,
    ReconcileResult,
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
# The container parameter that makes a post a reply (a thread's item, a first comment).
REPLY_TO = "reply_to_id"
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
        reply = {REPLY_TO: request.settings[REPLY_TO]} if request.settings.get(REPLY_TO) else {}
        if not request.media:
            if not request.text:
                raise PermanentError(
                    "a Threads post needs text or media", code="threads_empty_post"
                )
            return ContainerPlan({"media_type": "TEXT", "text": request.text, **reply})
        if len(request.media) == 1:
            params = _with_text(_media_params(request.media[0]), request.text)
            return ContainerPlan({**params, **reply})
        children = [{**_media_params(item), "is_carousel_item": "true"} for item in request.media]
        parent = _with_text({"media_type": "CAROUSEL"}, request.text)
        return ContainerPlan({**parent, **reply}, children)

    # -- replies: a thread's items and a first comment --------------------------------------

    def publish_reply(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        """A container with reply_to_id, then threads_publish: the item under its parent."""
        return self.publish(_reply_request(request, parent, item), context)

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        """By the item's saved container; else among the parent's replies."""
        return self.reconcile(_reply_request(request, parent, item))

    def listing_path(self, request: PublishRequest) -> str:
        if request.settings.get(REPLY_TO):
            return f"/{request.settings[REPLY_TO]}/replies"
        return super().listing_path(request)

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


def _reply_request(
    request: PublishRequest, parent: PublishResult, item: FollowUp
) -> PublishRequest:
    """The item as a post of its own, replying to `parent`, resuming its saved handle."""
    return replace(
        request,
        text=item.text,
        media=list(item.media),
        settings={REPLY_TO: parent.platform_post_id},
        handle=item.handle,
        irreversible_started_at=item.started_at,
        cover=None,
        follow_ups=(),
    )


def _media_params(item: MediaItem) -> dict[str, str]:
    if item.kind == "video":
        return {"media_type": "VIDEO", "video_url": item.public_url}
    return {"media_type": "IMAGE", "image_url": item.public_url}


def _with_text(params: dict[str, str], text: str) -> dict[str, str]:
    return {**params, "text": text} if text else params
