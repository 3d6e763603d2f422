"""TikTok Content Posting API: Direct Post of one video by FILE_UPLOAD (docs/platforms.md).

creator_info (privacy options, the creator's interaction switches) → video/init → PUT the
chunks to upload_url → poll status/fetch until PUBLISH_COMPLETE. TikTok has no idempotency:
a repeated init can post twice, so init is the irreversible call, its publish_id is saved
the moment it returns, and every later attempt resumes from that publish_id.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.platforms import MB
from workers.adapters import register
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    Adapter,
    AuthRevokedError,
    MediaItem,
    Metrics,
    PermanentError,
    PlatformError,
    PublishContext,
    PublishRequest,
    PublishResult,
    QuotaExhaustedError,
    ReconcileResult,
    ReconcileStatus,
    TokenSet,
    TransientError,
    count,
    json_body,
    single_video,
)
from workers.adapters.kit import (
    ErrorCodes,
    chunk_ranges,
    classify_status,
    file_parts,
    poll_until,
    reconcile_since,
)

API_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# The prefix of a network error's message (the exception class and text follow).
UNREACHABLE = "TikTok unreachable"
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)

# Media transfer guide: chunks of 5-64 MB, the final one up to 128 MB, 1-1000 chunks,
# total_chunk_count = floor(video_size / chunk_size); files under 5 MB go in one chunk.
# Ours: files up to 10 MB go whole, larger ones in 10 MB chunks (each held in memory);
# the final chunk then stays under 20 MB and 4 GB needs 409 chunks.
UPLOAD_CHUNK_BYTES = 10 * MB
UPLOAD_URL_TTL_SECONDS = 3600

# 429 rate_limit_exceeded comes without headers; the limits are one-minute sliding windows.
RATE_LIMIT_WINDOW_SECONDS = 60.0
# spam_risk_too_many_posts: about 15 posts per creator per rolling 24 h, no reset hint.
POST_CAP_WINDOW = timedelta(hours=24)
CLOCK_SKEW = timedelta(seconds=300)
VIDEO_LIST_MAX_COUNT = 20  # the endpoint's maximum page size

CAP_CODES = frozenset({"spam_risk_too_many_posts", "reached_active_user_cap"})
RECONSENT_CODES = frozenset({"scope_not_authorized", "scope_permission_missed"})
TRANSIENT_FAIL_REASONS = frozenset({"internal", "video_pull_failed", "photo_pull_failed"})
INTERACTIONS = (
    # (API contract setting, creator_info switch, post_info field, label)
    ("allowComments", "comment_disabled", "disable_comment", "comments"),
    ("allowDuet", "duet_disabled", "disable_duet", "duet"),
    ("allowStitch", "stitch_disabled", "disable_stitch", "stitch"),
)


def chunk_plan(video_size: int) -> tuple[int, int]:
    """(chunk_size, total_chunk_count) following the media transfer guide's rules."""
    if video_size <= UPLOAD_CHUNK_BYTES:
        return video_size, 1
    return UPLOAD_CHUNK_BYTES, video_size // UPLOAD_CHUNK_BYTES


@register
class TikTokAdapter(Adapter):
    platform = "tiktok"
    hosts = {"api": "open.tiktokapis.com"}
    supports_refresh = True
    network_error_names_class = True
    # Direct Post publishes by itself when TikTok's processing of the upload ends, and the
    # upload cannot start before init, the irreversible call: nothing can be staged ahead.
    can_prepare = False

    # status/fetch allows 30 requests a minute per token: one poll every 2 s stays under it.
    status_poll_interval: float = 2.0
    # Past this the attempt ends as transient; the next one resumes polling the publish_id.
    status_poll_timeout: float = 60.0

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        video = single_video(
            request, "TikTok Direct Post needs exactly one video", "tiktok_video_required"
        )
        handle = request.handle or {}
        if handle.get("publish_id"):
            resumed = self._resume(handle, video, request.account.access_token)
            if resumed is not None:
                return resumed
        return self._post(request, video, context)

    def _post(
        self, request: PublishRequest, video: MediaItem, context: PublishContext
    ) -> PublishResult:
        token = request.account.access_token
        creator = self._call(token, "/v2/post/publish/creator_info/query/", {})
        post_info = _post_info(request, creator, video)
        chunk_size, chunk_count = chunk_plan(video.size_bytes)
        handle: dict[str, Any] = {
            "init_started_at": time.time(),
            "creator_username": creator.get("creator_username"),
            "privacy_level": post_info["privacy_level"],
        }
        context.save_handle(handle)
        context.mark_irreversible()
        init = self._call(
            token,
            "/v2/post/publish/video/init/",
            {
                "post_info": post_info,
                "source_info": {
                    "source": "FILE_UPLOAD",
                    "video_size": video.size_bytes,
                    "chunk_size": chunk_size,
                    "total_chunk_count": chunk_count,
                },
            },
        )
        handle.update(
            publish_id=init["publish_id"],
            upload_url=init["upload_url"],
            initialized_at=time.time(),
            video_size=video.size_bytes,
            chunk_size=chunk_size,
            total_chunk_count=chunk_count,
        )
        context.save_handle(handle)
        self._upload(handle, video, uploaded_bytes=0)
        return self._await_completion(handle, token)

    def _resume(self, handle: dict[str, Any], video: MediaItem, token: str) -> PublishResult | None:
        """Continue an earlier attempt's publish_id; None when only a fresh init can help."""
        status = self._fetch_status(token, handle["publish_id"])
        state = status.get("status")
        if state == "PUBLISH_COMPLETE":
            return _result(handle, status)
        if state == "FAILED":
            reason = status.get("fail_reason") or "unknown"
            if reason in TRANSIENT_FAIL_REASONS:
                return None  # a definite, retryable failure: re-initialising is safe
            raise _fail_reason_error(reason, handle["publish_id"])
        uploaded = int(status.get("uploaded_bytes") or 0)
        if state == "PROCESSING_UPLOAD" and uploaded < handle["video_size"]:
            if time.time() - handle["initialized_at"] >= UPLOAD_URL_TTL_SECONDS:
                return None  # the upload_url lapsed: without our bytes the post never happens
            self._upload(handle, video, uploaded_bytes=uploaded)
        return self._await_completion(handle, token)

    def _upload(self, handle: dict[str, Any], video: MediaItem, uploaded_bytes: int) -> None:
        """PUT the chunks in order, from the first one TikTok does not hold yet."""
        size, chunk_size, count = (
            handle["video_size"],
            handle["chunk_size"],
            handle["total_chunk_count"],
        )
        first_chunk = min(uploaded_bytes // chunk_size, count - 1)
        ranges = chunk_ranges(size, chunk_size, count, start=first_chunk)
        for first, last, content in file_parts(video.path, ranges):
            response = self._send(
                "PUT",
                handle["upload_url"],
                content=content,
                headers={
                    "Content-Type": video.mime_type,
                    "Content-Range": f"bytes {first}-{last}/{size}",
                },
                timeout=UPLOAD_TIMEOUT,
            )
            _check(response)

    def _await_completion(self, handle: dict[str, Any], token: str) -> PublishResult:
        publish_id = handle["publish_id"]
        state = None

        def look() -> PublishResult | None:
            nonlocal state
            status = self._fetch_status(token, publish_id)
            state = status.get("status")
            if state == "PUBLISH_COMPLETE":
                return _result(handle, status)
            if state == "FAILED":
                raise _fail_reason_error(status.get("fail_reason") or "unknown", publish_id)
            return None

        return poll_until(
            look,
            interval=self.status_poll_interval,
            deadline=time.monotonic() + self.status_poll_timeout,
            still_processing=lambda: TransientError(
                f"TikTok is still processing publish {publish_id} ({state})",
                code="tiktok_still_processing",
                details={"publish_id": publish_id, "status": state},
            ),
        )

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        handle = request.handle or {}
        token = request.account.access_token
        publish_id = handle.get("publish_id")
        if publish_id:
            status = self._fetch_status(token, publish_id)
            state = status.get("status")
            if state == "PUBLISH_COMPLETE":
                return ReconcileResult(ReconcileStatus.FOUND, _result(handle, status))
            if state == "FAILED":
                return ReconcileResult(
                    ReconcileStatus.NOT_FOUND,
                    reason=f"publish {publish_id} failed: {status.get('fail_reason')}",
                )
            return ReconcileResult(
                ReconcileStatus.NOT_FOUND,
                reason=f"publish {publish_id} is {state}; publishing again resumes it",
            )
        since = reconcile_since(handle.get("init_started_at"), CLOCK_SKEW).timestamp()
        no_bytes = "no publish_id was saved, so no bytes were uploaded and no post exists"
        try:
            found = self._find_in_video_list(token, request.text, since)
        except AuthRevokedError:  # the token lacks video.list: the FILE_UPLOAD argument stands
            return ReconcileResult(ReconcileStatus.NOT_FOUND, reason=no_bytes)
        if found is not None:
            return ReconcileResult(ReconcileStatus.FOUND, found)
        return ReconcileResult(ReconcileStatus.NOT_FOUND, reason=no_bytes)

    def _find_in_video_list(self, token: str, text: str, since: float) -> PublishResult | None:
        """The creator's newest public videos, matched by caption and creation time."""
        response = self._send(
            "POST",
            self.url("/v2/video/list/"),
            params={"fields": "id,title,video_description,create_time,share_url"},
            json={"max_count": VIDEO_LIST_MAX_COUNT},
            headers=_auth(token),
            timeout=API_TIMEOUT,
        )
        for video in _check(response).get("data", {}).get("videos", []):
            captions = {
                (video.get("title") or "").strip(),
                (video.get("video_description") or "").strip(),
            }
            if text.strip() in captions and int(video.get("create_time", 0)) >= since:
                return PublishResult(
                    platform_post_id=str(video["id"]),
                    url=video.get("share_url"),
                    details={"matched_by": "video_list"},
                )
        return None

    # /v2/video/query/ takes up to 20 video ids.
    metrics_batch_size = 20

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """Video Query (scope video.list); a post whose id is still its publish_id (not
        yet public) is not found and is left out."""
        response = self._send(
            "POST",
            self.url("/v2/video/query/"),
            params={"fields": "id,view_count,like_count,comment_count,share_count"},
            json={"filters": {"video_ids": post_ids}},
            headers=_auth(account.access_token),
            timeout=API_TIMEOUT,
        )
        found: dict[str, Metrics] = {}
        for video in (_check(response).get("data") or {}).get("videos") or []:
            found[str(video.get("id"))] = Metrics(
                views=count(video.get("view_count")),
                likes=count(video.get("like_count")),
                comments=count(video.get("comment_count")),
                shares=count(video.get("share_count")),
                raw=video,
            )
        return found

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        """User Info (scope user.info.stats)."""
        response = self._send(
            "GET",
            self.url("/v2/user/info/"),
            params={"fields": "follower_count,following_count,likes_count,video_count"},
            headers=_auth(account.access_token),
            timeout=API_TIMEOUT,
        )
        user = (_check(response).get("data") or {}).get("user") or {}
        return AccountMetrics(
            followers=count(user.get("follower_count")),
            following=count(user.get("following_count")),
            posts_count=count(user.get("video_count")),
            raw=user,
        )

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """POST /v2/oauth/token/; TikTok rotates refresh tokens, so keep the returned one."""
        refresh_token = self.stored_refresh_token(
            account, "no TikTok refresh token stored; reconnect the account"
        )
        client_key, client_secret = self.client_credentials()
        form = {
            "client_key": client_key,
            "client_secret": client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        }
        # TikTok may answer a refusal with HTTP 200 and an `error` in the body.
        return self.exchange_refresh_token_in_body(
            self.url("/v2/oauth/token/"),
            form,
            name="TikTok",
            failure=UNREACHABLE,
            timeout=API_TIMEOUT,
            refused=lambda _response, body: bool(body.get("error")),
        )

    def _fetch_status(self, token: str, publish_id: str) -> dict[str, Any]:
        return self._call(token, "/v2/post/publish/status/fetch/", {"publish_id": publish_id})

    def _call(self, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON API call and return its `data`, raising on any non-ok error code."""
        response = self._send(
            "POST", self.url(path), json=body, headers=_auth(token), timeout=API_TIMEOUT
        )
        return _check(response).get("data") or {}

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A TikTok request; the caller reads the answer (its errors differ by endpoint)."""
        return self.send(method, url, failure=UNREACHABLE, **kwargs)


def _post_info(
    request: PublishRequest, creator: dict[str, Any], video: MediaItem
) -> dict[str, Any]:
    """post_info from the API contract's settings, checked against what creator_info allows."""
    settings = request.settings
    privacy_level = settings.get("privacyLevel")
    if not privacy_level:
        raise PermanentError(
            "TikTok requires an explicit privacyLevel (its guidelines forbid a default)",
            code="tiktok_privacy_level_required",
        )
    options = creator.get("privacy_level_options") or []
    if privacy_level not in options:
        raise PermanentError(
            f"privacyLevel {privacy_level} is not offered for this creator; "
            f"allowed: {', '.join(options)}",
            code="tiktok_privacy_level_not_allowed",
        )
    max_seconds = creator.get("max_video_post_duration_sec")
    if max_seconds and video.duration_seconds and video.duration_seconds > max_seconds:
        raise PermanentError(
            f"the video lasts {video.duration_seconds:g} s; this creator may post "
            f"at most {max_seconds} s",
            code="tiktok_video_too_long",
        )
    post_info: dict[str, Any] = {"title": request.text, "privacy_level": privacy_level}
    for setting, switch, field, label in INTERACTIONS:
        disabled_by_creator = bool(creator.get(switch))
        if settings.get(setting) is True and disabled_by_creator:
            raise PermanentError(
                f"{setting} was requested but the creator has turned {label} off",
                code=f"tiktok_{label}_disabled_by_creator",
            )
        # Unset means the API contract's default (allowed) unless the creator turned it off.
        post_info[field] = not settings.get(setting, not disabled_by_creator)
    return post_info


def _result(handle: dict[str, Any], status: dict[str, Any]) -> PublishResult:
    publish_id = handle["publish_id"]
    post_ids = status.get("publicaly_available_post_id") or []
    if post_ids:
        post_id = str(post_ids[0])
        return PublishResult(
            platform_post_id=post_id,
            url=f"https://www.tiktok.com/@{handle.get('creator_username')}/video/{post_id}",
            details={"publish_id": publish_id},
        )
    return PublishResult(
        platform_post_id=publish_id,
        url=None,
        details={
            "publish_id": publish_id,
            "post_id_pending": True,
            "note": "TikTok returns the post id only after moderation and only for public "
            "posts; platform_post_id holds the publish_id",
        },
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=UTF-8"}


def _check(response: httpx.Response) -> dict[str, Any]:
    """The parsed body of a success; TikTok fails with a non-ok code even on HTTP 200."""
    body = json_body(response)
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = error.get("code")
    if response.is_success and code in (None, "ok"):
        return body
    raise _api_error(response.status_code, code, error.get("message") or "")


def _api_error(status: int, code: str | None, message: str) -> PlatformError:
    """TikTok's `error.code` decides, since it fails with HTTP 200 too: caps and lost
    scopes are its own signals; the rest read as the status the code stands for."""
    code = code or ("internal_error" if status >= 500 else f"http_{status}")
    text = f"TikTok {code} (HTTP {status}): {message}".rstrip(": ")
    stable = f"tiktok_{code}"
    rate_limited = code == "rate_limit_exceeded" or status == 429
    if code in CAP_CODES and not rate_limited:
        return QuotaExhaustedError(
            text,
            code=stable,
            http_status=status,
            retry_at=datetime.now(UTC) + POST_CAP_WINDOW,
            scope="app" if code == "reached_active_user_cap" else "account",
        )
    if code in RECONSENT_CODES and not rate_limited:
        return AuthRevokedError(text, code=stable, http_status=status)
    if rate_limited:
        meaning = 429
    elif code == "access_token_invalid":
        meaning = 401
    elif status >= 500 or code == "internal_error":
        meaning = 500
    else:
        meaning = 400  # any other code, whatever the status, is final
    return classify_status(
        meaning,
        text,
        ErrorCodes.single(stable),
        rate_limit_wait=RATE_LIMIT_WINDOW_SECONDS,
        http_status=status,
    )


def _fail_reason_error(reason: str, publish_id: str) -> PlatformError:
    """status FAILED comes with HTTP 200; fail_reason decides the class."""
    text = f"TikTok publish {publish_id} failed: {reason}"
    details = {"publish_id": publish_id, "fail_reason": reason}
    code = f"tiktok_{reason}"
    if reason in TRANSIENT_FAIL_REASONS:
        return TransientError(text, code=code, http_status=200, details=details)
    if reason == "auth_removed":
        return AuthRevokedError(text, code=code, http_status=200, details=details)
    if reason == "spam_risk_too_many_posts":
        return QuotaExhaustedError(
            text,
            code=code,
            http_status=200,
            retry_at=datetime.now(UTC) + POST_CAP_WINDOW,
            details=details,
        )
    return PermanentError(text, code=code, http_status=200, details=details)
