"""Facebook Pages (docs/platforms.md): feed text posts, photos (several photos are
unpublished uploads attached to one feed post), videos (file_url), and reels
(video_reels start → bytes to rupload → finish; bytes rather than a hosted file_url,
which rupload refuses when robots.txt blocks its crawler).

Page tokens obtained from a long-lived user token do not expire, so there is no refresh
flow: an auth error is final for the account (the base class refuses to refresh).
Photos, one or several, are uploaded unpublished and attached to one feed post. Feed
posts have no idempotency key: the attempt's start time is saved first, and a retry or
reconcile looks for the post in the Page's listing before sending it again. A reel's
video id is its handle. A Page video is uploaded unpublished (`published=false`, nothing
public) and its id saved; the irreversible call is `POST /{video-id}` with
`published=true`, which changes nothing when sent again.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import urljoin

import httpx

from app.platforms import GRAPH_VERSION
from workers.adapters import register
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    Adapter,
    FollowUp,
    MediaItem,
    Metrics,
    PermanentError,
    PlatformError,
    PublishContext,
    PublishRequest,
    PublishResult,
    ReconcileResult,
    ReconcileStatus,
    TransientError,
    checked_state,
    count,
    resuming_prepared,
    stamp_checked,
    working_handle,
)
from workers.adapters.comments import COMMENT_PAGE_SIZE, begin_comment, found_comment
from workers.adapters.graph import (
    LISTING_PAGE_SIZE,
    GraphResponse,
    earliest_match,
    graph_call,
    insight_values,
    lower_time_bound,
    parse_graph_time,
    usage_from_headers,
)
from workers.adapters.kit import stream_file

FACEBOOK_WEB = "https://www.facebook.com"
# A post's figures in one read: reaction and comment totals, shares, lifetime insights.
POST_METRIC_FIELDS = (
    "shares,comments.summary(true).limit(0),reactions.summary(true).limit(0),"
    "insights.metric(post_impressions,post_clicks)"
)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
DEAD_VIDEO_STATES = frozenset({"error", "expired", "upload_failed"})
REEL_DONE_STATES = frozenset({"published", "scheduled"})


@register
class FacebookAdapter(Adapter):
    platform = "facebook"
    # graph-video.facebook.com is deprecated for uploads: same host.
    hosts = {"api": "graph.facebook.com", "video": "graph.facebook.com"}
    supports_refresh = False

    # -- helpers -------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, token: str, host: str = "api", **kwargs: Any
    ) -> GraphResponse:
        url = self.url(f"/{GRAPH_VERSION}{path}", host=host)
        return graph_call(self.http, self.platform, method, url, token=token, **kwargs)

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        self._call("DELETE", f"/{platform_post_id}", account.access_token)

    # One GET /?ids= reads up to 50 objects.
    metrics_batch_size = 50

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """Each post's reactions, comments and shares, and its lifetime insights."""
        params = {"ids": ",".join(post_ids), "fields": POST_METRIC_FIELDS}
        body = self._call("GET", "/", account.access_token, params=params).body
        found: dict[str, Metrics] = {}
        for post_id in post_ids:
            item = body.get(post_id)
            if not isinstance(item, dict):
                continue
            insights = insight_values(item.get("insights") or {})
            found[post_id] = Metrics(
                likes=count(
                    ((item.get("reactions") or {}).get("summary") or {}).get("total_count")
                ),
                comments=count(
                    ((item.get("comments") or {}).get("summary") or {}).get("total_count")
                ),
                # Graph leaves `shares` out of a post nobody shared.
                shares=count((item.get("shares") or {}).get("count", 0)),
                impressions=insights.get("post_impressions"),
                clicks=insights.get("post_clicks"),
                raw=item,
            )
        return found

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        if not account.external_id:
            return None
        params = {"fields": "followers_count,fan_count"}
        body = self._call("GET", f"/{account.external_id}", account.access_token, params=params)
        return AccountMetrics(followers=count(body.body.get("followers_count")), raw=body.body)

    @staticmethod
    def _page_id(request: PublishRequest) -> str:
        if not request.account.external_id:
            raise PermanentError(
                "the Facebook account has no Page id (external_id)",
                code="facebook_page_id_missing",
            )
        return request.account.external_id

    @staticmethod
    def _kind(request: PublishRequest) -> str:
        videos = [m for m in request.media if m.kind == "video"]
        images = [m for m in request.media if m.kind == "image"]
        if videos and (images or len(videos) > 1):
            raise PermanentError(
                "a Facebook post takes up to 10 images or one video",
                code="facebook_unsupported_media",
            )
        if videos:
            return "reel" if request.settings.get("videoType") == "reel" else "video"
        if len(images) > 1:
            return "album"
        return "photo" if images else "feed"

    @staticmethod
    def _before_publish(context: PublishContext, handle: dict[str, Any]) -> None:
        context.save_handle(handle)
        context.mark_irreversible()

    def _result(
        self, token: str, object_id: str, kind: str, headers: httpx.Headers | None = None
    ) -> PublishResult:
        details: dict[str, Any] = {"kind": kind}
        if headers is not None and (usage := usage_from_headers(headers)):
            details["rate_limit"] = usage
        try:
            body = self._call("GET", f"/{object_id}", token, params={"fields": "permalink_url"})
            url = _absolute(body.body.get("permalink_url"))
        except PlatformError as exc:
            details["permalink_error"] = exc.code
            url = None
        if url is None and kind in ("feed", "photo", "album"):
            url = f"{FACEBOOK_WEB}/{object_id}"  # documented form for Page posts
        return PublishResult(platform_post_id=object_id, url=url, details=details)

    # -- publish -------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        kind = self._kind(request)
        handle = working_handle(request)
        if kind == "reel":
            return self._publish_reel(request, context, handle)
        if kind == "video" and handle.get("kind") == "video" and handle.get("video_id"):
            # Uploaded unpublished before: publishing it again is harmless, no lookup needed.
            return self._publish_video(request, context, handle)
        if handle.get("started_at") and not resuming_prepared(request):
            # An earlier attempt may have posted: adopt it rather than post twice.
            found = self._find_listed(request, kind, handle)
            if found is not None:
                return found
        if kind in ("photo", "album"):
            return self._publish_photos(request, context, handle, kind)
        if kind == "video":
            return self._publish_video(request, context, {})
        page = self._page_id(request)
        token = request.account.access_token
        self._before_publish(context, {"kind": kind, "started_at": time.time()})
        response = self._call("POST", f"/{page}/feed", token, data={"message": request.text})
        return self._result(token, str(response.body["id"]), kind, response.headers)

    def _publish_photos(
        self, request: PublishRequest, context: PublishContext, handle: dict[str, Any], kind: str
    ) -> PublishResult:
        """Each photo is uploaded unpublished (Facebook downloads it now, and nothing shows
        on the Page), then one feed post attaches them: the irreversible call. A single
        photo goes the same way, so its download is done before the instant too."""
        page = self._page_id(request)
        token = request.account.access_token
        photo_ids = handle.get("photo_ids") if handle.get("kind") == kind else None
        if not photo_ids:
            photo_ids = [
                str(
                    self._call(
                        "POST",
                        f"/{page}/photos",
                        token,
                        data={"url": item.public_url, "published": "false"},
                    ).body["id"]
                )
                for item in request.media
            ]
            context.save_handle({"kind": kind, "photo_ids": photo_ids})
        self._before_publish(
            context, {"kind": kind, "photo_ids": photo_ids, "started_at": time.time()}
        )
        data = {"attached_media": json.dumps([{"media_fbid": pid} for pid in photo_ids])}
        if request.text:
            data["message"] = request.text
        response = self._call("POST", f"/{page}/feed", token, data=data)
        return self._result(token, str(response.body["id"]), kind, response.headers)

    def _publish_video(
        self, request: PublishRequest, context: PublishContext, handle: dict[str, Any]
    ) -> PublishResult:
        """Upload the video unpublished (Facebook pulls file_url and starts processing; the
        Page shows nothing), save its id, then publish it: the one irreversible call."""
        page = self._page_id(request)
        token = request.account.access_token
        if not handle.get("video_id"):
            data = {"file_url": request.media[0].public_url, "published": "false"}
            if request.text:
                data["description"] = request.text
            body = self._call(
                "POST", f"/{page}/videos", token, host="video", data=data, timeout=UPLOAD_TIMEOUT
            ).body
            handle = {"kind": "video", "video_id": str(body["id"])}
            context.save_handle(handle)
        video_id = handle["video_id"]
        self._before_publish(context, {**handle, "started_at": time.time()})
        response = self._call("POST", f"/{video_id}", token, data={"published": "true"})
        if response.body.get("success") is not True:
            raise TransientError(
                "Facebook did not confirm publishing the video",
                code="facebook_video_publish_unconfirmed",
                details={"video_id": video_id},
            )
        return self._result(token, video_id, "video", response.headers)

    def check_prepared(self, request: PublishRequest) -> PublishRequest:
        handle = request.handle or {}
        if not resuming_prepared(request) or handle.get("kind") != "reel":
            return request
        if not handle.get("video_id"):
            return request
        status = self._video_status(request.account.access_token, handle["video_id"])
        uploaded = (status.get("uploading_phase") or {}).get("status") == "complete"
        settled = _publish_status(status) in REEL_DONE_STATES
        if not uploaded or settled or status.get("video_status") in DEAD_VIDEO_STATES:
            return request  # publish() looks again and takes it from there
        return stamp_checked(request, status)

    def _publish_reel(
        self, request: PublishRequest, context: PublishContext, handle: dict[str, Any]
    ) -> PublishResult:
        page = self._page_id(request)
        token = request.account.access_token
        status: dict[str, Any] = {}
        checked = checked_state(request)
        if handle.get("kind") == "reel" and handle.get("video_id"):
            # Read by check_prepared a moment before the instant, or now.
            status = (
                checked
                if isinstance(checked, dict)
                else self._video_status(token, handle["video_id"])
            )
            if _publish_status(status) in REEL_DONE_STATES:
                return self._result(token, handle["video_id"], "reel")
            if status.get("video_status") in DEAD_VIDEO_STATES:
                handle, status = {}, {}
        if not handle.get("video_id"):
            body = self._call(
                "POST", f"/{page}/video_reels", token, data={"upload_phase": "start"}
            ).body
            handle = {
                "kind": "reel",
                "video_id": str(body["video_id"]),
                "upload_url": str(body["upload_url"]),
            }
            context.save_handle(handle)
        uploading = status.get("uploading_phase") or {}
        if uploading.get("status") != "complete":
            offset = int(uploading.get("bytes_transferred") or 0)
            self._upload_reel(token, handle["upload_url"], request.media[0], offset)

        self._before_publish(context, {**handle, "started_at": time.time()})
        data = {
            "upload_phase": "finish",
            "video_id": handle["video_id"],
            "video_state": "PUBLISHED",
        }
        if request.text:
            data["description"] = request.text
        response = self._call("POST", f"/{page}/video_reels", token, data=data)
        if response.body.get("success") is not True:
            raise TransientError(
                "Facebook did not confirm the reel's finish phase",
                code="facebook_reel_finish_unconfirmed",
                details={"video_id": handle["video_id"]},
            )
        return self._result(token, handle["video_id"], "reel", response.headers)

    def _upload_reel(self, token: str, upload_url: str, item: MediaItem, offset: int) -> None:
        """Stream the bytes to rupload from `offset` (a resumed upload goes on where the
        status says it stopped); the upload URL is used as the start phase gave it."""
        size = os.path.getsize(item.path)
        response = graph_call(
            self.http,
            self.platform,
            "POST",
            upload_url,
            token=token,
            content=stream_file(item.path, offset),
            headers={
                "offset": str(offset),
                "file_size": str(size),
                "Content-Length": str(size - offset),
                "Content-Type": "application/octet-stream",
            },
            auth_scheme="OAuth",
            timeout=UPLOAD_TIMEOUT,
        )
        if response.body.get("success") is not True:
            raise TransientError(
                "Facebook did not confirm the reel upload", code="facebook_upload_unconfirmed"
            )

    def _video_status(self, token: str, video_id: str) -> dict[str, Any]:
        body = self._call("GET", f"/{video_id}", token, params={"fields": "status"}).body
        status = body.get("status")
        return status if isinstance(status, dict) else {}

    # -- discarding what was prepared -----------------------------------------------------

    def discard_prepared(self, account: AccountCredentials, handle: dict[str, Any]) -> int:
        """DELETE the unpublished photos, video or unfinished reel a prepare uploaded. A
        video or reel Facebook shows as published is kept; photos are deleted on the
        caller's word that their feed post was never sent."""
        token = account.access_token
        kind = handle.get("kind")
        ids: list[str] = []
        if kind in ("photo", "album"):
            ids = [str(pid) for pid in handle.get("photo_ids") or []]
        elif kind in ("video", "reel") and handle.get("video_id"):
            video_id = str(handle["video_id"])
            try:
                body = self._call(
                    "GET", f"/{video_id}", token, params={"fields": "published,status"}
                ).body
            except PermanentError:
                return 0  # already gone
            status = body.get("status") if isinstance(body.get("status"), dict) else {}
            if body.get("published") is True or _publish_status(status) in REEL_DONE_STATES:
                return 0
            ids = [video_id]
        deleted = 0
        for object_id in ids:
            try:
                self._call("DELETE", f"/{object_id}", token)
            except PermanentError:
                continue  # already gone
            deleted += 1
        return deleted

    # -- reconcile -----------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        """A reel by its video's publishing phase; other posts in the Page's listing."""
        handle = dict(request.handle or {})
        kind = handle.get("kind") or self._kind(request)
        token = request.account.access_token
        if kind == "video" and handle.get("video_id"):
            body = self._call(
                "GET", f"/{handle['video_id']}", token, params={"fields": "published"}
            ).body
            if body.get("published") is True:
                result = self._result(token, handle["video_id"], "video")
                return ReconcileResult(ReconcileStatus.FOUND, result, "video published")
            return ReconcileResult(
                ReconcileStatus.NOT_FOUND, reason="the video is uploaded but not published"
            )
        if kind == "reel" and handle.get("video_id"):
            publish_status = _publish_status(self._video_status(token, handle["video_id"]))
            if publish_status in REEL_DONE_STATES:
                result = self._result(token, handle["video_id"], "reel")
                return ReconcileResult(ReconcileStatus.FOUND, result, f"reel {publish_status}")
            return ReconcileResult(
                ReconcileStatus.NOT_FOUND, reason=f"reel publish status {publish_status!r}"
            )
        found = self._find_listed(request, kind, handle)
        if found is not None:
            return ReconcileResult(ReconcileStatus.FOUND, found, "found in the Page listing")
        return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching recent post")

    def _find_listed(
        self, request: PublishRequest, kind: str, handle: dict[str, Any]
    ) -> PublishResult | None:
        """The Page's post (or video) with this text, created since the attempt began."""
        edge, text_field = ("videos", "description") if kind == "video" else ("posts", "message")
        not_before = lower_time_bound(request, handle)
        body = self._call(
            "GET",
            f"/{self._page_id(request)}/{edge}",
            request.account.access_token,
            params={
                "fields": f"id,{text_field},created_time,permalink_url",
                "since": int(not_before),
                "limit": LISTING_PAGE_SIZE,
            },
        ).body
        entries = [e for e in body.get("data") or [] if isinstance(e, dict) and e.get("id")]
        entry = earliest_match(entries, text_field, request.text, not_before, "created_time")
        if entry is None:
            return None
        post_id = str(entry["id"])
        url = _absolute(entry.get("permalink_url"))
        if url is None and kind != "video":
            url = f"{FACEBOOK_WEB}/{post_id}"
        return PublishResult(post_id, url, {"kind": kind, "adopted": True})

    # -- a first comment: POST /{object-id}/comments -----------------------------------------

    def publish_comment(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        begin_comment(context)
        body = self._call(
            "POST",
            f"/{parent.platform_post_id}/comments",
            request.account.access_token,
            data={"message": item.text},
        ).body
        return _comment_result(str(body["id"]), parent)

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        body = self._call(
            "GET",
            f"/{parent.platform_post_id}/comments",
            request.account.access_token,
            params={"fields": "id,message,created_time", "limit": COMMENT_PAGE_SIZE},
        ).body
        listed = [
            (str(e["id"]), str(e.get("message") or ""), parse_graph_time(e.get("created_time")))
            for e in body.get("data") or []
            if isinstance(e, dict) and e.get("id")
        ]
        return found_comment(item, listed, lambda comment_id: _comment_result(comment_id, parent))


def _comment_result(comment_id: str, parent: PublishResult) -> PublishResult:
    """A comment's link: its post's, naming the comment ({post}_{comment} ids)."""
    number = comment_id.rsplit("_", 1)[-1]
    url = f"{parent.url}?comment_id={number}" if parent.url else None
    return PublishResult(comment_id, url, {"reply_to": parent.platform_post_id})


def _publish_status(status: dict[str, Any]) -> str | None:
    phase = status.get("publishing_phase")
    return phase.get("publish_status") if isinstance(phase, dict) else None


def _absolute(permalink: Any) -> str | None:
    """Video permalinks come back relative (/{page}/videos/{id}/)."""
    if not isinstance(permalink, str) or not permalink:
        return None
    return urljoin(FACEBOOK_WEB + "/", permalink)
