"""What Instagram, Facebook Pages and Threads share: the Graph API's error model, its
usage headers and one HTTP call helper (the container → poll → publish flow they build on
it is in `_containers.py`).

Meta reports limits, auth failures and most publishing errors in the JSON body with HTTP
400, so classification reads `error.code`, `error.error_subcode` and `is_transient`
(docs/platforms.md, Meta's Graph API), never the status alone.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from workers.adapters.base import (
    Adapter,
    AuthExpiredError,
    AuthRevokedError,
    DuplicateError,
    PermanentError,
    PlatformError,
    PublishRequest,
    QuotaExhaustedError,
    RateLimitedError,
    TokenSet,
    TransientError,
    json_body,
)
from workers.adapters.kit import ErrorCodes, classify_status, reconcile_since

GRAPH_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

# Throttling codes: 4 app, 17 user, 32 Pages (user token), 613 custom,
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

# Subcodes whose class Meta's error tables pin down, by stable name.
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
LISTING_PAGE_SIZE = 50

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


def insight_values(body: dict[str, Any]) -> dict[str, int]:
    """An insights answer (`{"data": [{"name", "values": [{"value"}] | "total_value"}]}`)
    as {metric name: number}; a value broken down by type (reactions) is summed."""
    found: dict[str, int] = {}
    for entry in body.get("data") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        total = entry.get("total_value")
        values = entry.get("values") or []
        if isinstance(total, dict):
            value = total.get("value")
        elif values and isinstance(values[-1], dict):
            value = values[-1].get("value")
        else:
            continue
        if isinstance(value, dict):
            value = sum(v for v in value.values() if isinstance(v, int))
        if isinstance(value, int) and not isinstance(value, bool):
            found[str(entry["name"])] = value
    return found


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
