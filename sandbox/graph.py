"""Graph-API-style pieces the Instagram, Facebook and Threads sandboxes share: the error
body, the usage headers, parameters in any of Graph's three styles, token handling and the
guard every call starts with, and the container lifecycle (IN_PROGRESS → FINISHED →
PUBLISHED, or EXPIRED after 24 h) whose handlers Instagram and Threads both serve
(`sandbox._containers`)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, request

from sandbox.core import (
    FaultStyle,
    PullFailure,
    SandboxState,
    check_faults_then_token,
    inject_faults,
    json_response,
    should_lose_response,
)

DAY_SECONDS = 24 * 3600
CONTAINER_LIFETIME_SECONDS = DAY_SECONDS
LONG_LIVED_TOKEN_SECONDS = 5184000  # 60 days
VERSION_PATTERN = re.compile(r"v\d+\.\d+")
MEDIA_NOT_READY = "The media is not ready for publishing, please wait for a moment"
_SHORTCODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def graph_time(timestamp: float) -> str:
    """Graph's timestamp format: 2026-09-11T10:00:00+0000."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(timestamp))


def fbtrace_id() -> str:
    return secrets.token_urlsafe(8)


def graph_error(
    message: str,
    code: int,
    subcode: int | None = None,
    *,
    status: int = 400,
    is_transient: bool = False,
    user_title: str | None = None,
    user_msg: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["is_transient"] = is_transient
    if user_title:
        error["error_user_title"] = user_title
    if user_msg:
        error["error_user_msg"] = user_msg
    error["fbtrace_id"] = fbtrace_id()
    return json_response({"error": error}, status, headers)


def invalid_parameter(message: str, subcode: int | None = None, code: int = 100) -> Response:
    return graph_error(message, code, subcode)


def object_not_found(object_id: str, method: str = "get") -> Response:
    return graph_error(
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        100,
        33,
    )


def bad_version(version: str) -> Response | None:
    if VERSION_PATTERN.fullmatch(version):
        return None
    return graph_error(f"Unknown path components: /{version}", 2500)


def graph_params() -> dict[str, Any]:
    """Graph takes parameters as query string, form fields or a JSON body, all at once."""
    params: dict[str, Any] = dict(request.args.items())
    params.update(request.form.items())
    body = request.get_json(silent=True) if request.is_json else None
    if isinstance(body, dict):
        params.update(body)
    return params


def access_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    token = graph_params().get("access_token")
    return str(token) if token else None


def token_user_id(token: str | None) -> str:
    """A stable numeric account id for `me`, derived from the token."""
    digest = hashlib.sha256((token or "").encode()).hexdigest()
    return "1784" + str(int(digest[:15], 16))[:12].rjust(12, "0")


def resolve_user(path_id: str, token: str | None) -> str:
    return token_user_id(token) if path_id == "me" else path_id


def account_of_request(account_arg: str) -> str:
    """The account a request acts for: the one its path names in `account_arg` (user_id,
    page_id; `me` is the token's), else the token's own."""
    account_id = (request.view_args or {}).get(account_arg)
    return resolve_user(account_id, access_token()) if account_id else token_user_id(access_token())


def missing_token() -> Response:
    return graph_error("An access token is required to request this resource.", 104)


# A host's own rule on the token it was given, after the usual checks: (token, the account
# the path names or None) → None to proceed, else the answer to give.
TokenRule = Callable[[str, str | None], Response | None]


@dataclass(frozen=True)
class GraphGuard:
    """The checks every Graph call of a platform starts with, in Graph's order: the version
    in the path, the injected faults, then that a token came at all (and, where the host
    has one, its `token_rule`)."""

    state: SandboxState
    platform: str
    style: FaultStyle
    token_rule: TokenRule | None = None

    def check(
        self, version: str | None, publishing: bool, account: str | None = None
    ) -> tuple[str, Response | None]:
        """(token, None) when the call may proceed, else (token or "", the answer to give)."""
        token = access_token()
        failure = (bad_version(version) if version else None) or check_faults_then_token(
            self.state, self.platform, self.style, token, publishing, missing_token
        )
        if failure is None and self.token_rule is not None:
            failure = self.token_rule(token or "", account)
        return token or "", failure

    def check_account(
        self, version: str, account_id: str, publishing: bool
    ) -> tuple[str, Response | None]:
        """As `check`, but yields the account the path names (`me`: the token's)."""
        owner = resolve_user(account_id, access_token())
        _, failure = self.check(version, publishing, owner)
        return owner, failure


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    return None


def parse_json_param(value: Any) -> Any:
    """Object- or list-valued parameters arrive as JSON text in query/form style."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def parse_id_list(value: Any) -> list[str]:
    """`children` is a comma-separated list (or a JSON array)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if not value:
        return []
    text = str(value).strip()
    if text.startswith("["):
        parsed = parse_json_param(text)
        return [str(v) for v in parsed] if isinstance(parsed, list) else []
    return [part.strip() for part in text.split(",") if part.strip()]


def is_public_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def requested_fields(default: tuple[str, ...]) -> list[str]:
    raw = request.args.get("fields")
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else list(default)


def shortcode(numeric_id: str) -> str:
    number = int(hashlib.sha256(numeric_id.encode()).hexdigest()[:16], 16)
    chars = []
    while number and len(chars) < 11:
        number, digit = divmod(number, 64)
        chars.append(_SHORTCODE_ALPHABET[digit])
    return "".join(chars) or "A"


def buc_usage(
    object_id: str, usage_type: str, percent: int, eta_minutes: int = 0
) -> dict[str, str]:
    """X-Business-Use-Case-Usage: percentages of the budget, wait in minutes."""
    entry = {
        "type": usage_type,
        "call_count": percent,
        "total_cputime": max(1, percent // 4),
        "total_time": max(1, percent // 3),
        "estimated_time_to_regain_access": eta_minutes,
    }
    return {"X-Business-Use-Case-Usage": json.dumps({object_id: [entry]})}


def app_usage(percent: int) -> dict[str, str]:
    return {
        "X-App-Usage": json.dumps(
            {"call_count": percent, "total_time": max(1, percent // 3), "total_cputime": 1}
        )
    }


def wait_minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def lost_response() -> Response:
    """The action happened, but the caller hears a gateway timeout."""
    return graph_error(
        "An unexpected error has occurred. Please retry your request later.",
        2,
        status=504,
        is_transient=True,
    )


def answer_published(
    state: SandboxState,
    platform: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Response:
    """The answer to a call that has just published: a gateway timeout instead when the
    `lose_response_every` fault drops it (the post exists all the same)."""
    if should_lose_response(state, platform):
        return lost_response()
    return json_response(body, headers=headers)


def meta_fault_style(
    throttle_code: int, throttle_message: str, usage_type: str, account_arg: str
) -> FaultStyle:
    """Meta answers limits with HTTP 400 and the code in the body, plus usage headers for
    the account the path names in `account_arg` (code 4 is app-wide: X-App-Usage at 100
    too)."""

    def rate_limited(retry_after: int) -> Response:
        account = account_of_request(account_arg)
        headers = buc_usage(account, usage_type, 100, wait_minutes(retry_after))
        if throttle_code == 4:
            headers.update(app_usage(100))
        return graph_error(throttle_message, throttle_code, is_transient=True, headers=headers)

    def error(status: int) -> Response:
        if status >= 500:
            return graph_error(
                "An unexpected error has occurred. Please retry your request later.",
                2,
                status=status,
                is_transient=True,
            )
        return graph_error("(#100) Invalid parameter", 100, status=status)

    def auth_expired() -> Response:
        return graph_error(
            "Error validating access token: Session has expired on "
            f"{time.strftime('%A, %d-%b-%y %H:%M:%S PDT', time.gmtime(time.time() - 3600))}.",
            190,
            463,
        )

    def auth_revoked() -> Response:
        return graph_error(
            "Error validating access token: The session has been invalidated because the user "
            "changed their password or Facebook has changed the session for security reasons.",
            190,
            460,
        )

    return FaultStyle(rate_limited, error, auth_expired, auth_revoked)


def refresh_long_lived_token(
    state: SandboxState, platform: str, style: FaultStyle, grant_type: str, prefix: str
) -> Response:
    """GET /refresh_access_token (Instagram ig_refresh_token, Threads th_refresh_token)."""
    injected = inject_faults(state, platform, style, None, publishing=False)
    if injected is not None:
        return injected
    params = graph_params()
    token = params.get("access_token") or access_token()
    if not token:
        return missing_token()
    if params.get("grant_type") != grant_type:
        return invalid_parameter(f"Unsupported grant_type; expected {grant_type}")
    if token in state.faults_for(platform).revoked_tokens:
        return style.auth_revoked()
    return json_response(
        {
            "access_token": prefix + secrets.token_urlsafe(24),
            "token_type": "bearer",
            "expires_in": LONG_LIVED_TOKEN_SECONDS,
        }
    )


def publishes_in_window(state: SandboxState, platform: str, account: str) -> list[float]:
    """When this account published within the rolling 24 h (oldest first)."""
    with state.lock:
        stamps = state.store(platform).setdefault("publish_times", {}).setdefault(account, [])
        cutoff = time.time() - DAY_SECONDS
        stamps[:] = [t for t in stamps if t > cutoff]
        return list(stamps)


def note_publish(state: SandboxState, platform: str, account: str) -> None:
    with state.lock:
        state.store(platform).setdefault("publish_times", {}).setdefault(account, []).append(
            time.time()
        )


def quota_exhausted(
    account: str, usage_type: str, oldest: float, cap: int, subcode: int | None = 2207042
) -> Response:
    """The posts-per-24 h cap: code 9, with the wait until the oldest post leaves."""
    eta = wait_minutes(oldest + DAY_SECONDS - time.time())
    return graph_error(
        "Application request limit reached",
        9,
        subcode,
        user_title="Publishing limit reached",
        user_msg=f"You reached maximum number of posts that is allowed to be published "
        f"by the API ({cap} in 24 hours).",
        headers=buc_usage(account, usage_type, 100, eta),
    )


# -- pulled media (Instagram, Threads) -----------------------------------------------------
# Meta "cURLs" image_url / video_url. What it answers when that fails is kept as a dict,
# so it can be sent at once (images) or stored on a container and sent when the container
# is published (videos, which are pulled while the container processes).


def media_fetch_failure(url: str, failure: PullFailure) -> dict[str, Any]:
    """9004 / 2207052: the URL could not be downloaded (docs/platforms.md, Instagram)."""
    return {
        "message": "Only photo or video can be accepted as media type.",
        "code": 9004,
        "subcode": 2207052,
        "user_title": "Media download has failed.",
        "user_msg": f"The media could not be fetched from this uri: {url} ({failure})",
    }


def pull_failure(url: str, kind: str, failure: PullFailure) -> dict[str, Any]:
    """The Graph error for a failed pull: a download failure, or a file of the wrong kind
    (36001 / 2207005 for an image, 352 / 2207026 for a video)."""
    if not failure.wrong_kind:
        return media_fetch_failure(url, failure)
    if kind == "image":
        return {
            "message": "The image format is not supported.",
            "code": 36001,
            "subcode": 2207005,
            "user_title": "Unsupported image format",
            "user_msg": f"The file at {url} is not a supported image ({failure}).",
        }
    return {
        "message": "The video format is not supported. Please check spec for supported "
        "video formats.",
        "code": 352,
        "subcode": 2207026,
        "user_title": "Unsupported video format",
        "user_msg": f"The file at {url} is not a supported video ({failure}).",
    }


def graph_failure(failure: dict[str, Any]) -> Response:
    return graph_error(
        failure["message"],
        failure["code"],
        failure.get("subcode"),
        user_title=failure.get("user_title"),
        user_msg=failure.get("user_msg"),
    )


def failed_container_error(
    state: SandboxState, platform: str, container: dict[str, Any]
) -> Response | None:
    """Publishing a container whose media (or a child's) could not be pulled fails with
    the pull's error."""
    children = [get_container(state, platform, cid) for cid in container.get("children", [])]
    for item in (container, *children):
        if item is not None and item.get("failure"):
            return graph_failure(item["failure"])
    return None


# -- containers (Instagram, Threads) ----------------------------------------------------


def new_container(
    state: SandboxState, platform: str, owner: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """Store a container; processing takes the platform's `processing_seconds` fault."""
    now = time.time()
    container = {
        "id": str(state.next_id()),
        "owner": owner,
        "created_at": now,
        "ready_at": now + state.faults_for(platform).processing_seconds,
        "media_id": None,
        **fields,
    }
    with state.lock:
        state.store(platform).setdefault("containers", {})[container["id"]] = container
    return container


def get_container(state: SandboxState, platform: str, container_id: str) -> dict[str, Any] | None:
    with state.lock:
        return state.store(platform).setdefault("containers", {}).get(container_id)


def container_status(state: SandboxState, platform: str, container: dict[str, Any]) -> str:
    if container["media_id"]:
        return "PUBLISHED"
    now = time.time()
    if now - container["created_at"] > CONTAINER_LIFETIME_SECONDS:
        return "EXPIRED"
    if container.get("error"):
        return "ERROR"
    children = [get_container(state, platform, cid) for cid in container.get("children", [])]
    child_states = [container_status(state, platform, c) for c in children if c]
    if "ERROR" in child_states:
        return "ERROR"
    if now < container["ready_at"] or "IN_PROGRESS" in child_states:
        return "IN_PROGRESS"
    return "FINISHED"


def carousel_children(
    state: SandboxState, platform: str, owner: str, child_ids: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | Response:
    """A carousel's media (its children's, pulled when they were made) and its children's
    params. Each child must be one of the owner's carousel items, not failed, expired or
    already published."""
    children = []
    for child_id in child_ids:
        child = get_container(state, platform, child_id)
        if (
            child is None
            or child["owner"] != owner
            or not child["params"].get("is_carousel_item")
            or container_status(state, platform, child) in ("ERROR", "EXPIRED", "PUBLISHED")
        ):
            return invalid_parameter(f"The carousel item {child_id} is not a valid child")
        children.append(child)
    media = [item for child in children for item in child["media"]]
    return media, [child["params"] for child in children]


def store_media(state: SandboxState, platform: str, media: dict[str, Any]) -> None:
    with state.lock:
        state.store(platform).setdefault("media", {})[media["id"]] = media


def get_media(state: SandboxState, platform: str, media_id: str) -> dict[str, Any] | None:
    with state.lock:
        return state.store(platform).setdefault("media", {}).get(media_id)


def media_of(state: SandboxState, platform: str, owner: str) -> list[dict[str, Any]]:
    """The account's published media, newest first."""
    with state.lock:
        items = [m for m in state.store(platform).setdefault("media", {}).values()]
    return sorted(
        (m for m in items if m["owner"] == owner), key=lambda m: m["created_at"], reverse=True
    )


def pick_fields(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Graph returns the requested fields that exist, and always the id."""
    picked = {f: item[f] for f in fields if f in item and item[f] is not None}
    picked["id"] = item["id"]
    return picked


def listing(items: list[dict[str, Any]], fields: list[str]) -> Response:
    limit = request.args.get("limit", type=int) or 25
    page = [pick_fields(item, fields) for item in items[:limit]]
    body: dict[str, Any] = {"data": page}
    if page:
        body["paging"] = {"cursors": {"before": page[0]["id"], "after": page[-1]["id"]}}
    return json_response(body)


# -- the container API's handlers (Instagram, Threads) -------------------------------------
