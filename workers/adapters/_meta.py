"""What Instagram, Facebook Pages and Threads share: the Graph API's error model, its
usage headers, one HTTP call helper, and the container → poll → publish flow.

Meta reports limits, auth failures and most publishing errors in the JSON body with HTTP
400, so classification reads `error.code`, `error.error_subcode` and `is_transient`
(PLATFORMS.md 1.5, 1.6, 2.4, 3.4, 8), never the status alone.
"""

from __future__ import annotations

import json
import re
import time
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from workers.adapters.base import (
    AccountCredentials,
    Adapter,
    AuthExpiredError,
    AuthRevokedError,
    DuplicateError,
    PermanentError,
    PlatformError,
    PublishContext,
    PublishRequest,
    PublishResult,
    QuotaExhaustedError,
    RateLimitedError,
    ReconcileResult,
    ReconcileStatus,
    TokenSet,
    TransientError,
    checked_state,
    json_body,
    resuming_prepared,
    stamp_checked,
    working_handle,
)
from workers.adapters.kit import ErrorCodes, classify_status, poll_until, reconcile_since

GRAPH_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

# Throttling codes (PLATFORMS.md 1.5): 4 app, 17 user, 32 Pages (user token), 613 custom,
# 80001 Pages (Page token), 80002 Instagram. Code 4 binds every account of the app.
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002})
APP_WIDE_THROTTLE_CODES = frozenset({4})
# When a throttle carries no estimated_time_to_regain_access: Meta documents none, and
# more calls extend the block, so wait a while rather than probe.
THROTTLE_FALLBACK_SECONDS = 300.0
# Code 9 (IG subcode 2207042): the posts-per-24 h cap, a rolling window.
QUOTA_CODES = frozenset({9})
QUOTA_WINDOW = timedelta(hours=24)
AUTH_CODES = frozenset({102, 190})
# 190 subcodes that no refresh can fix: app removed, checkpoint, password changed,
# unconfirmed user, no Page role any more.
REVOKED_SUBCODES = frozenset({458, 459, 460, 464, 492})
TRANSIENT_CODES = frozenset({1, 2, 341})
DUPLICATE_CODES = frozenset({506})
PERMISSION_CODES = frozenset({10, *range(200, 300)})

# Subcodes whose class the table in PLATFORMS.md 1.6 / 2.4 pins down, by stable name.
TRANSIENT_SUBCODES: dict[int, str] = {
    2207001: "server_error",
    2207003: "media_download_timeout",
    2207008: "media_builder_expired",
    2207020: "media_expired",
    2207027: "media_not_ready",
    2207032: "create_media_failed",
    2207053: "upload_failed",
    1363047: "service_unavailable",
    1609010: "service_unavailable",
}
PERMANENT_SUBCODES: dict[int, str] = {
    2207004: "image_too_large",
    2207005: "image_format_unsupported",
    2207006: "media_not_found",
    2207009: "aspect_ratio_invalid",
    2207010: "caption_too_long",
    2207023: "unknown_media_type",
    2207026: "video_format_unsupported",
    2207028: "carousel_item_count",
    2207035: "product_tag_invalid",
    2207036: "product_tag_invalid",
    2207037: "product_tag_invalid",
    2207040: "too_many_mentions",
    2207050: "account_restricted",
    2207051: "activity_restricted",
    2207052: "media_fetch_failed",
    2207057: "thumb_offset_out_of_range",
    1346003: "abusive_content",
    1366046: "photo_invalid",
    1404078: "publishing_authorization_required",
    1404102: "community_standards",
    1609008: "facebook_link_not_allowed",
    2061006: "invalid_url",
    4854002: "identity_confirmation_required",
}
DUPLICATE_SUBCODES = frozenset({1366051})
# Facebook's codes for a file it could not use from the URL it was given.
PERMANENT_CODES: dict[int, str] = {
    324: "image_fetch_failed",  # (#324) Missing or invalid image file (photos `url`)
    352: "video_format_unsupported",
    389: "video_fetch_failed",  # (#389) Unable to fetch video file from URL (`file_url`)
}
# Errors that mean Meta could not download the file from Crier's public media link.
MEDIA_FETCH_ERRORS = frozenset({"media_fetch_failed", "image_fetch_failed", "video_fetch_failed"})
MEDIA_FETCH_HINT = (
    "the platform downloads media from Crier's signed public link: check that "
    "CRIER_PUBLIC_URL is reachable from the internet and the file still exists"
)

# How far around a saved timestamp a listing match may fall (clock skew, processing).
MATCH_SLACK = timedelta(seconds=300)
# A container not published within 24 h of its creation expires (status EXPIRED).
CONTAINER_LIFETIME_SECONDS = 24 * 3600.0
LISTING_PAGE_SIZE = 50

# Containers (Instagram, Threads): poll often and briefly; a container still processing
# after the bound is a TransientError and the next attempt resumes the same container.
CONTAINER_POLL_INTERVAL = 3.0
CONTAINER_MAX_WAIT = 45.0
DEAD_CONTAINER_STATES = frozenset({"ERROR", "EXPIRED"})
SUBCODE_PATTERN = re.compile(r"\b(\d{7})\b")


@dataclass(frozen=True)
class GraphResponse:
    body: dict[str, Any]
    headers: httpx.Headers


def graph_call(
    http: httpx.Client,
    platform: str,
    method: str,
    url: str,
    *,
    token: str,
    params: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    content: Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
    auth_scheme: str = "Bearer",
    timeout: httpx.Timeout = GRAPH_TIMEOUT,
) -> GraphResponse:
    """One Graph request; a classified PlatformError unless it succeeded."""
    request_headers = {"Authorization": f"{auth_scheme} {token}", **(headers or {})}
    try:
        response = http.request(
            method,
            url,
            params=params,
            data=data,
            content=content,
            headers=request_headers,
            timeout=timeout,
        )
    except httpx.TimeoutException as exc:
        raise TransientError(
            f"{platform} request timed out: {exc}", code=f"{platform}_timeout"
        ) from exc
    except httpx.TransportError as exc:
        raise TransientError(
            f"{platform} connection failed: {exc}", code=f"{platform}_network_error"
        ) from exc
    body = json_body(response)
    if response.is_success and "error" not in body and "debug_info" not in body:
        return GraphResponse(body, response.headers)
    raise classify_graph_error(platform, response.status_code, body, response.headers)


def subcode_in(detail: str) -> int | None:
    """Instagram's container `status` on ERROR carries an error subcode in its text."""
    match = SUBCODE_PATTERN.search(detail)
    return int(match.group(1)) if match else None


def classify_graph_error(
    platform: str, status: int, body: dict[str, Any], headers: httpx.Headers
) -> PlatformError:
    """Map a Graph error body (or a rupload `debug_info`) to a PlatformError."""
    error = body.get("error")
    if not isinstance(error, dict):
        return _classify_without_graph_error(platform, status, body)
    code = _int_or_none(error.get("code"))
    subcode = _int_or_none(error.get("error_subcode"))
    message = str(error.get("error_user_msg") or error.get("message") or "Graph API error")
    details = {
        "graph_code": code,
        "graph_subcode": subcode,
        "fbtrace_id": error.get("fbtrace_id"),
    }

    def build(cls: type[PlatformError], name: str, **extra: Any) -> PlatformError:
        text = f"{message} ({MEDIA_FETCH_HINT})" if name in MEDIA_FETCH_ERRORS else message
        return cls(text, code=f"{platform}_{name}", http_status=status, details=details, **extra)

    if code in AUTH_CODES:
        if subcode in REVOKED_SUBCODES or "REVOKED_ACCESS_TOKEN" in message:
            return build(AuthRevokedError, "auth_revoked")
        return build(AuthExpiredError, "auth_expired")
    if code in QUOTA_CODES:
        wait = buc_wait_seconds(headers)
        retry_at = datetime.now(UTC) + (timedelta(seconds=wait) if wait else QUOTA_WINDOW)
        return build(QuotaExhaustedError, "quota_exhausted", retry_at=retry_at)
    if subcode in PERMANENT_SUBCODES:
        return build(PermanentError, PERMANENT_SUBCODES[subcode])
    if code in PERMANENT_CODES and subcode is None:
        return build(PermanentError, PERMANENT_CODES[code])
    if code in THROTTLE_CODES:
        wait = buc_wait_seconds(headers) or THROTTLE_FALLBACK_SECONDS
        scope = "app" if code in APP_WIDE_THROTTLE_CODES else "account"
        return build(RateLimitedError, "rate_limited", retry_after=wait, scope=scope)
    if code in DUPLICATE_CODES or subcode in DUPLICATE_SUBCODES:
        return build(DuplicateError, "duplicate_post")
    if subcode in TRANSIENT_SUBCODES:
        return build(TransientError, TRANSIENT_SUBCODES[subcode])
    if code == 9007:
        return build(TransientError, "media_not_ready")
    if error.get("is_transient") is True or code in TRANSIENT_CODES or status >= 500:
        return build(TransientError, "temporary_error")
    if code == 368:
        return build(PermanentError, "policy_block")
    if code in PERMISSION_CODES:
        return build(PermanentError, "permission_denied")
    if code == 100:
        return build(PermanentError, "invalid_parameter")
    return build(PermanentError, "rejected")


def _classify_without_graph_error(
    platform: str, status: int, body: dict[str, Any]
) -> PlatformError:
    debug = body.get("debug_info")
    if isinstance(debug, dict):  # rupload's own error shape
        message = str(debug.get("message") or debug.get("type") or "upload failed")
        cls: type[PlatformError] = TransientError if debug.get("retriable") else PermanentError
        return cls(
            message,
            code=f"{platform}_upload_failed",
            http_status=status,
            details={"upload_error_type": debug.get("type")},
        )
    codes = ErrorCodes(
        rate_limited=f"{platform}_rate_limited",
        auth_expired=f"{platform}_auth_expired",
        server_error=f"{platform}_server_error",
        rejected=f"{platform}_http_{status}",
    )
    return classify_status(
        status,
        f"{platform} answered HTTP {status} without an error body",
        codes,
        rate_limit_wait=THROTTLE_FALLBACK_SECONDS,
        transient_statuses=(408, 425),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _header_json(headers: httpx.Headers, name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _buc_entries(headers: httpx.Headers) -> list[dict[str, Any]]:
    """The entries of X-Business-Use-Case-Usage: {"<id>": [{"type", "call_count", ...}]}."""
    usage = _header_json(headers, "x-business-use-case-usage")
    if not isinstance(usage, dict):
        return []
    return [
        entry
        for entries in usage.values()
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]


def buc_wait_seconds(headers: httpx.Headers) -> float | None:
    """estimated_time_to_regain_access (minutes) in seconds, the longest if several."""
    minutes = [
        float(entry["estimated_time_to_regain_access"])
        for entry in _buc_entries(headers)
        if isinstance(entry.get("estimated_time_to_regain_access"), int | float)
    ]
    longest = max(minutes, default=0.0)
    return longest * 60 if longest > 0 else None


def usage_from_headers(headers: httpx.Headers) -> dict[str, Any] | None:
    """Meta's usage headers as {"limit", "remaining", "reset_at"}: percentages of the
    budget (throttling starts at 100); reset_at is when access is regained."""
    percents: list[float] = []
    app_usage = _header_json(headers, "x-app-usage")
    buc = _buc_entries(headers)
    for usage in ([app_usage] if isinstance(app_usage, dict) else []) + buc:
        percents.extend(
            float(usage[key])
            for key in ("call_count", "total_time", "total_cputime")
            if isinstance(usage.get(key), int | float)
        )
    if not percents:
        return None
    wait = buc_wait_seconds(headers) or 0.0
    return {
        "limit": 100,
        "remaining": max(0, int(100 - max(percents))),
        "reset_at": int(time.time() + wait),
    }


def parse_graph_time(value: Any) -> float | None:
    """Graph timestamps look like 2026-09-11T10:00:00+0000."""
    if not isinstance(value, str):
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(value, pattern).timestamp()
        except ValueError:
            continue
    return None


def earliest_match(
    entries: list[dict[str, Any]],
    text_field: str | None,
    text: str,
    not_before: float,
    time_field: str = "timestamp",
) -> dict[str, Any] | None:
    """The earliest listed item with this text created at or after `not_before`."""
    candidates = []
    for entry in entries:
        created = parse_graph_time(entry.get(time_field))
        if created is None or created < not_before:
            continue
        if text_field is not None and (entry.get(text_field) or "").strip() != text.strip():
            continue
        candidates.append((created, entry))
    candidates.sort(key=lambda pair: pair[0])
    return candidates[0][1] if candidates else None


def lower_time_bound(request: PublishRequest, handle: dict[str, Any]) -> float:
    """Listing matches must be made at or after this attempt's irreversible start (or,
    without one, the start saved in the handle; else a lookback): an older post with
    the same text is never adopted."""
    started = request.irreversible_started_at
    if started is None:
        saved = handle.get("started_at") or handle.get("created_at")
        started = saved if isinstance(saved, int | float) else None
    return reconcile_since(started, MATCH_SLACK).timestamp()


def refresh_long_lived_token(adapter: Adapter, path: str, grant_type: str, token: str) -> TokenSet:
    """Instagram's ig_refresh_token and Threads' th_refresh_token: the long-lived token
    itself is exchanged for a new one; no separate refresh token exists."""
    try:
        response = graph_call(
            adapter.http,
            adapter.platform,
            "GET",
            adapter.url(path),
            token=token,
            params={"grant_type": grant_type, "access_token": token},
        )
    except (AuthExpiredError, PermanentError) as exc:
        raise AuthRevokedError(
            f"{adapter.platform} refused the token refresh: {exc.message}",
            code=f"{adapter.platform}_refresh_refused",
            http_status=exc.http_status,
            details=exc.details,
        ) from exc
    access_token = response.body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TransientError(
            f"{adapter.platform} refresh answered without an access_token",
            code=f"{adapter.platform}_refresh_malformed",
        )
    expires_in = _int_or_none(response.body.get("expires_in"))
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in) if expires_in else None
    return TokenSet(access_token=access_token, refresh_token=None, expires_at=expires_at)


@dataclass(frozen=True)
class ContainerPlan:
    """The containers one post needs: carousel children first, then the one to publish
    (its `children` parameter is filled in with the children's ids)."""

    parent: dict[str, str]
    children: list[dict[str, str]] = field(default_factory=list)


class GraphContainerAdapter(Adapter):
    """Instagram and Threads: create container(s), wait for FINISHED, publish, read the
    permalink. The container id is saved before publishing, so a retry or a reconcile
    asks the container (PUBLISHED means it already went out) instead of posting again."""

    api_version: str
    create_edge: str  # POST /{user}/<edge> creates a container
    publish_edge: str  # POST /{user}/<edge> with creation_id publishes it
    text_field: str  # "caption" / "text"
    status_field: str  # where the container's lifecycle state is
    status_detail_field: str  # where the failure detail is on ERROR
    permalink_fields: str

    def __init__(self, http: httpx.Client, base_url: str | None = None) -> None:
        super().__init__(http, base_url)
        self.poll_interval = CONTAINER_POLL_INTERVAL
        self.max_wait = CONTAINER_MAX_WAIT

    @abstractmethod
    def container_plan(self, request: PublishRequest) -> ContainerPlan:
        """The platform's container parameters for this request's text, media, settings."""

    @abstractmethod
    def container_failure(self, container_id: str, detail: str) -> PlatformError:
        """Classify a container that ended in ERROR, from its status detail."""

    def listing_edge(self, request: PublishRequest) -> str:
        """The listing of the account's recent posts of this kind."""
        return self.create_edge

    def listing_text_field(self, request: PublishRequest) -> str | None:
        """The listed field that holds our text, or None when the kind has no text."""
        return self.text_field

    # -- helpers -------------------------------------------------------------------------

    def api_host(self, account: AccountCredentials) -> str:
        """The host role this account's calls go to (Instagram: by the login it came
        through)."""
        return "api"

    def graph_url(self, path: str, account: AccountCredentials) -> str:
        return self.url(f"/{self.api_version}{path}", self.api_host(account))

    def call(
        self, method: str, path: str, account: AccountCredentials, **kwargs: Any
    ) -> GraphResponse:
        """One Graph call for the account: its host, its token."""
        return graph_call(
            self.http,
            self.platform,
            method,
            self.graph_url(path, account),
            token=account.access_token,
            **kwargs,
        )

    # Whether DELETE /{media-id} exists (Threads: yes; Instagram's API has none).
    deletable: bool = False

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        if not self.deletable:
            super().delete_post(account, platform_post_id)
        self.call("DELETE", f"/{platform_post_id}", account)

    def user_path(self, request: PublishRequest) -> str:
        """The account id for paths; `me` resolves to the token's user."""
        return f"/{request.account.external_id or 'me'}"

    def container_state(self, account: AccountCredentials, container_id: str) -> tuple[str, str]:
        fields = f"{self.status_field},{self.status_detail_field},id"
        body = self.call("GET", f"/{container_id}", account, params={"fields": fields}).body
        return str(body.get(self.status_field) or ""), str(body.get(self.status_detail_field) or "")

    def prepared_until(self, handle: dict[str, Any]) -> float | None:
        """A container (and its carousel children, made just before it) expires 24 h after
        the handle's `created_at`; publish() then builds them again."""
        if not handle.get("container_id") or not handle.get("created_at"):
            return None
        return float(handle["created_at"]) + CONTAINER_LIFETIME_SECONDS

    # -- publish -------------------------------------------------------------------------

    def check_prepared(self, request: PublishRequest) -> PublishRequest:
        handle = request.handle or {}
        if not resuming_prepared(request) or not handle.get("container_id"):
            return request
        state, _ = self.container_state(request.account, handle["container_id"])
        # Anything but FINISHED (expired, failed, still processing) is publish()'s to handle.
        return stamp_checked(request, state) if state == "FINISHED" else request

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        account = request.account
        checked = checked_state(request)
        handle = working_handle(request)
        state = ""
        if handle.get("container_id") and checked == "FINISHED":
            state = checked  # seen FINISHED by check_prepared a moment before the instant
        elif handle.get("container_id"):
            state, _ = self.container_state(account, handle["container_id"])
            if state == "PUBLISHED":
                return self._adopt_published(request, handle)
            if state in DEAD_CONTAINER_STATES:
                handle = {}  # expired (24 h) or failed: build it again
        # One bound for all the waiting this attempt does (children, then the container).
        deadline = time.monotonic() + self.max_wait
        if not handle.get("container_id"):
            handle = self._create_containers(request, context, handle, deadline)
            state = ""
        container_id = handle["container_id"]
        if state != "FINISHED":  # a prepared container was just seen FINISHED: publish now
            self._wait_finished(account, container_id, deadline)

        context.save_handle(handle)
        context.mark_irreversible()
        response = self.call(
            "POST",
            f"{self.user_path(request)}/{self.publish_edge}",
            account,
            data={"creation_id": container_id},
        )
        media_id = str(response.body.get("id") or "")
        if not media_id:
            # The guide: media_publish may succeed without an id; the container knows.
            return self._adopt_published(request, handle)
        handle["media_id"] = media_id
        context.save_handle(handle)
        return self._result(account, media_id, handle, response.headers)

    def _create_containers(
        self,
        request: PublishRequest,
        context: PublishContext,
        previous: dict[str, Any],
        deadline: float,
    ) -> dict[str, Any]:
        """Create the carousel children (or reuse an earlier attempt's), then the
        container to publish, saving the handle after each step."""
        account = request.account
        plan = self.container_plan(request)
        create_path = f"{self.user_path(request)}/{self.create_edge}"
        parent = dict(plan.parent)
        handle: dict[str, Any] = {"created_at": previous.get("created_at") or time.time()}
        if plan.children:
            child_ids = self._reusable_children(account, previous)
            if child_ids is None:
                child_ids = [
                    str(self.call("POST", create_path, account, data=child).body["id"])
                    for child in plan.children
                ]
            handle["children"] = child_ids
            context.save_handle(handle)
            for child_id in child_ids:
                self._wait_finished(account, child_id, deadline)
            parent["children"] = ",".join(child_ids)
        handle["container_id"] = str(
            self.call("POST", create_path, account, data=parent).body["id"]
        )
        context.save_handle(handle)
        return handle

    def _reusable_children(
        self, account: AccountCredentials, previous: dict[str, Any]
    ) -> list[str] | None:
        """Children an earlier attempt created, if none of them died since."""
        child_ids = previous.get("children")
        if not child_ids or previous.get("container_id"):
            return None
        for child_id in child_ids:
            state, _ = self.container_state(account, child_id)
            if state in DEAD_CONTAINER_STATES:
                return None
        return list(child_ids)

    def _wait_finished(
        self, account: AccountCredentials, container_id: str, deadline: float
    ) -> None:
        """Poll until FINISHED; still processing at the deadline is a TransientError and
        the saved handle lets the next attempt resume this very container."""
        state = ""

        def look() -> bool | None:
            nonlocal state
            state, detail = self.container_state(account, container_id)
            if state == "ERROR":
                raise self.container_failure(container_id, detail)
            if state == "EXPIRED":
                raise TransientError(
                    f"{self.platform} container {container_id} expired before publishing",
                    code=f"{self.platform}_container_expired",
                    details={"container_id": container_id},
                )
            return True if state in ("FINISHED", "PUBLISHED") else None

        poll_until(
            look,
            interval=self.poll_interval,
            deadline=deadline,
            still_processing=lambda: TransientError(
                f"{self.platform} container {container_id} is still "
                f"{state or 'processing'}; the next attempt resumes it",
                code=f"{self.platform}_media_not_ready",
                details={"container_id": container_id},
            ),
        )

    def _adopt_published(self, request: PublishRequest, handle: dict[str, Any]) -> PublishResult:
        if handle.get("media_id"):
            return self._result(request.account, str(handle["media_id"]), handle)
        entry = self._find_in_listing(request, handle)
        if entry is None:
            raise DuplicateError(
                f"{self.platform} container {handle.get('container_id')} is already published, "
                "but its post is not in the account's recent listing",
                code=f"{self.platform}_already_published",
                details={"container_id": handle.get("container_id")},
            )
        return self._listed_result(entry, handle)

    def _result(
        self,
        account: AccountCredentials,
        media_id: str,
        handle: dict[str, Any],
        headers: httpx.Headers | None = None,
    ) -> PublishResult:
        """Read the permalink from the API; the post is out even if that read fails."""
        details: dict[str, Any] = {"container_id": handle.get("container_id")}
        if headers is not None and (usage := usage_from_headers(headers)):
            details["rate_limit"] = usage
        try:
            body = self.call(
                "GET", f"/{media_id}", account, params={"fields": self.permalink_fields}
            ).body
        except PlatformError as exc:
            details["permalink_error"] = exc.code
            return PublishResult(platform_post_id=media_id, url=None, details=details)
        details.update({k: v for k, v in body.items() if k not in ("id", "permalink")})
        return PublishResult(platform_post_id=media_id, url=body.get("permalink"), details=details)

    @staticmethod
    def _listed_result(entry: dict[str, Any], handle: dict[str, Any]) -> PublishResult:
        return PublishResult(
            platform_post_id=str(entry["id"]),
            url=entry.get("permalink"),
            details={"container_id": handle.get("container_id"), "adopted": True},
        )

    # -- reconcile -----------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        """By the saved container's status; else among the account's recent posts."""
        account = request.account
        handle = dict(request.handle or {})
        if handle.get("media_id"):
            result = self._result(account, str(handle["media_id"]), handle)
            return ReconcileResult(ReconcileStatus.FOUND, result, "media id saved")
        container_id = handle.get("container_id")
        if container_id:
            state, _ = self.container_state(account, container_id)
            if state != "PUBLISHED":
                return ReconcileResult(
                    ReconcileStatus.NOT_FOUND, reason=f"container {container_id} is {state}"
                )
        entry = self._find_in_listing(request, handle)
        if entry is not None:
            return ReconcileResult(
                ReconcileStatus.FOUND, self._listed_result(entry, handle), "found in listing"
            )
        if container_id:
            return ReconcileResult(
                ReconcileStatus.UNKNOWN,
                reason=f"container {container_id} is PUBLISHED but its post is not listed",
            )
        return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching recent post")

    def _find_in_listing(
        self, request: PublishRequest, handle: dict[str, Any]
    ) -> dict[str, Any] | None:
        text_field = self.listing_text_field(request)
        fields = ",".join(f for f in ("id", text_field, "timestamp", "permalink") if f)
        body = self.call(
            "GET",
            f"{self.user_path(request)}/{self.listing_edge(request)}",
            request.account,
            params={"fields": fields, "limit": LISTING_PAGE_SIZE},
        ).body
        entries = [e for e in body.get("data") or [] if isinstance(e, dict) and e.get("id")]
        return earliest_match(entries, text_field, request.text, lower_time_bound(request, handle))
