"""YouTube Data API v3 videos.insert by the resumable upload protocol (docs/platforms.md).

POST the video resource to open an upload session (its Location is the session URI) → save
the URI → PUT the bytes. YouTube has no idempotency key and a second insert of the same
file makes a second video, so every later attempt resumes the saved session: it asks how
many bytes arrived (`Content-Range: bytes */N`) and sends the rest.

The video is uploaded `private` (nothing public: this runs ahead of the instant when the
target is prepared) and its id saved; the irreversible call is then `videos.update`
setting `status.privacyStatus` to the requested one (public by default). That update is
idempotent, so a retry after a lost answer simply sends it again. A handle saved before
this split (a session opened with the requested privacy, no `upload_privacy`) resumes the
old way: its upload itself publishes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from workers.adapters import register
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    Adapter,
    AuthRevokedError,
    FollowUp,
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
    working_handle,
)
from workers.adapters.comments import begin_comment, found_comment
from workers.adapters.kit import ErrorCodes, classify_status, reconcile_since, stream_file

API_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
UPLOAD_PATH = "/upload/youtube/v3/videos"
API_PATH = "/youtube/v3"
# The prefix of a network error's message (the exception class and text follow).
UNREACHABLE = "YouTube unreachable"

# Quota buckets reset at midnight Pacific Time.
QUOTA_TIMEZONE = ZoneInfo("America/Los_Angeles")
# uploadLimitExceeded is the channel's own 24 h upload count.
CHANNEL_UPLOAD_WINDOW = timedelta(hours=24)
# rateLimitExceeded carries no hint; Google's request quotas are per minute.
RATE_LIMIT_WAIT_SECONDS = 60.0
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "tooManyRequests"})
# The token lacks the scope: only a new consent helps.
RECONSENT_REASONS = frozenset({"insufficientPermissions"})
MAX_UPLOAD_ROUNDS = 3  # PUTs answered 308 within one attempt before leaving it to the next
CLOCK_SKEW = timedelta(minutes=5)
PLAYLIST_PAGE_SIZE = 50
PRIVACY_STATUSES = ("public", "private", "unlisted")
DEFAULT_PRIVACY = "public"
# The privacy a video is uploaded with while it is prepared: nobody but the owner sees it.
STAGED_PRIVACY = "private"


@dataclass(frozen=True)
class UploadSession:
    """What a resumable session holds: the video once complete, else the bytes received."""

    received: int
    video: dict[str, Any] | None = None


@register
class YouTubeAdapter(Adapter):
    platform = "youtube"
    hosts = {
        "upload": "www.googleapis.com",
        "api": "www.googleapis.com",
        "oauth": "oauth2.googleapis.com",
    }
    supports_refresh = True
    network_error_names_class = True

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        video = _single_video(request)
        privacy = _requested_privacy(request)
        token = request.account.access_token
        handle = working_handle(request)
        if handle.get("video_id"):
            # Uploaded (private) by the prepare or an earlier attempt: only the privacy is left.
            return self._make_visible(handle, privacy, token, context)
        session_uri = handle.get("session_uri")
        offset = 0
        if session_uri:
            session = self._query_session(session_uri, video.size_bytes, token)
            if session is not None and session.video is not None:
                if not _staged(handle):
                    return _result(session.video)  # a pre-split session: its upload published
                handle["video_id"] = session.video["id"]
                context.save_handle(handle)
                return self._make_visible(handle, privacy, token, context)
            if session is None:
                session_uri = None  # expired before completing: no video came of it
            else:
                offset = session.received
        if not session_uri:
            session_uri = self._open_session(request, video, token)
            handle = {
                "session_uri": session_uri,
                "started_at": time.time(),
                "title": request.settings.get("title", ""),
                "video_size": video.size_bytes,
                "upload_privacy": STAGED_PRIVACY,
            }
            context.save_handle(handle)
        if not _staged(handle):
            # A session opened before the split carries the requested privacy: the last
            # bytes publish, so they are the irreversible request.
            context.mark_irreversible()
            return _result(self._send_bytes(session_uri, video, offset, token))
        uploaded = self._send_bytes(session_uri, video, offset, token)
        handle["video_id"] = uploaded["id"]
        context.save_handle(handle)
        return self._make_visible(handle, privacy, token, context)

    def _make_visible(
        self, handle: dict[str, Any], privacy: str, token: str, context: PublishContext
    ) -> PublishResult:
        """videos.update(part=status): the request that makes the uploaded video public
        (or unlisted). Setting a privacy it already has changes nothing, so sending it
        again after a lost answer is safe."""
        context.save_handle(handle)
        context.mark_irreversible()
        response = self._send(
            "PUT",
            self.url(API_PATH + "/videos"),
            params={"part": "status"},
            json={"id": handle["video_id"], "status": {"privacyStatus": privacy}},
            headers={**_auth(token), "Content-Type": "application/json; charset=UTF-8"},
            timeout=API_TIMEOUT,
        )
        if response.status_code != 200:
            raise _error(response)
        return _result(response.json())

    def _open_session(self, request: PublishRequest, video: MediaItem, token: str) -> str:
        snippet: dict[str, Any] = {
            "title": request.settings.get("title", ""),
            "description": request.text,
        }
        if request.settings.get("tags"):
            snippet["tags"] = list(request.settings["tags"])
        response = self._send(
            "POST",
            self.url(UPLOAD_PATH, host="upload"),
            params={"uploadType": "resumable", "part": "snippet,status"},
            json={"snippet": snippet, "status": {"privacyStatus": STAGED_PRIVACY}},
            headers={
                **_auth(token),
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Length": str(video.size_bytes),
                "X-Upload-Content-Type": video.mime_type,
            },
            timeout=API_TIMEOUT,
        )
        if response.status_code != 200:
            raise _error(response)
        location = response.headers.get("Location")
        if not location:
            raise TransientError(
                "YouTube opened no upload session (no Location header)",
                code="youtube_no_session_uri",
                http_status=response.status_code,
            )
        return location

    def _send_bytes(
        self, session_uri: str, video: MediaItem, offset: int, token: str
    ) -> dict[str, Any]:
        """PUT the bytes from `offset`; the video resource once the upload is complete."""
        size = video.size_bytes
        for _ in range(MAX_UPLOAD_ROUNDS):
            response = self._send(
                "PUT",
                session_uri,
                content=stream_file(video.path, offset),
                headers={
                    **_auth(token),
                    "Content-Type": video.mime_type,
                    "Content-Length": str(size - offset),
                    "Content-Range": f"bytes {offset}-{size - 1}/{size}",
                },
                timeout=UPLOAD_TIMEOUT,
                follow_redirects=False,
            )
            if response.status_code in (200, 201):
                return dict(response.json())
            if response.status_code != 308:
                raise _error(response)
            offset = _received_bytes(response)
        raise TransientError(
            f"YouTube still holds only {offset} of {size} bytes; the next attempt resumes",
            code="youtube_upload_incomplete",
            http_status=308,
        )

    def _query_session(self, session_uri: str, size: int, token: str) -> UploadSession | None:
        """Ask a session how far it got; None when it no longer exists (404/410)."""
        response = self._send(
            "PUT",
            session_uri,
            headers={**_auth(token), "Content-Length": "0", "Content-Range": f"bytes */{size}"},
            timeout=API_TIMEOUT,
            follow_redirects=False,
        )
        if response.status_code in (200, 201):
            return UploadSession(received=size, video=response.json())
        if response.status_code == 308:
            return UploadSession(received=_received_bytes(response))
        if response.status_code in (404, 410):
            return None
        raise _error(response)

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        handle = request.handle or {}
        token = request.account.access_token
        privacy = _requested_privacy(request)
        video_id = handle.get("video_id")
        session_uri = handle.get("session_uri")
        if not video_id and session_uri:
            size = handle.get("video_size") or _single_video(request).size_bytes
            session = self._query_session(session_uri, size, token)
            if session is not None and session.video is not None:
                if not _staged(handle):
                    return ReconcileResult(ReconcileStatus.FOUND, _result(session.video))
                video_id = session.video["id"]
            elif session is not None:
                return ReconcileResult(
                    ReconcileStatus.NOT_FOUND,
                    reason=f"the upload holds {session.received} of {size} bytes; "
                    "publishing again resumes the session",
                )
        if video_id:
            return self._reconcile_video(token, str(video_id), privacy)
        since = reconcile_since(handle.get("started_at"), CLOCK_SKEW)
        try:
            found = self._find_in_uploads(token, request, since, privacy)
        except AuthRevokedError:  # a youtube.upload-only token may not read the channel
            if session_uri:
                return ReconcileResult(
                    ReconcileStatus.UNKNOWN,
                    reason="the upload session expired and the token may not list uploads",
                )
            return ReconcileResult(
                ReconcileStatus.NOT_FOUND, reason="no upload session was saved: no bytes were sent"
            )
        if found is not None:
            return ReconcileResult(ReconcileStatus.FOUND, found)
        return ReconcileResult(
            ReconcileStatus.NOT_FOUND, reason="no matching video among the channel's uploads"
        )

    def discard_prepared(self, account: AccountCredentials, handle: dict[str, Any]) -> int:
        """videos.delete of the staged upload, only while it is still private."""
        video_id = handle.get("video_id")
        if not video_id or not _staged(handle):
            return 0
        token = account.access_token
        items = self._get(token, "/videos", {"part": "status", "id": video_id}).get("items") or []
        if not items or (items[0].get("status") or {}).get("privacyStatus") != STAGED_PRIVACY:
            return 0  # gone already, or made visible: not ours to delete any more
        response = self._send(
            "DELETE",
            self.url(API_PATH + "/videos"),
            params={"id": video_id},
            headers=_auth(token),
            timeout=API_TIMEOUT,
        )
        if response.status_code == 404:
            return 0
        if response.status_code != 204:
            raise _error(response)
        return 1

    def _reconcile_video(self, token: str, video_id: str, privacy: str) -> ReconcileResult:
        """An uploaded video is the post once it has the requested privacy (a private
        video stays staged until videos.update makes it public or unlisted)."""
        try:
            body = self._get(token, "/videos", {"part": "status", "id": video_id})
        except AuthRevokedError:
            return ReconcileResult(
                ReconcileStatus.UNKNOWN, reason="the token may not read the uploaded video"
            )
        items = body.get("items") or []
        if not items:
            return ReconcileResult(
                ReconcileStatus.NOT_FOUND, reason=f"video {video_id} is no longer on YouTube"
            )
        current = (items[0].get("status") or {}).get("privacyStatus")
        if current == privacy or (current != STAGED_PRIVACY and privacy != STAGED_PRIVACY):
            return ReconcileResult(ReconcileStatus.FOUND, _result(items[0]))
        return ReconcileResult(
            ReconcileStatus.NOT_FOUND,
            reason=f"video {video_id} is still {current}; publishing again sets it {privacy}",
        )

    def _find_in_uploads(
        self, token: str, request: PublishRequest, since: datetime, privacy: str
    ) -> PublishResult | None:
        """channels?mine=true → the uploads playlist → its newest items, matched by
        title, description, time and privacy (1 quota unit each, unlike search's
        100-a-day bucket). A video still private while another privacy was asked for is
        staged, not published."""
        channels = self._get(token, "/channels", {"part": "contentDetails", "mine": "true"})
        items = channels.get("items") or []
        if not items:
            return None
        uploads = items[0]["contentDetails"]["relatedPlaylists"]["uploads"]
        playlist = self._get(
            token,
            "/playlistItems",
            {"part": "snippet,status", "playlistId": uploads, "maxResults": PLAYLIST_PAGE_SIZE},
        )
        title = request.settings.get("title", "")
        for item in playlist.get("items") or []:
            snippet = item.get("snippet") or {}
            published = datetime.fromisoformat(snippet.get("publishedAt", "1970-01-01T00:00:00Z"))
            listed_privacy = (item.get("status") or {}).get("privacyStatus")
            if (
                snippet.get("title") == title
                and (snippet.get("description") or "").strip() == request.text.strip()
                and published >= since
                and (listed_privacy != STAGED_PRIVACY or privacy == STAGED_PRIVACY)
            ):
                video_id = snippet["resourceId"]["videoId"]
                return PublishResult(
                    platform_post_id=video_id,
                    url=_watch_url(video_id),
                    details={"matched_by": "uploads_playlist"},
                )
        return None

    # videos.list takes up to 50 ids.
    metrics_batch_size = 50

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """videos.list part=statistics (1 quota unit for the whole batch)."""
        body = self._get(
            account.access_token, "/videos", {"part": "statistics", "id": ",".join(post_ids)}
        )
        found: dict[str, Metrics] = {}
        for item in body.get("items") or []:
            figures = item.get("statistics") or {}
            found[str(item.get("id"))] = Metrics(
                views=count(figures.get("viewCount")),
                likes=count(figures.get("likeCount")),
                comments=count(figures.get("commentCount")),
                raw=figures,
            )
        return found

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        body = self._get(account.access_token, "/channels", {"part": "statistics", "mine": "true"})
        items = body.get("items") or []
        if not items:
            return None
        figures = items[0].get("statistics") or {}
        hidden = bool(figures.get("hiddenSubscriberCount"))
        return AccountMetrics(
            followers=None if hidden else count(figures.get("subscriberCount")),
            posts_count=count(figures.get("videoCount")),
            raw=figures,
        )

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """POST oauth2.googleapis.com/token; Google keeps the refresh token (no rotation)."""
        refresh_token = self.stored_refresh_token(
            account, "no Google refresh token stored; reconnect the channel"
        )
        client_id, client_secret = self.client_credentials()
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        # Google refuses with a 4xx status; its camelCase error names become snake_case codes.
        return self.exchange_refresh_token_in_body(
            self.url("/token", host="oauth"),
            form,
            name="Google",
            failure=UNREACHABLE,
            timeout=API_TIMEOUT,
            refused=lambda response, _body: response.status_code != 200,
            error_code=_snake,
        )

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        response = self._send(
            "DELETE",
            self.url(API_PATH + "/videos"),
            params={"id": platform_post_id},
            headers=_auth(account.access_token),
            timeout=API_TIMEOUT,
        )
        if response.status_code not in (200, 204):
            raise _error(response)

    # -- a first comment: commentThreads.insert ---------------------------------------------

    def publish_comment(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        video_id = parent.platform_post_id
        snippet = {"videoId": video_id, "topLevelComment": {"snippet": {"textOriginal": item.text}}}
        begin_comment(context)
        response = self._send(
            "POST",
            self.url(API_PATH + "/commentThreads"),
            params={"part": "snippet"},
            json={"snippet": snippet},
            headers=_auth(request.account.access_token),
            timeout=API_TIMEOUT,
        )
        if response.status_code != 200:
            raise _error(response)
        return _comment_result(str(json_body(response)["id"]), video_id)

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        video_id = parent.platform_post_id
        body = self._get(
            request.account.access_token,
            "/commentThreads",
            {"part": "snippet", "videoId": video_id, "order": "time", "maxResults": 100},
        )
        listed = []
        for thread in body.get("items") or []:
            comment = ((thread.get("snippet") or {}).get("topLevelComment") or {}).get("snippet")
            if not isinstance(comment, dict) or not thread.get("id"):
                continue
            published = comment.get("publishedAt")
            created = (
                datetime.fromisoformat(published.replace("Z", "+00:00")).timestamp()
                if isinstance(published, str)
                else None
            )
            listed.append((str(thread["id"]), str(comment.get("textOriginal") or ""), created))
        return found_comment(item, listed, lambda thread_id: _comment_result(thread_id, video_id))

    def _get(self, token: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self._send(
            "GET",
            self.url(API_PATH + path),
            params=params,
            headers=_auth(token),
            timeout=API_TIMEOUT,
        )
        if response.status_code != 200:
            raise _error(response)
        return json_body(response)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A YouTube request; the caller reads the answer (its errors differ by endpoint)."""
        return self.send(method, url, failure=UNREACHABLE, **kwargs)


def next_quota_reset(now: datetime | None = None) -> datetime:
    """The next midnight in America/Los_Angeles, in UTC (DST-aware)."""
    local = (now or datetime.now(UTC)).astimezone(QUOTA_TIMEZONE)
    midnight = datetime.combine(local.date() + timedelta(days=1), clock(0), QUOTA_TIMEZONE)
    return midnight.astimezone(UTC)


def _single_video(request: PublishRequest) -> MediaItem:
    return single_video(request, "YouTube needs exactly one video", "youtube_video_required")


def _requested_privacy(request: PublishRequest) -> str:
    """The privacy the post asks for; checked before any call, since the upload is always
    private and YouTube would only refuse a bad value at the irreversible call."""
    privacy = request.settings.get("privacyStatus") or DEFAULT_PRIVACY
    if privacy not in PRIVACY_STATUSES:
        raise PermanentError(
            f"YouTube privacyStatus must be one of {', '.join(PRIVACY_STATUSES)}, not {privacy!r}",
            code="youtube_invalid_video_metadata",
        )
    return str(privacy)


def _staged(handle: dict[str, Any]) -> bool:
    """Whether the handle's upload session was opened private, to be made visible later."""
    return handle.get("upload_privacy") == STAGED_PRIVACY


def _result(video: dict[str, Any]) -> PublishResult:
    status = video.get("status") or {}
    return PublishResult(
        platform_post_id=video["id"],
        url=_watch_url(video["id"]),
        details={
            "upload_status": status.get("uploadStatus"),
            "privacy_status": status.get("privacyStatus"),
        },
    )


def _comment_result(thread_id: str, video_id: str) -> PublishResult:
    """A top-level comment's link: the video's, naming the comment (`lc`)."""
    return PublishResult(
        thread_id, f"{_watch_url(video_id)}&lc={thread_id}", {"reply_to": video_id}
    )


def _watch_url(video_id: str) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _received_bytes(response: httpx.Response) -> int:
    """A 308's `Range: bytes=0-N` means N+1 bytes arrived; no Range means none did."""
    match = re.fullmatch(r"bytes=0-(\d+)", response.headers.get("Range", ""))
    return int(match.group(1)) + 1 if match else 0


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _error(response: httpx.Response) -> PlatformError:
    """Classify by status and the first `error.errors[].reason` (YouTube's error table)."""
    status = response.status_code
    error = json_body(response).get("error")
    error = error if isinstance(error, dict) else {}
    reasons = [e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)]
    reason = next((r for r in reasons if r), None) or f"http_{status}"
    message = f"YouTube {reason} (HTTP {status}): {error.get('message') or response.reason_phrase}"
    code = f"youtube_{_snake(reason)}"
    if reason == "quotaExceeded":
        # The project's videos.insert bucket: every channel waits for PT midnight.
        return QuotaExhaustedError(
            message, code=code, http_status=status, retry_at=next_quota_reset(), scope="app"
        )
    if reason == "uploadLimitExceeded":
        return QuotaExhaustedError(
            message,
            code=code,
            http_status=status,
            retry_at=datetime.now(UTC) + CHANNEL_UPLOAD_WINDOW,
        )
    # Google answers some rate limits with 403; a 401 for an account without a channel
    # is final, since no token fixes it.
    rate_limited = status == 429 or reason in RATE_LIMIT_REASONS
    expired = status == 401 and reason != "youtubeSignupRequired"
    if reason in RECONSENT_REASONS and not (rate_limited or expired):
        return AuthRevokedError(message, code=code, http_status=status)
    meaning = 429 if rate_limited else 401 if expired else 403 if status == 401 else status
    return classify_status(
        meaning,
        message,
        ErrorCodes.single(code),
        rate_limit_wait=RATE_LIMIT_WAIT_SECONDS,
        http_status=status,
    )
