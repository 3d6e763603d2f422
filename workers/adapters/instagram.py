"""Instagram: container → status → media_publish → permalink (docs/platforms.md).

Two hosts, by the login the account connected through (its settings' `login`): Instagram
Login accounts call graph.instagram.com with their Instagram user token, refreshed with
ig_refresh_token; Facebook Login accounts (an Instagram professional account linked to a
Facebook Page) call graph.facebook.com with the Page's token, which does not expire and
has no refresh. The calls themselves are the same on both.

Media go by public URL (image_url / video_url), which both login paths support; a single
video is always a reel (feed VIDEO is gone since 2023), several media are a carousel.
"""

from __future__ import annotations

import json

from app.platforms import FACEBOOK_LOGIN, GRAPH_VERSION
from workers.adapters import register
from workers.adapters._containers import ContainerPlan, GraphContainerAdapter
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    AuthRevokedError,
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
    count,
)
from workers.adapters.comments import COMMENT_PAGE_SIZE, begin_comment, found_comment
from workers.adapters.graph import (
    MEDIA_FETCH_ERRORS,
    MEDIA_FETCH_HINT,
    PERMANENT_SUBCODES,
    TRANSIENT_SUBCODES,
    insight_values,
    parse_graph_time,
    refresh_long_lived_token,
    subcode_in,
)

CONTENT_TYPES = ("Post", "Story", "Reels", "Trial Reel")
TRIAL_GRADUATION_STRATEGY = "MANUAL"


@register
class InstagramAdapter(GraphContainerAdapter):
    platform = "instagram"
    hosts = {"api": "graph.instagram.com", "facebook": "graph.facebook.com"}
    host_platforms = {"facebook": "facebook"}
    supports_refresh = True
    refreshes_access_token = True

    api_version = GRAPH_VERSION
    create_edge = "media"
    publish_edge = "media_publish"
    text_field = "caption"
    status_field = "status_code"
    status_detail_field = "status"
    permalink_fields = "permalink,shortcode,media_type,media_product_type"

    def api_host(self, account: AccountCredentials) -> str:
        return "facebook" if via_facebook_login(account) else "api"

    def can_refresh(self, account: AccountCredentials) -> bool:
        # A Page token from a long-lived user token does not expire: only reconnecting helps.
        return not via_facebook_login(account) and super().can_refresh(account)

    def container_plan(self, request: PublishRequest) -> ContainerPlan:
        content_type = request.settings.get("contentType") or "Post"
        if content_type not in CONTENT_TYPES:
            raise _unsupported(f"unknown Instagram content type {content_type!r}")
        if not request.media:
            raise _unsupported("Instagram needs at least one image or video")
        if content_type == "Story":
            return ContainerPlan(self._story(request))
        if content_type in ("Reels", "Trial Reel"):
            return ContainerPlan(self._reel(request, trial=content_type == "Trial Reel"))
        if len(request.media) == 1:
            item = request.media[0]
            if item.kind == "video":
                return ContainerPlan(self._reel(request, trial=False))
            return ContainerPlan(_with_caption(self._image(request, item), request.text))
        children = [
            {**self._image(request, item), "is_carousel_item": "true"}
            if item.kind == "image"
            else {"media_type": "VIDEO", "video_url": item.public_url, "is_carousel_item": "true"}
            for item in request.media
        ]
        return ContainerPlan(
            _with_caption({"media_type": "CAROUSEL"}, request.text), children=children
        )

    @staticmethod
    def _image(request: PublishRequest, item: MediaItem) -> dict[str, str]:
        params = {"image_url": item.public_url}
        if alt_text := request.settings.get("altText"):
            params["alt_text"] = str(alt_text)
        return params

    @staticmethod
    def _story(request: PublishRequest) -> dict[str, str]:
        if len(request.media) != 1:
            raise _unsupported("an Instagram story takes exactly one image or video")
        item = request.media[0]
        url_field = "video_url" if item.kind == "video" else "image_url"
        return {"media_type": "STORIES", url_field: item.public_url}

    @staticmethod
    def _reel(request: PublishRequest, trial: bool) -> dict[str, str]:
        if len(request.media) != 1 or request.media[0].kind != "video":
            raise _unsupported("an Instagram reel takes exactly one video")
        params = {"media_type": "REELS", "video_url": request.media[0].public_url}
        if trial:
            params["trial_params"] = json.dumps({"graduation_strategy": TRIAL_GRADUATION_STRATEGY})
        else:
            params["share_to_feed"] = "true"
        cover_seconds = request.settings.get("coverPhotoTimestamp")
        if cover_seconds is not None:
            params["thumb_offset"] = str(round(float(cover_seconds) * 1000))
        if request.cover is not None:
            # The post's cover_photo; Instagram pulls it like the video.
            params["cover_url"] = request.cover.public_url
        return _with_caption(params, request.text)

    def container_failure(self, container_id: str, detail: str) -> PlatformError:
        subcode = subcode_in(detail)
        details = {"container_id": container_id, "graph_subcode": subcode}
        message = f"Instagram could not process the media: {detail or 'ERROR'}"
        if subcode in TRANSIENT_SUBCODES:
            return TransientError(
                message, code=f"instagram_{TRANSIENT_SUBCODES[subcode]}", details=details
            )
        name = PERMANENT_SUBCODES.get(subcode or 0, "container_error")
        if name in MEDIA_FETCH_ERRORS:
            message = f"{message} ({MEDIA_FETCH_HINT})"
        return PermanentError(message, code=f"instagram_{name}", details=details)

    def listing_edge(self, request: PublishRequest) -> str:
        # Stories are not in /media; they are listed (for 24 h) under /stories.
        return "stories" if request.settings.get("contentType") == "Story" else "media"

    def listing_text_field(self, request: PublishRequest) -> str | None:
        # A story carries no caption: it is matched by time alone.
        return None if request.settings.get("contentType") == "Story" else "caption"

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """Media insights, one media a call (the insights edge takes one id)."""
        found: dict[str, Metrics] = {}
        for media_id in post_ids:
            params = {"metric": "views,reach,likes,comments,shares,saved"}
            values = insight_values(
                self.call("GET", f"/{media_id}/insights", account, params=params).body
            )
            found[media_id] = Metrics(
                views=values.get("views"),
                likes=values.get("likes"),
                comments=values.get("comments"),
                shares=values.get("shares"),
                saves=values.get("saved"),
                raw=dict(values),
            )
        return found

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        params = {"fields": "followers_count,follows_count,media_count"}
        body = self.call("GET", f"/{account.external_id or 'me'}", account, params=params).body
        return AccountMetrics(
            followers=count(body.get("followers_count")),
            following=count(body.get("follows_count")),
            posts_count=count(body.get("media_count")),
            raw=body,
        )

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """GET /refresh_access_token?grant_type=ig_refresh_token: 60 more days. A Page
        token (Facebook Login) has no refresh: when it stops working (password changed,
        Page role removed) the account must connect again."""
        if via_facebook_login(account):
            raise AuthRevokedError(
                "this Instagram account publishes with its Facebook Page's token, which has "
                "no refresh; reconnect it through Facebook Login",
                code="instagram_reconnect_required",
            )
        return refresh_long_lived_token(
            self, "/refresh_access_token", "ig_refresh_token", account.access_token
        )

    # -- a first comment: POST /{ig-media-id}/comments -------------------------------------

    def publish_comment(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        begin_comment(context)
        body = self.call(
            "POST",
            f"/{parent.platform_post_id}/comments",
            request.account,
            data={"message": item.text},
        ).body
        return _comment_result(str(body["id"]), parent)

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        body = self.call(
            "GET",
            f"/{parent.platform_post_id}/comments",
            request.account,
            params={"fields": "id,text,timestamp", "limit": COMMENT_PAGE_SIZE},
        ).body
        listed = [
            (str(e["id"]), str(e.get("text") or ""), parse_graph_time(e.get("timestamp")))
            for e in body.get("data") or []
            if isinstance(e, dict) and e.get("id")
        ]
        return found_comment(item, listed, lambda comment_id: _comment_result(comment_id, parent))


def via_facebook_login(account: AccountCredentials) -> bool:
    return (account.settings or {}).get("login") == FACEBOOK_LOGIN


def _with_caption(params: dict[str, str], caption: str) -> dict[str, str]:
    return {**params, "caption": caption} if caption else params


def _unsupported(message: str) -> PermanentError:
    return PermanentError(message, code="instagram_unsupported_media")


def _comment_result(comment_id: str, parent: PublishResult) -> PublishResult:
    """Instagram comments have no link of their own: the post's."""
    return PublishResult(comment_id, parent.url, {"reply_to": parent.platform_post_id})
