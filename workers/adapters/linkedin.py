"""LinkedIn Posts API (versioned /rest): image and video upload, POST /rest/posts, reconcile.

LinkedIn has no idempotency key. Before POST /rest/posts the adapter saves the author, the
uploaded media URNs and the commentary's fingerprint; reconcile reads the author's recent
posts (GET /rest/posts?q=author), and a resumed publish adopts the post LinkedIn names in
its 422 "Content is a duplicate of urn:…" answer.

Rate limits: LinkedIn documents only daily limits (application and member), reset at
midnight UTC, answered with a bare 429 and no headers. A 429 carrying LinkedIn's throttle
body therefore means "the day's quota is spent": retrying before midnight UTC would only
spend more of it, so it is a QuotaExhaustedError until then. A 429 without that body (the
infrastructure protection the docs also mention) is a short RateLimitedError.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from workers.adapters import register
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    Adapter,
    AuthRevokedError,
    DuplicateError,
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
    resuming_prepared,
    working_handle,
)
from workers.adapters.comments import COMMENT_PAGE_SIZE, begin_comment, found_comment
from workers.adapters.kit import (
    ErrorCodes,
    classify_status,
    file_parts,
    poll_until,
    reconcile_since,
    retry_after_seconds,
)

RESTLI_PROTOCOL_VERSION = "2.0.0"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
VIDEO_POLL_SECONDS = 5.0
VIDEO_PROCESSING_TIMEOUT_SECONDS = 600.0
# The wait after a 429 that is not LinkedIn's daily throttle and names no Retry-After.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 60
RECONCILE_CLOCK_SKEW = timedelta(minutes=2)
RECONCILE_PAGE_SIZE = 50
ERROR_CODES = ErrorCodes(
    rate_limited="linkedin_rate_limited",
    auth_expired="linkedin_token_expired",
    server_error="linkedin_server_error",
    rejected="linkedin_access_denied",
)
# The API contract's visibility names to the Posts API's.
VISIBILITY = {"PUBLIC": "PUBLIC", "CONNECTIONS": "CONNECTIONS", "LOGGED_IN_MEMBERS": "LOGGED_IN"}
AUTHOR_URN_PREFIXES = ("urn:li:person:", "urn:li:organization:")

# "little" text: these characters are markup and must be backslash-escaped to show as
# typed; unescaped, LinkedIn cuts the post at the first one. Links are left whole so they
# still turn into links, and #hashtags so they stay hashtags (a little HashtagElement).
_LITTLE_TOKEN_RE = re.compile(r"(https?://[^\s()<>\[\]{}|\\]+)|(#\w+)|([\\|{}@\[\]()<>#*_~])")
_DUPLICATE_URN_RE = re.compile(r"urn:li:(?:share|ugcPost):\d+")


def escape_little_text(text: str) -> str:
    """Plain text to LinkedIn's little format: reserved characters backslash-escaped."""
    return _LITTLE_TOKEN_RE.sub(
        lambda m: m.group(0) if m.group(3) is None else "\\" + m.group(3), text
    )


def author_urn(account: AccountCredentials) -> str:
    """The post author: a person or organization URN; a bare id is a member (person)."""
    external_id = (account.external_id or "").strip()
    if external_id.startswith(AUTHOR_URN_PREFIXES):
        return external_id
    if not external_id or external_id.startswith("urn:"):
        raise PermanentError(
            "the LinkedIn account needs an external id: urn:li:person:… or "
            f"urn:li:organization:… (got {external_id!r})",
            code="linkedin_config_invalid_author",
        )
    return f"urn:li:person:{external_id}"


def permalink(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"


def next_utc_midnight(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@register
class LinkedInAdapter(Adapter):
    platform = "linkedin"
    hosts = {"api": "api.linkedin.com", "oauth": "www.linkedin.com"}
    supports_refresh = True

    video_poll_seconds = VIDEO_POLL_SECONDS

    # -- publish ---------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        token = request.account.access_token
        author = author_urn(request.account)
        commentary = escape_little_text(request.text)
        handle = working_handle(request)
        prepared = resuming_prepared(request)
        # Only an attempt that may have sent the post is looked for (a prepare sent none).
        resumed = bool(handle.get("posted_at")) and not prepared

        if resumed:
            found = self._find_post(request, handle, author)
            if found is not None:
                return found

        media_urns = handle.get("media_urns")
        if media_urns is None:
            media_urns = [self._upload(token, author, item) for item in request.media]
            handle["media_urns"] = media_urns
            context.save_handle(handle)
        if not handle.get("media_ready"):  # AVAILABLE stays so: no poll at the instant
            for urn in media_urns:
                if urn.startswith("urn:li:video:"):
                    self._await_video(token, urn)
            handle["media_ready"] = True

        visibility = request.settings.get("visibility", "PUBLIC")
        body: dict[str, Any] = {
            "author": author,
            "commentary": commentary,
            "visibility": VISIBILITY.get(visibility, visibility),
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if len(media_urns) == 1:
            body["content"] = {"media": {"id": media_urns[0]}}
        elif media_urns:
            body["content"] = {"multiImage": {"images": [{"id": urn} for urn in media_urns]}}

        handle.update(author=author, commentary_sha256=_sha256(commentary))
        if prepared or not handle.get("posted_at"):
            handle["posted_at"] = datetime.now(UTC).isoformat()
        context.save_handle(handle)
        context.mark_irreversible()
        try:
            response = self._call("POST", self.url("/rest/posts"), token, json=body)
        except DuplicateError as exc:
            # After an attempt whose outcome we never heard, the duplicate is our own post.
            existing = exc.details.get("existing_urn")
            if resumed and existing:
                return PublishResult(existing, permalink(existing), {"adopted_duplicate": True})
            raise
        urn = response.headers["x-restli-id"]
        return PublishResult(urn, permalink(urn), {"media_urns": media_urns})

    # -- media -----------------------------------------------------------------------------

    def _upload(self, token: str, author: str, item: MediaItem) -> str:
        if item.kind == "image":
            value = self._call(
                "POST",
                self.url("/rest/images"),
                token,
                params={"action": "initializeUpload"},
                json={"initializeUploadRequest": {"owner": author}},
            ).json()["value"]
            self._put(
                value["uploadUrl"],
                item.read_bytes(),
                {"Authorization": f"Bearer {token}", "Content-Type": item.mime_type},
            )
            return value["image"]

        value = self._call(
            "POST",
            self.url("/rest/videos"),
            token,
            params={"action": "initializeUpload"},
            json={
                "initializeUploadRequest": {
                    "owner": author,
                    "fileSizeBytes": item.size_bytes,
                    "uploadCaptions": False,
                    "uploadThumbnail": False,
                }
            },
        ).json()["value"]
        parts = value["uploadInstructions"]
        ranges = [(int(part["firstByte"]), int(part["lastByte"])) for part in parts]
        etags = [
            self._put(
                part["uploadUrl"], content, {"Content-Type": "application/octet-stream"}
            ).headers.get("etag", "")
            for part, (_, _, content) in zip(parts, file_parts(item.path, ranges), strict=True)
        ]
        self._call(
            "POST",
            self.url("/rest/videos"),
            token,
            params={"action": "finalizeUpload"},
            json={
                "finalizeUploadRequest": {
                    "video": value["video"],
                    "uploadToken": value.get("uploadToken", ""),
                    "uploadedPartIds": etags,
                }
            },
        )
        return value["video"]

    def _await_video(self, token: str, urn: str) -> None:
        """A post may only use a video LinkedIn has finished processing (AVAILABLE)."""
        status = ""

        def look() -> bool | None:
            nonlocal status
            video = self._call("GET", self.url(f"/rest/videos/{quote(urn, safe='')}"), token).json()
            status = video.get("status")
            if status == "PROCESSING_FAILED":
                raise PermanentError(
                    f"LinkedIn could not process the video: {video.get('processingFailureReason')}",
                    code="linkedin_media_processing_failed",
                )
            return True if status == "AVAILABLE" else None

        poll_until(
            look,
            interval=self.video_poll_seconds,
            deadline=time.monotonic() + VIDEO_PROCESSING_TIMEOUT_SECONDS,
            still_processing=lambda: TransientError(
                f"LinkedIn is still processing the video ({status})",
                code="linkedin_media_processing_timeout",
            ),
        )

    def _put(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        """PUT bytes to an upload URL LinkedIn handed out (used as given)."""
        return self.send(
            "PUT",
            url,
            failure="LinkedIn upload failed",
            classify=classify,
            content=content,
            headers=headers,
            timeout=UPLOAD_TIMEOUT,
        )

    # -- reconcile -------------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        handle = request.handle or {}
        author = handle.get("author") or author_urn(request.account)
        try:
            found = self._find_post(request, handle, author, strict=True)
        except PermanentError as exc:
            if exc.http_status != 403:
                raise
            return ReconcileResult(
                ReconcileStatus.UNKNOWN,
                reason="reading posts needs r_member_social / r_organization_social: "
                + exc.message,
            )
        if found is None:
            return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching recent post")
        return ReconcileResult(ReconcileStatus.FOUND, result=found)

    def _find_post(
        self,
        request: PublishRequest,
        handle: dict[str, Any],
        author: str,
        strict: bool = False,
    ) -> PublishResult | None:
        """The author's recent post whose commentary is ours, created since the attempt.

        Without read permission (403) a resumed publish goes on (LinkedIn's duplicate check
        still names an existing post); reconcile (`strict`) lets the 403 through.
        """
        since = reconcile_since(handle.get("posted_at"), RECONCILE_CLOCK_SKEW)
        url = (
            self.url("/rest/posts")
            + f"?author={quote(author, safe='')}&q=author&count={RECONCILE_PAGE_SIZE}"
            + "&sortBy=CREATED"
        )
        try:
            response = self._call("GET", url, request.account.access_token)
        except PermanentError as exc:
            if strict or exc.http_status != 403:
                raise
            return None
        fingerprint = handle.get("commentary_sha256") or _sha256(escape_little_text(request.text))
        since_ms = since.timestamp() * 1000
        for post in response.json().get("elements") or []:
            if _sha256(post.get("commentary", "")) != fingerprint:
                continue
            if float(post.get("createdAt") or 0) < since_ms:
                continue
            urn = post["id"]
            return PublishResult(urn, permalink(urn), {"reconciled": True})
        return None

    # -- auth ------------------------------------------------------------------------------

    # A batch get of socialActions names many posts in one List(...).
    metrics_batch_size = 50

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """socialActions: likes and comments (the figures every author's token may read)."""
        ids = ",".join(quote(urn, safe="") for urn in post_ids)
        url = self.url(f"/rest/socialActions?ids=List({ids})")
        results = json_body(self._call("GET", url, account.access_token)).get("results") or {}
        found: dict[str, Metrics] = {}
        for urn, item in results.items():
            if not isinstance(item, dict):
                continue
            found[str(urn)] = Metrics(
                likes=count((item.get("likesSummary") or {}).get("totalLikes")),
                comments=count((item.get("commentsSummary") or {}).get("aggregatedTotalComments")),
                raw=item,
            )
        return found

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        """An organization's followers (networkSizes); a member's are not in the API."""
        author = author_urn(account)
        if not author.startswith("urn:li:organization:"):
            return None
        path = f"/rest/networkSizes/{quote(author, safe='')}?edgeType=COMPANY_FOLLOWED_BY_MEMBER"
        body = json_body(self._call("GET", self.url(path), account.access_token))
        return AccountMetrics(followers=count(body.get("firstDegreeSize")), raw=body)

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """POST www.linkedin.com/oauth/v2/accessToken; only approved partners get refresh tokens."""
        refresh_token = self.stored_refresh_token(
            account, "the LinkedIn account has no refresh token; reconnect it"
        )
        client_id, client_secret = self.client_credentials()
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if client_id:
            form["client_id"] = client_id
        if client_secret:
            form["client_secret"] = client_secret
        return self.exchange_refresh_token(
            self.url("/oauth/v2/accessToken", host="oauth"),
            form,
            name="LinkedIn",
            classify=classify,
            timeout=TIMEOUT,
        )

    # -- HTTP ------------------------------------------------------------------------------

    # -- a first comment: POST /rest/socialActions/{urn}/comments ----------------------------

    def publish_comment(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        urn = parent.platform_post_id
        body = {"actor": author_urn(request.account), "object": urn, "message": {"text": item.text}}
        begin_comment(context)
        response = self._call(
            "POST", self._comments_url(urn), request.account.access_token, json=body
        )
        comment_id = str(json_body(response).get("id") or response.headers.get("x-restli-id"))
        return PublishResult(comment_id, parent.url, {"reply_to": urn})

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        urn = parent.platform_post_id
        response = self._call(
            "GET",
            self._comments_url(urn) + f"?count={COMMENT_PAGE_SIZE}",
            request.account.access_token,
        )
        listed = [
            (
                str(e["id"]),
                str((e.get("message") or {}).get("text") or ""),
                ((e.get("created") or {}).get("time") or 0) / 1000 or None,
            )
            for e in json_body(response).get("elements") or []
            if isinstance(e, dict) and e.get("id")
        ]
        return found_comment(
            item,
            listed,
            lambda comment_id: PublishResult(comment_id, parent.url, {"reply_to": urn}),
        )

    def _comments_url(self, urn: str) -> str:
        return self.url(f"/rest/socialActions/{quote(urn, safe='')}/comments")

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        path = f"/rest/posts/{quote(platform_post_id, safe='')}"
        self._call("DELETE", self.url(path), account.access_token)

    def _call(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token}",
            # The monthly API version (CRIER_LINKEDIN_VERSION); versions live about a year.
            "LinkedIn-Version": self.settings.linkedin_version,
            "X-Restli-Protocol-Version": RESTLI_PROTOCOL_VERSION,
        }
        return self.send(
            method,
            url,
            failure="LinkedIn request failed",
            classify=classify,
            headers=headers,
            timeout=TIMEOUT,
            **kwargs,
        )


def classify(response: httpx.Response) -> PlatformError:
    """LinkedIn's status and error body to a PlatformError."""
    status = response.status_code
    body = json_body(response)
    code = _error_code(body)
    message = str(body.get("message") or response.reason_phrase)
    if status == 401 and (code == "REVOKED_ACCESS_TOKEN" or "revoked" in message.lower()):
        return AuthRevokedError(message, code="linkedin_token_revoked", http_status=status)
    if status != 401 and (status == 426 or code in ("NONEXISTENT_VERSION", "VERSION_MISSING")):
        # The operator must move LinkedIn-Version (CRIER_LINKEDIN_VERSION) to a live one.
        config_code = f"linkedin_config_{(code or 'nonexistent_version').lower()}"
        return PermanentError(message, code=config_code, http_status=status)
    if status == 429 and (code == "TOO_MANY_REQUESTS" or "throttle" in message.lower()):
        return QuotaExhaustedError(
            message, code="linkedin_daily_limit", http_status=status, retry_at=next_utc_midnight()
        )
    if status == 422 and "duplicate" in message.lower():
        match = _DUPLICATE_URN_RE.search(message)
        return DuplicateError(
            message,
            code="linkedin_duplicate_content",
            http_status=status,
            details={"existing_urn": match.group(0)} if match else {},
        )
    if status == 400 and code == "MEDIA_ASSET_WAITING_UPLOAD":
        return TransientError(message, code="linkedin_media_waiting_upload", http_status=status)
    if status == 409:
        return TransientError(message, code="linkedin_conflict", http_status=status)
    # A 4xx is coded by LinkedIn's own symbolic code where it names one.
    refused = "access_denied" if status == 403 else code.lower() if code else f"http_{status}"
    codes = replace(ERROR_CODES, rejected=f"linkedin_{refused}")
    wait = retry_after_seconds(response.headers, DEFAULT_RATE_LIMIT_WAIT_SECONDS)
    return classify_status(status, message, codes, rate_limit_wait=wait)


def _error_code(body: dict[str, Any]) -> str:
    """LinkedIn's symbolic code: top-level `code`, or the first input error's."""
    if isinstance(body.get("code"), str):
        return body["code"]
    for error in (body.get("errorDetails") or {}).get("inputErrors") or []:
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return error["code"]
    return ""
