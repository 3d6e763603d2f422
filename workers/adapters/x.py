"""X API v2: media upload, POST /2/tweets, timeline reconciliation, one-time-refresh OAuth 2.

X has no idempotency key, so the adapter saves the text's fingerprint, the uploaded media
and the author before POST /2/tweets; reconcile (and a resumed publish) look for the post on
the author's timeline instead of posting again.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
import unicodedata
from base64 import b64encode
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.config import Settings
from workers.adapters import register
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    Adapter,
    AuthExpiredError,
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
    sum_counts,
    working_handle,
)
from workers.adapters.kit import (
    ErrorCodes,
    classify_status,
    poll_until,
    reconcile_since,
    reset_wait_seconds,
    stream_file,
)

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
# Chunk size for /2/media/upload/{id}/append (X accepts up to 5 MB per segment).
UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024
# How long one publish may wait for X to process a video before giving up for now.
MEDIA_PROCESSING_TIMEOUT_SECONDS = 300.0
# An uploaded media id is reused on resume only if it stays valid at least this long.
MEDIA_REUSE_MARGIN_SECONDS = 600
# X's user request window: the wait when a 429 carries no x-rate-limit-reset.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 15 * 60
ERROR_CODES = ErrorCodes(
    rate_limited="x_rate_limited",
    auth_expired="x_unauthorized",
    server_error="x_server_error",
    rejected="x_invalid_request",
)
# Final refusals X names by status alone.
REFUSALS = {402: "x_payment_required", 403: "x_forbidden", 404: "x_not_found"}
RECONCILE_CLOCK_SKEW = timedelta(minutes=2)
RECONCILE_PAGE_SIZE = 100
# The API contract's replySettings value that means "no restriction": X wants the field omitted.
REPLY_EVERYONE = "everyone"

_URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class XIdentity:
    user_id: str | None
    username: str | None


def normalize_post_text(text: str) -> str:
    """Text as comparable after X's rewriting: entities unescaped, links (t.co, media) dropped."""
    text = unicodedata.normalize("NFC", html.unescape(text))
    return _SPACE_RE.sub(" ", _URL_RE.sub(" ", text)).strip()


def text_fingerprint(text: str) -> str:
    return hashlib.sha256(normalize_post_text(text).encode()).hexdigest()


def permalink(username: str | None, post_id: str) -> str:
    if username:
        return f"https://x.com/{username}/status/{post_id}"
    return f"https://x.com/i/web/status/{post_id}"


@register
class XAdapter(Adapter):
    platform = "x"
    hosts = {"api": "api.x.com"}
    supports_refresh = True

    upload_chunk_bytes = UPLOAD_CHUNK_BYTES

    def __init__(
        self, http: httpx.Client, base_url: str | None = None, settings: Settings | None = None
    ) -> None:
        super().__init__(http, base_url, settings)
        # users/me answers per account, cached so a busy account does not spend its
        # users/me window on every post.
        # account id -> (the token it was read with, identity): a reconnected or refreshed
        # account is looked up again; one entry per account bounds the cache.
        self._identities: dict[int, tuple[str, XIdentity]] = {}

    # -- publish ---------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        token = request.account.access_token
        handle = working_handle(request)
        prepared = resuming_prepared(request)
        user_id, username = handle.get("user_id"), handle.get("username")
        if not (user_id and username):  # a prepared handle has them: no users/me at the instant
            identity = self._identity(request.account)
            user_id = user_id or identity.user_id
            username = username or identity.username

        if handle.get("posted_at") and not prepared:
            # An earlier attempt may have posted: adopt that post rather than post twice.
            if not user_id:
                raise TransientError(
                    "cannot check X for an earlier attempt: the account's user id is unknown",
                    code="x_identity_unavailable",
                )
            found = self._find_post(request, handle, user_id, username)
            if found is not None:
                return found

        media_ids = self._media_ids(token, request.media, handle, context)
        body: dict[str, Any] = {}
        if request.text:
            body["text"] = request.text
        if media_ids:
            body["media"] = {"media_ids": media_ids}
        reply_settings = request.settings.get("replySettings")
        if reply_settings and reply_settings != REPLY_EVERYONE:
            body["reply_settings"] = reply_settings

        handle.update(
            user_id=user_id, username=username, text_sha256=text_fingerprint(request.text)
        )
        if prepared or not handle.get("posted_at"):
            handle["posted_at"] = datetime.now(UTC).isoformat()
        context.save_handle(handle)
        context.mark_irreversible()
        response = self._call("POST", self.url("/2/tweets"), token, json=body)
        post_id = str(response.json()["data"]["id"])
        details: dict[str, Any] = {"media_ids": media_ids}
        rate_limit = rate_limit_details(response.headers)
        if rate_limit:
            details["rate_limit"] = rate_limit
        return PublishResult(
            platform_post_id=post_id, url=permalink(username, post_id), details=details
        )

    def _media_ids(
        self, token: str, media: list[MediaItem], handle: dict[str, Any], context: PublishContext
    ) -> list[str]:
        """The media uploaded and processed, or an earlier attempt's while X holds them."""
        media_ids = self._reusable_media_ids(handle)
        if media_ids is None:
            uploaded = [self._upload(token, item) for item in media]
            media_ids = [str(data["id"]) for data in uploaded]
            expires_after = min(
                (int(d.get("expires_after_secs", 86400)) for d in uploaded), default=86400
            )
            handle.update(
                media_ids=media_ids,
                media_keys=[d["media_key"] for d in uploaded if d.get("media_key")],
                media_expires_at=int(time.time()) + expires_after,
                media_ready=False,
            )
            # Saved before processing: an attempt that times out waiting resumes the wait
            # rather than uploading again.
            context.save_handle(handle)
            for data in uploaded:
                self._await_processing(token, data)
            handle["media_ready"] = True
        elif media_ids and handle.get("media_ready") is False:
            for media_id in media_ids:
                self._await_processing(token, self._media_status(token, media_id))
            handle["media_ready"] = True
        return media_ids

    # -- replies: a thread's items and a first comment ----------------------------------------

    def publish_reply(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        """POST /2/tweets with reply.in_reply_to_tweet_id: the item under its parent."""
        token = request.account.access_token
        handle = dict(item.handle or {})
        identity = self._identity(request.account)
        media_ids = self._media_ids(token, item.media, handle, context)
        body: dict[str, Any] = {"reply": {"in_reply_to_tweet_id": parent.platform_post_id}}
        if item.text:
            body["text"] = item.text
        if media_ids:
            body["media"] = {"media_ids": media_ids}
        handle.update(
            user_id=identity.user_id,
            username=identity.username,
            text_sha256=text_fingerprint(item.text),
            posted_at=datetime.now(UTC).isoformat(),
        )
        context.save_handle(handle)
        context.mark_irreversible()
        response = self._call("POST", self.url("/2/tweets"), token, json=body)
        post_id = str(response.json()["data"]["id"])
        return PublishResult(
            post_id, permalink(identity.username, post_id), {"reply_to": parent.platform_post_id}
        )

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        """The author's reply to `parent` since the item's attempt began, with its text."""
        handle = item.handle or {}
        identity = self._identity(request.account)
        user_id = handle.get("user_id") or identity.user_id
        if not user_id:
            raise TransientError(
                "cannot read the X timeline: the account's user id is unknown",
                code="x_identity_unavailable",
            )
        since = reconcile_since(handle.get("posted_at") or item.started_at, RECONCILE_CLOCK_SKEW)
        response = self._call(
            "GET",
            self.url(f"/2/users/{user_id}/tweets"),
            request.account.access_token,
            params={
                "max_results": RECONCILE_PAGE_SIZE,
                "start_time": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tweet.fields": "created_at,referenced_tweets",
                "exclude": "retweets",
            },
        )
        fingerprint = handle.get("text_sha256") or text_fingerprint(item.text)
        for post in response.json().get("data") or []:
            replied = [
                ref.get("id")
                for ref in post.get("referenced_tweets") or []
                if ref.get("type") == "replied_to"
            ]
            if parent.platform_post_id in replied and (
                text_fingerprint(post.get("text", "")) == fingerprint
            ):
                post_id = str(post["id"])
                result = PublishResult(
                    post_id,
                    permalink(handle.get("username") or identity.username, post_id),
                    {"reconciled": True, "reply_to": parent.platform_post_id},
                )
                return ReconcileResult(ReconcileStatus.FOUND, result)
        return ReconcileResult(
            ReconcileStatus.NOT_FOUND, reason="no matching reply on the timeline"
        )

    def prepared_until(self, handle: dict[str, Any]) -> float | None:
        """Uploaded media are reused until MEDIA_REUSE_MARGIN_SECONDS before X drops them."""
        if not handle.get("media_ids") or not handle.get("media_expires_at"):
            return None
        return float(handle["media_expires_at"]) - MEDIA_REUSE_MARGIN_SECONDS

    def _reusable_media_ids(self, handle: dict[str, Any]) -> list[str] | None:
        """Media uploaded by an earlier attempt, while X still holds them."""
        if "media_ids" not in handle:
            return None
        expires_at = int(handle.get("media_expires_at") or 0)
        if handle["media_ids"] and expires_at - time.time() < MEDIA_REUSE_MARGIN_SECONDS:
            return None
        return list(handle["media_ids"])

    # -- media -----------------------------------------------------------------------------

    def _upload(self, token: str, item: MediaItem) -> dict[str, Any]:
        """Images go one-shot; videos through initialize/append/finalize (the caller waits
        for the processing the answer announces)."""
        if item.kind == "image":
            category = "tweet_gif" if item.mime_type == "image/gif" else "tweet_image"
            with open(item.path, "rb") as source:
                response = self._call(
                    "POST",
                    self.url("/2/media/upload"),
                    token,
                    files={"media": (item.filename or "media", source, item.mime_type)},
                    data={"media_category": category, "media_type": item.mime_type},
                    timeout=UPLOAD_TIMEOUT,
                )
            return dict(response.json()["data"])

        initialized = self._call(
            "POST",
            self.url("/2/media/upload/initialize"),
            token,
            json={
                "media_type": item.mime_type,
                "total_bytes": item.size_bytes,
                "media_category": "tweet_video",
            },
        ).json()["data"]
        media_id = str(initialized["id"])
        for segment_index, chunk in enumerate(stream_file(item.path, 0, self.upload_chunk_bytes)):
            self._call(
                "POST",
                self.url(f"/2/media/upload/{media_id}/append"),
                token,
                files={"media": ("chunk", chunk, "application/octet-stream")},
                data={"segment_index": str(segment_index)},
                timeout=UPLOAD_TIMEOUT,
            )
        finalized = self._call(
            "POST", self.url(f"/2/media/upload/{media_id}/finalize"), token
        ).json()["data"]
        return {**initialized, **finalized}

    def _media_status(self, token: str, media_id: str) -> dict[str, Any]:
        return dict(
            self._call(
                "GET",
                self.url("/2/media/upload"),
                token,
                params={"command": "STATUS", "media_id": media_id},
            ).json()["data"]
        )

    def _await_processing(self, token: str, data: dict[str, Any]) -> dict[str, Any]:
        """Poll the upload status as X asks (check_after_secs) until it succeeds or fails;
        the first look reads the answer the upload already gave."""
        info = data.get("processing_info")
        fresh = True

        def look() -> dict[str, Any] | None:
            nonlocal data, info, fresh
            if not fresh:
                status = self._media_status(token, str(data["id"]))
                data, info = {**data, **status}, status.get("processing_info")
            fresh = False
            if not info or info.get("state") == "succeeded":
                return data
            if info.get("state") == "failed":
                error = info.get("error") or {}
                raise PermanentError(
                    f"X could not process the media: {error.get('message') or error.get('name')}",
                    code="x_media_processing_failed",
                )
            return None

        return poll_until(
            look,
            interval=lambda: float((info or {}).get("check_after_secs") or 1),
            deadline=time.monotonic() + MEDIA_PROCESSING_TIMEOUT_SECONDS,
            still_processing=lambda: TransientError(
                "X is still processing the media", code="x_media_processing_timeout"
            ),
        )

    # -- reconcile -------------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        handle = request.handle or {}
        identity = self._identity(request.account)
        user_id = handle.get("user_id") or identity.user_id
        if not user_id:
            raise TransientError(
                "cannot read the X timeline: the account's user id is unknown",
                code="x_identity_unavailable",
            )
        found = self._find_post(
            request, handle, user_id, handle.get("username") or identity.username
        )
        if found is None:
            return ReconcileResult(
                ReconcileStatus.NOT_FOUND, reason="no matching post on the timeline"
            )
        return ReconcileResult(ReconcileStatus.FOUND, result=found)

    def _find_post(
        self,
        request: PublishRequest,
        handle: dict[str, Any],
        user_id: str,
        username: str | None,
    ) -> PublishResult | None:
        """The author's post since the attempt started whose text (and media) match ours."""
        since = reconcile_since(handle.get("posted_at"), RECONCILE_CLOCK_SKEW)
        response = self._call(
            "GET",
            self.url(f"/2/users/{user_id}/tweets"),
            request.account.access_token,
            params={
                "max_results": RECONCILE_PAGE_SIZE,
                "start_time": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tweet.fields": "created_at,attachments",
                "exclude": "retweets,replies",
            },
        )
        fingerprint = handle.get("text_sha256") or text_fingerprint(request.text)
        media_keys = sorted(handle.get("media_keys") or [])
        for post in response.json().get("data") or []:
            if text_fingerprint(post.get("text", "")) != fingerprint:
                continue
            if (
                media_keys
                and sorted((post.get("attachments") or {}).get("media_keys") or []) != media_keys
            ):
                continue
            post_id = str(post["id"])
            return PublishResult(
                platform_post_id=post_id,
                url=permalink(username, post_id),
                details={"reconciled": True, "created_at": post.get("created_at")},
            )
        return None

    # -- auth ------------------------------------------------------------------------------

    def _identity(self, account: AccountCredentials) -> XIdentity:
        """The token's user (id and username, for the permalink) from GET /2/users/me.

        Only a rejected token stops the publish: if users/me is merely unavailable, the
        post still goes out with the id-only permalink X also serves.
        """
        cached = self._identities.get(account.account_id)
        if cached is not None and cached[0] == account.access_token:
            return cached[1]
        try:
            data = self._call("GET", self.url("/2/users/me"), account.access_token).json()["data"]
        except (AuthExpiredError, AuthRevokedError):
            raise
        except PlatformError:
            return XIdentity(user_id=account.external_id, username=None)
        identity = XIdentity(user_id=str(data["id"]), username=data.get("username"))
        self._identities[account.account_id] = (account.access_token, identity)
        return identity

    # GET /2/tweets reads up to 100 posts by id.
    metrics_batch_size = 100

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """public_metrics of each post: X counts a view as an impression."""
        response = self._call(
            "GET",
            self.url("/2/tweets"),
            account.access_token,
            params={"ids": ",".join(post_ids), "tweet.fields": "public_metrics"},
        )
        found: dict[str, Metrics] = {}
        for item in json_body(response).get("data") or []:
            figures = item.get("public_metrics") or {}
            found[str(item.get("id"))] = Metrics(
                views=count(figures.get("impression_count")),
                likes=count(figures.get("like_count")),
                comments=count(figures.get("reply_count")),
                shares=sum_counts(figures.get("retweet_count"), figures.get("quote_count")),
                impressions=count(figures.get("impression_count")),
                saves=count(figures.get("bookmark_count")),
                raw=figures,
            )
        return found

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        response = self._call(
            "GET",
            self.url("/2/users/me"),
            account.access_token,
            params={"user.fields": "public_metrics"},
        )
        figures = (json_body(response).get("data") or {}).get("public_metrics") or {}
        return AccountMetrics(
            followers=count(figures.get("followers_count")),
            following=count(figures.get("following_count")),
            posts_count=count(figures.get("tweet_count")),
            raw=figures,
        )

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """POST /2/oauth2/token; X refresh tokens are single-use, so the new one must be kept."""
        refresh_token = self.stored_refresh_token(
            account, "the X account has no refresh token; reconnect it"
        )
        client_id, client_secret = self.client_credentials()
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        headers: dict[str, str] = {}
        if client_id and client_secret:
            basic = b64encode(f"{client_id}:{client_secret}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        elif client_id:
            form["client_id"] = client_id
        return self.exchange_refresh_token(
            self.url("/2/oauth2/token"),
            form,
            name="X",
            classify=classify,
            timeout=TIMEOUT,
            headers=headers,
        )

    # -- HTTP ------------------------------------------------------------------------------

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        self._call("DELETE", self.url(f"/2/tweets/{platform_post_id}"), account.access_token)

    def _call(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return self.send(
            method,
            url,
            failure="X request failed",
            classify=classify,
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )


def rate_limit_details(headers: httpx.Headers) -> dict[str, int] | None:
    try:
        return {
            "limit": int(headers["x-rate-limit-limit"]),
            "remaining": int(headers["x-rate-limit-remaining"]),
            "reset_at": int(headers["x-rate-limit-reset"]),
        }
    except (KeyError, ValueError):
        return None


def classify(response: httpx.Response) -> PlatformError:
    """X's status and problem JSON to a PlatformError. X answers a revoked token exactly
    like an expired one (401): refresh decides."""
    status = response.status_code
    body = json_body(response)
    message = _problem_message(body) or response.reason_phrase
    if status == 429:
        return _limit_error(response, body, message)
    if status == 403 and "duplicate content" in message.lower():
        return DuplicateError(message, code="x_duplicate_content", http_status=status)
    if status in REFUSALS:
        return PermanentError(message, code=REFUSALS[status], http_status=status)
    return classify_status(status, message, ERROR_CODES, rate_limit_wait=0.0)


def _limit_error(response: httpx.Response, body: dict[str, Any], message: str) -> PlatformError:
    """A 429: the 24-hour caps free at their reset instant; the 15-minute window after a wait."""
    headers = response.headers
    for scope, prefix in (("account", "x-user-limit-24hour"), ("app", "x-app-limit-24hour")):
        if headers.get(f"{prefix}-remaining") == "0" and headers.get(f"{prefix}-reset"):
            return QuotaExhaustedError(
                message,
                code="x_user_daily_limit" if scope == "account" else "x_app_daily_limit",
                http_status=429,
                retry_at=datetime.fromtimestamp(int(headers[f"{prefix}-reset"]), UTC),
                scope=scope,
            )
    reset = headers.get("x-rate-limit-reset")
    if "usage-capped" in str(body.get("type", "")):
        return QuotaExhaustedError(
            message,
            code="x_usage_capped",
            http_status=429,
            retry_at=datetime.fromtimestamp(int(reset), UTC) if reset else None,
            scope="app",
        )
    wait = reset_wait_seconds(response, "x-rate-limit-reset", DEFAULT_RATE_LIMIT_WAIT_SECONDS)
    return classify_status(429, message, ERROR_CODES, rate_limit_wait=wait)


def _problem_message(body: dict[str, Any]) -> str:
    parts = [str(body[key]) for key in ("detail",) if body.get(key)]
    parts += [str(e.get("message")) for e in body.get("errors") or [] if isinstance(e, dict)]
    return "; ".join(parts) or str(body.get("title") or "")
