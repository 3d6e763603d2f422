"""Mastodon: any instance. Media through /api/v2/media (polled until processed), statuses
with an `Idempotency-Key` derived from the target, so a resent status is never doubled.

The instance is the account's own: its profile URL (`https://instance/@user`, the
account's external id) or `settings["instance"]`. Each instance's limits (characters,
attachments, file sizes) are read from GET /api/v2/instance, cached per instance, and
applied before anything is sent. Mastodon tokens do not expire and have no refresh: a
token the instance refuses means reconnecting the account.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.config import Settings
from app.platforms import PLATFORMS, count_mastodon
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
    ReconcileResult,
    ReconcileStatus,
    TransientError,
    count,
    json_body,
    resuming_prepared,
    working_handle,
)
from workers.adapters.kit import (
    ErrorCodes,
    classify_status,
    poll_until,
    reconcile_since,
    server_now,
)

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
RULES = PLATFORMS["mastodon"]
# An instance's limits are read again after this long.
INSTANCE_CACHE_SECONDS = 60 * 60
# Mastodon keeps an Idempotency-Key for an hour; a resend is trusted well within it.
IDEMPOTENCY_TRUST_SECONDS = 50 * 60
# Unattached media are removed by the instance after a day; reuse them within this.
MEDIA_REUSE_SECONDS = 12 * 60 * 60
MEDIA_PROCESSING_TIMEOUT_SECONDS = 300.0
MEDIA_POLL_SECONDS = 1.0
# The 5-minute window: the wait when a 429 names no reset.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 5 * 60
RECONCILE_CLOCK_SKEW = timedelta(minutes=2)
RECONCILE_PAGE_SIZE = 40
ERROR_CODES = ErrorCodes(
    rate_limited="mastodon_rate_limited",
    auth_expired="mastodon_token_invalid",
    server_error="mastodon_server_error",
    rejected="mastodon_invalid_request",
)
NOT_PROCESSED = "not finished processing"
# GET /api/v1/statuses?id[]=… (Mastodon 4.3+) takes up to 20 ids.
STATUSES_PER_CALL = 20
STATUS_COUNTS = ("favourites_count", "reblogs_count", "replies_count")
_TAG_RE = re.compile(r"<[^>]+>")
_BREAK_RE = re.compile(r"<br\s*/?>|</p>\s*<p>", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class InstanceLimits:
    max_characters: int = RULES.text_limit
    max_media: int = RULES.media.max_images
    image_max_bytes: int = RULES.media.image_max_bytes
    video_max_bytes: int = RULES.media.video_max_bytes

    @classmethod
    def from_instance(cls, body: dict[str, Any]) -> InstanceLimits:
        config = body.get("configuration") or {}
        statuses = config.get("statuses") or {}
        media = config.get("media_attachments") or {}
        default = cls()
        return cls(
            max_characters=int(statuses.get("max_characters") or default.max_characters),
            max_media=int(statuses.get("max_media_attachments") or default.max_media),
            image_max_bytes=int(media.get("image_size_limit") or default.image_max_bytes),
            video_max_bytes=int(media.get("video_size_limit") or default.video_max_bytes),
        )


def instance_of(account: AccountCredentials) -> str:
    """The account's instance, `https://host`: from its settings or its profile URL."""
    given = str(account.settings.get("instance") or account.external_id or "")
    parts = urlsplit(given if "://" in given else f"https://{given}")
    if not parts.hostname:
        raise AuthRevokedError(
            "the Mastodon account names no instance; reconnect it",
            code="mastodon_no_instance",
        )
    port = f":{parts.port}" if parts.port else ""
    return f"https://{parts.hostname}{port}"


def idempotency_key(request: PublishRequest) -> str:
    """The same for every attempt of a target with the same text."""
    digest = hashlib.sha256(request.text.encode()).hexdigest()[:16]
    return f"crier-target-{request.target_id}-{digest}"


def plain_text(content: str) -> str:
    """A status's HTML content as comparable text."""
    text = html.unescape(_TAG_RE.sub("", _BREAK_RE.sub("\n", content)))
    return _SPACE_RE.sub(" ", text).strip()


@register
class MastodonAdapter(Adapter):
    platform = "mastodon"
    hosts = {"api": "mastodon.social"}

    poll_interval = MEDIA_POLL_SECONDS

    def __init__(
        self, http: httpx.Client, base_url: str | None = None, settings: Settings | None = None
    ) -> None:
        super().__init__(http, base_url, settings)
        # instance -> (read at, limits)
        self._limits: dict[str, tuple[float, InstanceLimits]] = {}
        # account id -> (token, the account's id on its instance)
        self._account_ids: dict[int, tuple[str, str]] = {}
        # instance -> when it answered 404 to the batch read (older than 4.3)
        self._no_batch_read: dict[str, float] = {}

    def api(self, account: AccountCredentials, path: str) -> str:
        """The account's instance URL, or the sandbox's `/mastodon` under
        CRIER_PLATFORM_BASE_URL (the per-account host is replaced too)."""
        if self.base_url:
            return f"{self.base_url}/{self.platform}{path}"
        return f"{instance_of(account)}{path}"

    def _call(
        self, account: AccountCredentials, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        headers = {"Authorization": f"Bearer {account.access_token}", **kwargs.pop("headers", {})}
        return self.send(
            method,
            self.api(account, path),
            failure="Mastodon request failed",
            classify=classify,
            headers=headers,
            **kwargs,
        )

    # -- instance and identity -------------------------------------------------------------

    def limits(self, account: AccountCredentials) -> InstanceLimits:
        """The instance's limits, cached; its defaults when the instance does not say."""
        instance = instance_of(account)
        cached = self._limits.get(instance)
        if cached is not None and time.time() - cached[0] < INSTANCE_CACHE_SECONDS:
            return cached[1]
        try:
            response = self.send(
                "GET",
                self.api(account, "/api/v2/instance"),
                failure="reading the Mastodon instance failed",
                timeout=TIMEOUT,
            )
        except TransientError:
            return InstanceLimits()
        if response.status_code != 200:
            return InstanceLimits()
        limits = InstanceLimits.from_instance(json_body(response))
        self._limits[instance] = (time.time(), limits)
        return limits

    def account_id(self, account: AccountCredentials) -> str:
        """The account's id on its instance (for its statuses)."""
        if account.settings.get("account_id"):
            return str(account.settings["account_id"])
        cached = self._account_ids.get(account.account_id)
        if cached is not None and cached[0] == account.access_token:
            return cached[1]
        found = str(self._call(account, "GET", "/api/v1/accounts/verify_credentials").json()["id"])
        self._account_ids[account.account_id] = (account.access_token, found)
        return found

    # -- publish ---------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        account = request.account
        handle = working_handle(request)
        prepared = resuming_prepared(request)
        self._check_limits(request, self.limits(account))
        posted_at = handle.get("posted_at")
        if posted_at and not prepared and not self._key_still_kept(posted_at):
            # The key has expired at the instance: look for the earlier attempt's status.
            found = self._find_status(request, handle)
            if found is not None:
                return found

        body = _status_body(request, self._media(request, handle, context))
        if prepared or not posted_at or not self._key_still_kept(posted_at):
            handle["posted_at"] = datetime.now(UTC).isoformat()
        handle["idempotency_key"] = idempotency_key(request)
        context.save_handle(handle)
        context.mark_irreversible()
        status = self.create_status(account, body, str(handle["idempotency_key"]))
        return _result(status, reconciled=False)

    def publish_reply(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        """POST /api/v1/statuses with `in_reply_to_id`: the item under `parent`, with the
        post's visibility, content warning and language, and a key of its own."""
        reply = _item_request(request, item)
        self._check_limits(reply, self.limits(request.account))
        handle = dict(item.handle or {})
        body = _status_body(reply, self._media(reply, handle, context))
        body["in_reply_to_id"] = parent.platform_post_id
        if not handle.get("posted_at") or not self._key_still_kept(handle["posted_at"]):
            handle["posted_at"] = datetime.now(UTC).isoformat()
        handle["idempotency_key"] = f"{idempotency_key(reply)}-{item.position}"
        context.save_handle(handle)
        context.mark_irreversible()
        status = self.create_status(request.account, body, str(handle["idempotency_key"]))
        return _result(status, reconciled=False)

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        """Among the account's newest statuses since the item's attempt began: a reply to
        `parent` with the item's text (and media)."""
        reply = _item_request(request, item)
        found = self._find_status(reply, item.handle or {}, parent.platform_post_id)
        if found is None:
            return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching reply")
        return ReconcileResult(ReconcileStatus.FOUND, result=found)

    def create_status(
        self, account: AccountCredentials, body: dict[str, Any], key: str
    ) -> dict[str, Any]:
        """POST /api/v1/statuses with an Idempotency-Key: a post, or a reply with
        `in_reply_to_id` in the body. The same key within the hour gives back the same
        status rather than a second one."""
        return dict(
            self._call(
                account, "POST", "/api/v1/statuses", json=body, headers={"Idempotency-Key": key}
            ).json()
        )

    def _key_still_kept(self, posted_at: str) -> bool:
        started = datetime.fromisoformat(posted_at)
        return (datetime.now(UTC) - started).total_seconds() < IDEMPOTENCY_TRUST_SECONDS

    def _check_limits(self, request: PublishRequest, limits: InstanceLimits) -> None:
        length = count_mastodon(request.text)
        if length > limits.max_characters:
            raise PermanentError(
                f"the text is {length} characters; this instance allows {limits.max_characters}",
                code="mastodon_text_too_long",
            )
        if len(request.media) > limits.max_media:
            raise PermanentError(
                f"{len(request.media)} media; this instance allows {limits.max_media} per post",
                code="mastodon_too_many_media",
            )
        kinds = {item.kind for item in request.media}
        if "video" in kinds and len(request.media) > 1:
            raise PermanentError(
                "a Mastodon post carries one video or several images, not both",
                code="mastodon_media_mix",
            )
        for item in request.media:
            limit = limits.video_max_bytes if item.kind == "video" else limits.image_max_bytes
            if item.size_bytes > limit:
                raise PermanentError(
                    f"{item.filename or item.id} is {item.size_bytes} bytes; this instance "
                    f"takes {item.kind}s up to {limit}",
                    code="mastodon_media_too_large",
                )

    # -- media -----------------------------------------------------------------------------

    def _media(
        self, request: PublishRequest, handle: dict[str, Any], context: PublishContext
    ) -> list[str]:
        if not request.media:
            return []
        fresh = time.time() - float(handle.get("media_at") or 0) < MEDIA_REUSE_SECONDS
        if not (handle.get("media_ids") and fresh):
            alts = list(request.settings.get("altTexts") or [])
            uploaded = [
                self._upload(request.account, item, alts[n] if n < len(alts) else None)
                for n, item in enumerate(request.media)
            ]
            handle.update(
                media_ids=[str(u["id"]) for u in uploaded],
                media_pending=[str(u["id"]) for u in uploaded if not u.get("url")],
                media_at=time.time(),
            )
            # Saved before waiting: a retry resumes the wait rather than uploading again.
            context.save_handle(handle)
        for media_id in list(handle.get("media_pending") or []):
            self._await_media(request.account, media_id)
            handle["media_pending"] = [m for m in handle["media_pending"] if m != media_id]
        context.save_handle(handle)
        return list(handle["media_ids"])

    def _upload(
        self, account: AccountCredentials, item: MediaItem, description: str | None
    ) -> dict[str, Any]:
        data = {"description": description} if description else {}
        with open(item.path, "rb") as source:
            response = self._call(
                account,
                "POST",
                "/api/v2/media",
                files={"file": (item.filename or "media", source, item.mime_type)},
                data=data,
                timeout=UPLOAD_TIMEOUT,
            )
        return dict(response.json())

    def _await_media(self, account: AccountCredentials, media_id: str) -> None:
        """GET /api/v1/media/:id answers 206 while processing, 200 with a url when done."""

        def look() -> bool | None:
            response = self._call(account, "GET", f"/api/v1/media/{media_id}")
            if response.status_code == 200 and json_body(response).get("url"):
                return True
            return None

        poll_until(
            look,
            interval=lambda: self.poll_interval,
            deadline=time.monotonic() + MEDIA_PROCESSING_TIMEOUT_SECONDS,
            still_processing=lambda: TransientError(
                "Mastodon is still processing the media", code="mastodon_media_processing"
            ),
        )

    def prepared_until(self, handle: dict[str, Any]) -> float | None:
        if not handle.get("media_at"):
            return None
        return float(handle["media_at"]) + MEDIA_REUSE_SECONDS

    # -- reconcile and delete --------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        """Among the account's newest statuses since the attempt began, by text (and media).
        A status posted after its answer was lost is also safe to send again within the
        hour: the instance answers the same Idempotency-Key with the same status."""
        found = self._find_status(request, request.handle or {})
        if found is None:
            return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching status")
        return ReconcileResult(ReconcileStatus.FOUND, result=found)

    def _find_status(
        self, request: PublishRequest, handle: dict[str, Any], reply_to: str | None = None
    ) -> PublishResult | None:
        """The status by text and media since the attempt; a reply to `reply_to` only
        when given, else a status that replies to nothing."""
        account = request.account
        since = reconcile_since(
            request.irreversible_started_at or handle.get("posted_at"), RECONCILE_CLOCK_SKEW
        )
        statuses = self._call(
            account,
            "GET",
            f"/api/v1/accounts/{self.account_id(account)}/statuses",
            params={"limit": RECONCILE_PAGE_SIZE, "exclude_reblogs": "true"},
        ).json()
        wanted = _SPACE_RE.sub(" ", request.text).strip()
        media_ids = sorted(handle.get("media_ids") or [])
        for status in statuses if isinstance(statuses, list) else []:
            created = datetime.fromisoformat(str(status.get("created_at")).replace("Z", "+00:00"))
            if created < since or plain_text(str(status.get("content") or "")) != wanted:
                continue
            if str(status.get("in_reply_to_id") or "") != (reply_to or ""):
                continue
            attached = sorted(str(m.get("id")) for m in status.get("media_attachments") or [])
            if media_ids and attached != media_ids:
                continue
            return _result(status, reconciled=True)
        return None

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        self._call(account, "DELETE", f"/api/v1/statuses/{platform_post_id}")

    # -- analytics (scopes read:statuses, read:accounts) ------------------------------------

    metrics_batch_size = STATUSES_PER_CALL

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """GET /api/v1/statuses?id[]=…, which leaves out statuses that are gone. An instance
        older than 4.3 answers it 404: its statuses are read one by one for an hour."""
        instance = instance_of(account)
        noted = self._no_batch_read.get(instance)
        if noted is None or time.time() - noted > INSTANCE_CACHE_SECONDS:
            try:
                response = self._call(account, "GET", "/api/v1/statuses", params={"id[]": post_ids})
            except PermanentError as error:
                if error.http_status != 404:
                    raise
                self._no_batch_read[instance] = time.time()
            else:
                self._no_batch_read.pop(instance, None)
                body = response.json()
                return _status_metrics(body if isinstance(body, list) else [])
        statuses = []
        for status_id in post_ids:
            try:
                statuses.append(self._call(account, "GET", f"/api/v1/statuses/{status_id}").json())
            except PermanentError as error:
                if error.http_status != 404:  # 404: deleted
                    raise
        return _status_metrics(statuses)

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        body = json_body(self._call(account, "GET", "/api/v1/accounts/verify_credentials"))
        return AccountMetrics(
            followers=count(body.get("followers_count")),
            following=count(body.get("following_count")),
            posts_count=count(body.get("statuses_count")),
            raw={
                k: body[k]
                for k in ("followers_count", "following_count", "statuses_count")
                if k in body
            },
        )


def _status_metrics(statuses: list[Any]) -> dict[str, Metrics]:
    """Favourites are likes, boosts shares, replies comments."""
    return {
        str(status["id"]): Metrics(
            likes=count(status.get("favourites_count")),
            comments=count(status.get("replies_count")),
            shares=count(status.get("reblogs_count")),
            raw={k: status[k] for k in STATUS_COUNTS if k in status},
        )
        for status in statuses
        if isinstance(status, dict) and status.get("id") is not None
    }


def _item_request(request: PublishRequest, item: FollowUp) -> PublishRequest:
    """A thread item or comment as a request of its own: its text and media, the post's
    settings (without the post's alt texts), from when its attempt began."""
    settings = {k: v for k, v in request.settings.items() if k != "altTexts"}
    return replace(
        request,
        text=item.text,
        media=list(item.media),
        settings=settings,
        irreversible_started_at=item.started_at,
    )


def _status_body(request: PublishRequest, media_ids: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"status": request.text, "visibility": "public"}
    if media_ids:
        body["media_ids"] = media_ids
    settings = request.settings
    if settings.get("visibility"):
        body["visibility"] = settings["visibility"]
    if settings.get("spoilerText"):
        body["spoiler_text"] = settings["spoilerText"]
    if settings.get("sensitive"):
        body["sensitive"] = True
    if settings.get("language"):
        body["language"] = settings["language"]
    return body


def _result(status: dict[str, Any], *, reconciled: bool) -> PublishResult:
    details: dict[str, Any] = {"uri": status.get("uri"), "visibility": status.get("visibility")}
    if reconciled:
        details["reconciled"] = True
    return PublishResult(
        platform_post_id=str(status["id"]),
        url=status.get("url") or status.get("uri"),
        details=details,
    )


def reset_wait(response: httpx.Response) -> float:
    """The wait until X-RateLimit-Reset (an ISO 8601 time), on the instance's clock."""
    reset = response.headers.get("x-ratelimit-reset")
    if not reset:
        return DEFAULT_RATE_LIMIT_WAIT_SECONDS
    try:
        moment = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    except ValueError:
        return DEFAULT_RATE_LIMIT_WAIT_SECONDS
    return max(0.0, moment.timestamp() - server_now(response))


def classify(response: httpx.Response) -> PlatformError:
    """Mastodon's {error} answers. A refused token cannot be refreshed (reconnect); media
    still processing is worth another try; other validation failures are final."""
    status = response.status_code
    message = str(json_body(response).get("error") or response.reason_phrase)
    if status == 429:
        return classify_status(429, message, ERROR_CODES, rate_limit_wait=reset_wait(response))
    if status == 401:
        return AuthRevokedError(message, code="mastodon_token_invalid", http_status=status)
    if status == 403 and "disabled" in message.lower():
        return AuthRevokedError(message, code="mastodon_account_disabled", http_status=status)
    if status == 422 and NOT_PROCESSED in message:
        return TransientError(message, code="mastodon_media_processing", http_status=status)
    if status == 422:
        return PermanentError(message, code="mastodon_validation_failed", http_status=status)
    if status == 404:
        return PermanentError(message, code="mastodon_not_found", http_status=status)
    if status == 403:
        return PermanentError(message, code="mastodon_forbidden", http_status=status)
    return classify_status(status, message, ERROR_CODES, rate_limit_wait=0.0)
