"""Pinterest API v5: image, multi-image and video Pins on a board, OAuth 2 with refresh.

Images are pulled by Pinterest from the media's signed public link (`image_url`,
`multiple_image_urls`). A video is registered (POST /v5/media), uploaded to the storage
URL the answer names with its form parameters, and processed (GET /v5/media/{id} until
`succeeded`) ahead of the instant; at the instant only POST /v5/pins is left.

Pinterest has no idempotency key and no duplicate-content signal, so the adapter saves
the board and the Pin's texts before POST /v5/pins; reconcile (and a resumed publish)
look for a Pin with those texts made on that board since the attempt began.
"""

from __future__ import annotations

import time
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

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
    ReconcileResult,
    ReconcileStatus,
    TokenSet,
    TransientError,
    count,
    json_body,
    resuming_prepared,
    sum_counts,
    token_set_from,
    working_handle,
)
from workers.adapters.kit import (
    ErrorCodes,
    classify_status,
    poll_until,
    reconcile_since,
    retry_after_seconds,
)

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
# How long one publish waits for Pinterest to process a video before trying again later.
MEDIA_PROCESSING_TIMEOUT_SECONDS = 300.0
POLL_INTERVAL_SECONDS = 5.0
# Standard access limits are per minute: the wait when a 429 names none.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 60.0
ERROR_CODES = ErrorCodes(
    rate_limited="pinterest_rate_limited",
    auth_expired="pinterest_unauthorized",
    server_error="pinterest_server_error",
    rejected="pinterest_invalid_request",
)
RECONCILE_CLOCK_SKEW = timedelta(minutes=2)
RECONCILE_PAGE_SIZE = 100
RECONCILE_MAX_PAGES = 5
# Without a cover image, the video's first frame is the Pin's cover.
DEFAULT_KEY_FRAME_SECONDS = 0.0
CAROUSEL_MIN = 2
# Pin analytics reach back at most 90 days from today, over a range of at most 90 days:
# a reading asks for that whole window, which for a younger Pin is its whole life.
ANALYTICS_DAYS = 89
PIN_METRICS = "IMPRESSION,SAVE,PIN_CLICK,OUTBOUND_CLICK,VIDEO_MRC_VIEW"
# Pinterest's code for a token without the scope a call needs (answered with HTTP 401).
INSUFFICIENT_SCOPE = 3


def permalink(pin_id: str) -> str:
    return f"https://www.pinterest.com/pin/{pin_id}/"


@register
class PinterestAdapter(Adapter):
    platform = "pinterest"
    hosts = {"api": "api.pinterest.com"}
    supports_refresh = True

    poll_interval = POLL_INTERVAL_SECONDS

    # -- publish ---------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        token = request.account.access_token
        handle = working_handle(request)
        prepared = resuming_prepared(request)
        board_id = _board_id(request)
        if handle.get("posted_at") and not prepared:
            # An earlier attempt may have made the Pin: adopt it rather than pin twice.
            found = self._find_pin(request, handle)
            if found is not None:
                return found

        source = self._media_source(request, handle, context)
        body = self._pin_body(request, board_id, source)
        handle.update(
            board_id=board_id,
            title=body.get("title"),
            description=body.get("description"),
            link=body.get("link"),
        )
        if prepared or not handle.get("posted_at"):
            handle["posted_at"] = datetime.now(UTC).isoformat()
        context.save_handle(handle)
        context.mark_irreversible()
        pin = self._create_pin(token, body)
        pin_id = str(pin["id"])
        return PublishResult(
            platform_post_id=pin_id,
            url=permalink(pin_id),
            details={"board_id": board_id, "media_id": handle.get("media_id")},
        )

    def _create_pin(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v5/pins: the one request that makes a Pin public."""
        return dict(self._call("POST", self.url("/v5/pins"), token, json=body).json())

    def _pin_body(
        self, request: PublishRequest, board_id: str, source: dict[str, Any]
    ) -> dict[str, Any]:
        settings = request.settings
        body: dict[str, Any] = {"board_id": board_id, "media_source": source}
        if request.text:
            body["description"] = request.text
        for name, key in (("title", "title"), ("link", "link"), ("altText", "alt_text")):
            if settings.get(name):
                body[key] = settings[name]
        return body

    # -- media -----------------------------------------------------------------------------

    def _media_source(
        self, request: PublishRequest, handle: dict[str, Any], context: PublishContext
    ) -> dict[str, Any]:
        images = [item for item in request.media if item.kind == "image"]
        videos = [item for item in request.media if item.kind == "video"]
        if videos:
            if len(request.media) != 1:
                raise PermanentError(
                    "a Pinterest Pin takes one video alone, or one to five images",
                    code="pinterest_media_mix",
                )
            media_id = self._staged_video(request.account.access_token, videos[0], handle, context)
            return {"source_type": "video_id", "media_id": media_id, **_cover(request)}
        if len(images) == 1:
            return {"source_type": "image_url", "url": images[0].public_url}
        if len(images) >= CAROUSEL_MIN:
            return {
                "source_type": "multiple_image_urls",
                "items": [{"url": item.public_url} for item in images],
            }
        raise PermanentError(
            "a Pinterest Pin needs an image or a video", code="pinterest_media_required"
        )

    def _staged_video(
        self, token: str, video: MediaItem, handle: dict[str, Any], context: PublishContext
    ) -> str:
        """The video's Pinterest media id, registered, uploaded and processed; a handle from
        an earlier attempt resumes where that attempt stopped."""
        media_id = handle.get("media_id")
        if media_id and handle.get("media_ready"):
            return str(media_id)
        if not media_id or not handle.get("media_uploaded"):
            registered = self._call(
                "POST", self.url("/v5/media"), token, json={"media_type": "video"}
            ).json()
            media_id = str(registered["media_id"])
            handle.update(media_id=media_id, media_uploaded=False, media_ready=False)
            context.save_handle(handle)
            self._upload(video, registered)
            handle["media_uploaded"] = True
            context.save_handle(handle)
        self._await_processing(token, str(media_id))
        handle["media_ready"] = True
        context.save_handle(handle)
        return str(media_id)

    def _upload(self, video: MediaItem, registered: dict[str, Any]) -> None:
        """A form POST to the storage URL: every upload parameter, then the file."""
        fields = {str(k): str(v) for k, v in (registered.get("upload_parameters") or {}).items()}
        with open(video.path, "rb") as source:
            self.send(
                "POST",
                str(registered["upload_url"]),
                failure="Pinterest video upload failed",
                classify=_classify_upload,
                data=fields,
                files={"file": (video.filename or "video.mp4", source, video.mime_type)},
                timeout=UPLOAD_TIMEOUT,
            )

    def _await_processing(self, token: str, media_id: str) -> None:
        def look() -> bool | None:
            status = self._call("GET", self.url(f"/v5/media/{media_id}"), token).json()
            if status.get("status") == "succeeded":
                return True
            if status.get("status") == "failed":
                raise PermanentError(
                    "Pinterest could not process the video", code="pinterest_media_failed"
                )
            return None

        poll_until(
            look,
            interval=lambda: self.poll_interval,
            deadline=time.monotonic() + MEDIA_PROCESSING_TIMEOUT_SECONDS,
            still_processing=lambda: TransientError(
                "Pinterest is still processing the video", code="pinterest_media_processing"
            ),
        )

    # -- reconcile -------------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        found = self._find_pin(request, request.handle or {})
        if found is None:
            return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching Pin on the board")
        return ReconcileResult(ReconcileStatus.FOUND, result=found)

    def _find_pin(self, request: PublishRequest, handle: dict[str, Any]) -> PublishResult | None:
        """The board's Pin made since the attempt began whose title, description and link
        are ours (newest first, a few pages back)."""
        board_id = handle.get("board_id") or _board_id(request)
        since = reconcile_since(
            handle.get("posted_at") or request.irreversible_started_at, RECONCILE_CLOCK_SKEW
        )
        wanted = (
            handle.get("title", request.settings.get("title")),
            handle.get("description", request.text or None),
            handle.get("link", request.settings.get("link")),
        )
        params: dict[str, Any] = {"page_size": RECONCILE_PAGE_SIZE}
        for _ in range(RECONCILE_MAX_PAGES):
            page = self._call(
                "GET",
                self.url(f"/v5/boards/{board_id}/pins"),
                request.account.access_token,
                params=params,
            ).json()
            for pin in page.get("items") or []:
                created = _created_at(pin)
                if created is not None and created < since:
                    return None
                texts = (
                    pin.get("title") or None,
                    pin.get("description") or None,
                    pin.get("link") or None,
                )
                if texts == tuple(value or None for value in wanted):
                    pin_id = str(pin["id"])
                    return PublishResult(
                        platform_post_id=pin_id,
                        url=permalink(pin_id),
                        details={"reconciled": True, "board_id": board_id},
                    )
            if not page.get("bookmark"):
                return None
            params["bookmark"] = page["bookmark"]
        return None

    # -- auth and HTTP -----------------------------------------------------------------------

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """POST /v5/oauth/token with the refresh grant; Pinterest answers a new refresh
        token (its continuous refresh), which replaces the stored one."""
        refresh_token = self.stored_refresh_token(
            account, "the Pinterest account has no refresh token; reconnect it"
        )
        client_id, client_secret = self.client_credentials()
        headers = {}
        if client_id:
            basic = b64encode(f"{client_id}:{client_secret or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        response = self.send(
            "POST",
            self.url("/v5/oauth/token"),
            failure="Pinterest token refresh failed",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            headers=headers,
            timeout=TIMEOUT,
        )
        if response.status_code in (400, 401):
            raise AuthRevokedError(
                f"Pinterest refused the refresh token: {json_body(response).get('message')}",
                code="pinterest_refresh_refused",
                http_status=response.status_code,
            )
        if response.status_code >= 300:
            raise classify(response)
        return token_set_from(response.json())

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        self._call("DELETE", self.url(f"/v5/pins/{platform_post_id}"), account.access_token)

    # -- analytics (scopes pins:read, user_accounts:read) -----------------------------------

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """GET /v5/pins/{id}/analytics, one Pin a call: the summary of the last 90 days,
        the most the API reads back. A Pin gone from Pinterest (404) is left out."""
        today = datetime.now(UTC).date()
        params = {
            "start_date": (today - timedelta(days=ANALYTICS_DAYS)).isoformat(),
            "end_date": today.isoformat(),
            "metric_types": PIN_METRICS,
        }
        found: dict[str, Metrics] = {}
        for pin_id in post_ids:
            try:
                response = self._call(
                    "GET",
                    self.url(f"/v5/pins/{pin_id}/analytics"),
                    account.access_token,
                    params=params,
                )
            except PermanentError as error:
                if error.http_status == 404:
                    continue
                raise
            body = json_body(response)
            # Keyed by app type: "all" without a split.
            block = body.get("all") or next(iter(body.values()), {})
            summary = dict(block.get("summary_metrics") or {}) if isinstance(block, dict) else {}
            found[pin_id] = Metrics(
                views=count(summary.get("VIDEO_MRC_VIEW")),
                impressions=count(summary.get("IMPRESSION")),
                clicks=sum_counts(summary.get("PIN_CLICK"), summary.get("OUTBOUND_CLICK")),
                saves=count(summary.get("SAVE")),
                raw=summary,
            )
        return found

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        body = json_body(self._call("GET", self.url("/v5/user_account"), account.access_token))
        return AccountMetrics(
            followers=count(body.get("follower_count")),
            following=count(body.get("following_count")),
            posts_count=count(body.get("pin_count")),
            raw={
                k: body[k] for k in ("follower_count", "following_count", "pin_count") if k in body
            },
        )

    def _call(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return self.send(
            method,
            url,
            failure="Pinterest request failed",
            classify=classify,
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )


def _board_id(request: PublishRequest) -> str:
    board_id = str(request.settings.get("boardId") or "")
    if not board_id:
        raise PermanentError(
            "a Pinterest Pin needs a board: set platform_content.pinterest.settings.boardId",
            code="pinterest_board_required",
        )
    return board_id


def _cover(request: PublishRequest) -> dict[str, Any]:
    """The video Pin's cover: the coverImageUrl setting, the post's cover photo, or a key
    frame (coverKeyFrameTime, else the first frame)."""
    url = request.settings.get("coverImageUrl") or (
        request.cover.public_url if request.cover else None
    )
    if url:
        return {"cover_image_url": url}
    frame = request.settings.get("coverKeyFrameTime")
    return {
        "cover_image_key_frame_time": float(
            frame if frame is not None else DEFAULT_KEY_FRAME_SECONDS
        )
    }


def _created_at(pin: dict[str, Any]) -> datetime | None:
    raw = pin.get("created_at")
    if not raw:
        return None
    moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _classify_upload(response: httpx.Response) -> PlatformError:
    """The storage host's answer to the form upload (XML, not Pinterest's JSON)."""
    status = response.status_code
    message = f"the video upload answered HTTP {status}"
    if status >= 500:
        return TransientError(message, code="pinterest_upload_failed", http_status=status)
    return PermanentError(message, code="pinterest_upload_refused", http_status=status)


def classify(response: httpx.Response) -> PlatformError:
    """Pinterest's `{code, message}` errors. A revoked and an expired token are both a 401:
    the refresh decides."""
    status = response.status_code
    body = json_body(response)
    message = str(body.get("message") or response.reason_phrase)
    details = {"pinterest_code": body["code"]} if "code" in body else None
    if status == 404 and "board" in message.lower():
        return PermanentError(
            message, code="pinterest_board_not_found", http_status=status, details=details
        )
    if status == 403:
        return PermanentError(
            message, code="pinterest_forbidden", http_status=status, details=details
        )
    if status == 401 and body.get("code") == INSUFFICIENT_SCOPE:
        # The grant lacks a scope: a new token would not have it either.
        return PermanentError(
            message, code="pinterest_insufficient_scope", http_status=status, details=details
        )
    wait = DEFAULT_RATE_LIMIT_WAIT_SECONDS
    if status == 429:
        wait = retry_after_seconds(response.headers, _reset_seconds(response.headers))
    return classify_status(status, message, ERROR_CODES, rate_limit_wait=wait, details=details)


def _reset_seconds(headers: httpx.Headers) -> float:
    """The wait `x-ratelimit-reset` names: seconds until the window resets (an epoch
    instant is read as one), else the per-minute default."""
    value = headers.get("x-ratelimit-reset", "")
    if not value.isdigit():
        return DEFAULT_RATE_LIMIT_WAIT_SECONDS
    seconds = float(value)
    if seconds > 1_000_000_000:  # an epoch second
        return max(0.0, seconds - time.time())
    return seconds
