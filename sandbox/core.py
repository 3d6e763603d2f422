"""The sandbox's shared machinery: ledger, faults, per-platform state, fault injection.

Each platform module (`sandbox/<platform>.py`) is plain handler functions and a `ROUTES`
table, served under `/<platform>` with the platform's real paths, and a `FaultStyle` that
renders injected faults the way that platform does (Meta reports limits in the body, X
in headers, ...). Handlers reach the state of the app serving the request through
`state`.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import filetype
import httpx
from flask import Blueprint, Response, current_app, g, has_request_context, jsonify, request
from werkzeug.local import LocalProxy

# Pulling media from a public URL, as Meta's crawler does: one GET, no redirects followed,
# a bounded wait and a bounded size (Threads' 1 GB video limit is the largest we need).
PULL_TIMEOUT_SECONDS = 10.0
PULL_MAX_BYTES = 1024**3
PULL_CHUNK_BYTES = 64 * 1024
META_CRAWLER_AGENT = "facebookexternalhit/1.1"
# Platforms whose answers under a post are comments, not posts of their own.
COMMENTING_PLATFORMS = frozenset({"instagram", "facebook", "linkedin", "youtube"})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class PlatformFaults:
    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 500
    rate_limit_every: int = 0  # every Nth publishing request answers "rate limited"
    retry_after: int = 30
    expired_tokens: set[str] = field(default_factory=set)
    revoked_tokens: set[str] = field(default_factory=set)
    # Refresh tokens whose exchange answers 200 with a body that is not a token (X).
    malformed_refresh_tokens: set[str] = field(default_factory=set)
    processing_seconds: float = 0.0  # slow media processing (containers, uploads)
    # Drop the response of the irreversible call after doing it (a "lost response").
    lose_response_every: int = 0
    # Download media from the URLs a post names, as the platform does (off by default so
    # adapter tests can name URLs nobody serves).
    fetch_media: bool = False
    # The OAuth token endpoints answer this HTTP status with an error (connect flows).
    oauth_error_status: int = 0
    # The authorize URL answers a consent page to fill in rather than consenting at once
    # (sandbox/consent.py).
    consent_page: bool = False
    # Insights calls (sandbox/insights.py): every Nth answers "rate limited"; these tokens
    # lack the permission to read insights.
    metrics_rate_limit_every: int = 0
    metrics_forbidden_tokens: set[str] = field(default_factory=set)
    counter: int = 0
    metrics_counter: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any], fetch_media_default: bool = False) -> PlatformFaults:
        return cls(
            latency_ms=int(data.get("latency_ms", 0)),
            error_rate=float(data.get("error_rate", 0.0)),
            error_status=int(data.get("error_status", 500)),
            rate_limit_every=int(data.get("rate_limit_every", 0)),
            retry_after=int(data.get("retry_after", 30)),
            expired_tokens=set(data.get("expired_tokens", [])),
            revoked_tokens=set(data.get("revoked_tokens", [])),
            malformed_refresh_tokens=set(data.get("malformed_refresh_tokens", [])),
            processing_seconds=float(data.get("processing_seconds", 0.0)),
            lose_response_every=int(data.get("lose_response_every", 0)),
            fetch_media=_as_bool(data.get("fetch_media", fetch_media_default)),
            oauth_error_status=int(data.get("oauth_error_status", 0)),
            consent_page=_as_bool(data.get("consent_page", False)),
            metrics_rate_limit_every=int(data.get("metrics_rate_limit_every", 0)),
            metrics_forbidden_tokens=set(data.get("metrics_forbidden_tokens", [])),
        )


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass
class FaultStyle:
    """How a platform answers injected faults, in its own shapes and headers."""

    rate_limited: Callable[[int], Response]
    error: Callable[[int], Response]
    auth_expired: Callable[[], Response]
    auth_revoked: Callable[[], Response]


class SandboxState:
    """Everything the sandbox remembers; one lock, since requests run on threads."""

    def __init__(self, fetch_media_default: bool = False) -> None:
        # What `fetch_media` is for a platform whose faults do not say (also after reset).
        self.fetch_media_default = fetch_media_default
        self.lock = threading.RLock()
        # Bumped by each reset: a request that began before one (a cut-off worker's, held
        # by added latency) is answered, but leaves no trace in the fresh ledger.
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.ledger: list[dict[str, Any]] = []
            # The ledger's entries by (platform, post id), and by (platform, account) in
            # the order they arrived: a platform finds a post, or an account's posts,
            # without reading every post it holds.
            self.ledger_index: dict[tuple[str, str], dict[str, Any]] = {}
            self.ledger_by_account: dict[tuple[str, str], list[dict[str, Any]]] = {}
            # One entry per upload session opened (media upload, video container, ...).
            self.uploads: list[dict[str, Any]] = []
            self.faults: dict[str, PlatformFaults] = {}
            # Free-form per-platform state (containers, upload sessions, tokens, ...).
            self.platform: dict[str, dict[str, Any]] = {}
            # Publishing requests that arrived, per platform, counted before any added
            # latency: a test sees a request in flight before it is answered.
            self.arrived: dict[str, int] = {}
            self.id_counter = int(time.time() * 1000) % 10**9 * 1000
            # The sandbox's clock (POST /_clock): real time moved on by `clock_offset`
            # seconds, so posts' insights age without waiting (sandbox/insights.py).
            self.clock_offset = 0.0
            self.started_at = time.time()
            # Every insights answer: platform, post id, the age it was read at, figures.
            self.readings: list[dict[str, Any]] = []

    def now(self) -> float:
        """The sandbox clock, in unix seconds."""
        with self.lock:
            return time.time() + self.clock_offset

    def next_id(self) -> int:
        with self.lock:
            self.id_counter += 1
            return self.id_counter

    def store(self, platform: str) -> dict[str, Any]:
        with self.lock:
            return self.platform.setdefault(platform, {})

    def faults_for(self, platform: str) -> PlatformFaults:
        with self.lock:
            return self.faults.setdefault(
                platform, PlatformFaults(fetch_media=self.fetch_media_default)
            )

    def set_faults(self, platform: str, config: dict[str, Any]) -> None:
        with self.lock:
            self.faults[platform] = PlatformFaults.from_json(config, self.fetch_media_default)

    def record(
        self,
        platform: str,
        account: str,
        post_id: str,
        text: str,
        media: list[dict[str, Any]],
        params: dict[str, Any],
        reply_to: str | None = None,
    ) -> dict[str, Any]:
        """One post, reply or comment the platform accepted; `reply_to`: the id it answers
        (a thread item's or a comment's parent), None for a post."""
        entry = {
            "platform": platform,
            "account": account,
            "id": post_id,
            "text": text,
            "media": media,
            "params": params,
            "received_at": now_iso(),
            "reply_to": reply_to,
        }
        with self.lock:
            if has_request_context() and g.get("sandbox_generation", self.generation) != (
                self.generation
            ):
                return entry
            self.ledger.append(entry)
            self.ledger_index.setdefault((platform, str(post_id)), entry)
            self.ledger_by_account.setdefault((platform, account), []).append(entry)
        return entry

    def note_upload(self, platform: str, kind: str, upload_id: str) -> None:
        with self.lock:
            self.uploads.append(
                {"platform": platform, "kind": kind, "id": upload_id, "opened_at": now_iso()}
            )

    def find_entry(self, platform: str, post_id: str) -> dict[str, Any] | None:
        """The ledger entry of a post, reply or comment still on the platform."""
        with self.lock:
            entry = self.ledger_index.get((platform, str(post_id)))
        return None if entry is None or "deleted_at" in entry else entry

    def replies_to(self, platform: str, parent_id: str) -> list[dict[str, Any]]:
        """The replies or comments under one post, oldest first."""
        with self.lock:
            return [
                e
                for e in self.ledger
                if e["platform"] == platform
                and e.get("reply_to") == parent_id
                and "deleted_at" not in e
            ]

    def posts_of(self, platform: str, account: str) -> list[dict[str, Any]]:
        """The account's posts still on the platform (deleted ones stay in the ledger);
        replies where replies are posts (X, Threads), never comments."""
        with self.lock:
            return [
                e
                for e in self.ledger_by_account.get((platform, account), ())
                if "deleted_at" not in e
                and not (e.get("reply_to") and platform in COMMENTING_PLATFORMS)
            ]

    def delete(self, platform: str, post_id: str, account: str | None = None) -> bool:
        """Take a post down: its ledger entry gains `deleted_at`. False if there is none
        (or it belongs to another account)."""
        with self.lock:
            entry = self.ledger_index.get((platform, str(post_id)))
            if entry is None or "deleted_at" in entry:
                return False
            if account is not None and entry["account"] != account:
                return False
            entry["deleted_at"] = now_iso()
            return True


def _serving_state() -> SandboxState:
    state: SandboxState = current_app.extensions["sandbox.state"]
    return state


# The state of the sandbox app serving the current request. Handlers are module-level
# functions; each app (the tests start several) keeps its own state.
state: SandboxState = LocalProxy(_serving_state)  # type: ignore[assignment]


@dataclass(frozen=True)
class Route:
    """One row of a platform's routing table: method, the platform's path, handler."""

    method: str
    path: str
    view: Callable[..., Response]
    endpoint: str = ""


def blueprint(name: str, routes: Iterable[Route]) -> Blueprint:
    """A platform's blueprint from its routing table."""
    bp = Blueprint(name, __name__)
    for route in routes:
        endpoint = route.endpoint or route.view.__name__
        bp.add_url_rule(route.path, endpoint, route.view, methods=[route.method])
    return bp


def inject_faults(
    state: SandboxState, platform: str, style: FaultStyle, token: str | None, publishing: bool
) -> Response | None:
    """Apply the configured faults to one request; a Response means answer with it."""
    faults = state.faults_for(platform)
    if publishing:
        with state.lock:
            state.arrived[platform] = state.arrived.get(platform, 0) + 1
    if faults.latency_ms:
        time.sleep(faults.latency_ms / 1000)
    if token is not None:
        if token in faults.revoked_tokens:
            return style.auth_revoked()
        if token in faults.expired_tokens:
            return style.auth_expired()
    if not publishing:
        return None
    with state.lock:
        faults.counter += 1
        count = faults.counter
    if faults.rate_limit_every and count % faults.rate_limit_every == 0:
        return style.rate_limited(faults.retry_after)
    if faults.error_rate and random.random() < faults.error_rate:
        return style.error(faults.error_status)
    return None


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None without one."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return header.removeprefix("Bearer ").strip() or None


def check_faults_then_token(
    state: SandboxState,
    platform: str,
    style: FaultStyle,
    token: str | None,
    publishing: bool,
    missing_token: Callable[[], Response],
) -> Response | None:
    """Injected faults first, then a missing token: the order Graph, TikTok and YouTube
    answer in (X and LinkedIn refuse a missing token before anything else)."""
    fault = inject_faults(state, platform, style, token, publishing)
    if fault is not None:
        return fault
    return missing_token() if not token else None


def authorize_bearer(
    state: SandboxState,
    platform: str,
    style: FaultStyle,
    publishing: bool,
    missing_token: Callable[[], Response],
) -> tuple[str | None, Response | None]:
    """(token, None) for a request that may proceed, else (None, the answer to give)."""
    token = bearer_token()
    failure = check_faults_then_token(state, platform, style, token, publishing, missing_token)
    if failure is not None:
        return None, failure
    return token, None


def should_lose_response(state: SandboxState, platform: str) -> bool:
    faults = state.faults_for(platform)
    if not faults.lose_response_every:
        return False
    with state.lock:
        key = "_lost_counter"
        store = state.store(platform)
        store[key] = store.get(key, 0) + 1
        return store[key] % faults.lose_response_every == 0


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


# -- pulling media from a public URL ---------------------------------------------------


@dataclass(frozen=True)
class PulledMedia:
    """What a platform learns by downloading a media URL."""

    url: str
    status: int
    content_type: str
    size: int
    sha256: str

    def ledger_fields(self) -> dict[str, Any]:
        return {"content_type": self.content_type, "bytes": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class PullFailure:
    """Why a pull failed. `wrong_kind`: the download worked, but it is not the declared
    kind (an image_url serving a video), which platforms refuse as a format error."""

    reason: str
    wrong_kind: bool = False

    def __str__(self) -> str:
        return self.reason


def media_kind(content_type: str) -> str | None:
    major = content_type.split("/", 1)[0]
    return major if major in ("image", "video") else None


def sniffed_media_kind(data: bytes) -> str | None:
    """The kind (image, video, ...) the bytes' magic numbers say, as an upload host sees it."""
    mime = filetype.guess_mime(data)
    return mime.split("/")[0] if mime else None


def pull_media(
    url: str,
    expect_kind: str,
    *,
    user_agent: str = META_CRAWLER_AGENT,
    timeout: float = PULL_TIMEOUT_SECONDS,
    max_bytes: int = PULL_MAX_BYTES,
) -> PulledMedia | PullFailure:
    """GET `url` like a platform's crawler: no redirects, no auth, bounded time and size.
    Success needs a 2xx answer whose Content-Type is of `expect_kind` (image or video)."""
    deadline = time.monotonic() + timeout
    digest = hashlib.sha256()
    size = 0
    try:
        with httpx.stream(
            "GET",
            url,
            headers={"User-Agent": user_agent, "Accept": "*/*"},
            timeout=timeout,
            follow_redirects=False,
        ) as response:
            if response.is_redirect:
                where = response.headers.get("location", "?")
                return PullFailure(
                    f"HTTP {response.status_code} redirect to {where} (not followed)"
                )
            if not response.is_success:
                return PullFailure(f"HTTP {response.status_code}")
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_kind(content_type) != expect_kind:
                return PullFailure(
                    f"expected {expect_kind}, the URL served {content_type or 'no Content-Type'}",
                    wrong_kind=True,
                )
            for chunk in response.iter_bytes(PULL_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    return PullFailure(f"larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    return PullFailure(f"download took longer than {timeout:g} s")
                digest.update(chunk)
            status = response.status_code
    except httpx.TimeoutException:
        return PullFailure(f"timed out after {timeout:g} s")
    except (httpx.HTTPError, ValueError) as exc:  # ValueError: a malformed URL
        return PullFailure(f"{type(exc).__name__}: {exc}")
    if size == 0:
        return PullFailure("the URL served no bytes")
    return PulledMedia(url, status, content_type, size, digest.hexdigest())


def media_entry(
    state: SandboxState, platform: str, kind: str, url: str
) -> dict[str, Any] | PullFailure:
    """The ledger's media entry for a URL the platform pulls: with `fetch_media` on, the
    file is downloaded first and the entry carries its content type, size and sha256."""
    entry: dict[str, Any] = {"kind": kind, "url": url}
    if not state.faults_for(platform).fetch_media:
        return entry
    pulled = pull_media(url, kind)
    if isinstance(pulled, PullFailure):
        return pulled
    return {**entry, **pulled.ledger_fields()}
