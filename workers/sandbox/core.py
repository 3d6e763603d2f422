"""The sandbox's shared machinery: ledger, faults, per-platform state, fault injection.

Each platform module (`workers/sandbox/<platform>.py`) defines a blueprint served under
`/<platform>` with the platform's real paths, and a `FaultStyle` that renders injected
faults the way that platform does (Meta reports limits in the body, X in headers, ...).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify


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
    processing_seconds: float = 0.0  # slow media processing (containers, uploads)
    # Drop the response of the irreversible call after doing it (a "lost response").
    lose_response_every: int = 0
    counter: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlatformFaults:
        return cls(
            latency_ms=int(data.get("latency_ms", 0)),
            error_rate=float(data.get("error_rate", 0.0)),
            error_status=int(data.get("error_status", 500)),
            rate_limit_every=int(data.get("rate_limit_every", 0)),
            retry_after=int(data.get("retry_after", 30)),
            expired_tokens=set(data.get("expired_tokens", [])),
            revoked_tokens=set(data.get("revoked_tokens", [])),
            processing_seconds=float(data.get("processing_seconds", 0.0)),
            lose_response_every=int(data.get("lose_response_every", 0)),
        )


@dataclass
class FaultStyle:
    """How a platform answers injected faults, in its own shapes and headers."""

    rate_limited: Callable[[int], Response]
    error: Callable[[int], Response]
    auth_expired: Callable[[], Response]
    auth_revoked: Callable[[], Response]


class SandboxState:
    """Everything the sandbox remembers; one lock, since requests run on threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.ledger: list[dict[str, Any]] = []
            self.faults: dict[str, PlatformFaults] = {}
            # Free-form per-platform state (containers, upload sessions, tokens, ...).
            self.platform: dict[str, dict[str, Any]] = {}
            self.id_counter = int(time.time() * 1000) % 10**9 * 1000

    def next_id(self) -> int:
        with self.lock:
            self.id_counter += 1
            return self.id_counter

    def store(self, platform: str) -> dict[str, Any]:
        with self.lock:
            return self.platform.setdefault(platform, {})

    def faults_for(self, platform: str) -> PlatformFaults:
        with self.lock:
            return self.faults.setdefault(platform, PlatformFaults())

    def record(
        self,
        platform: str,
        account: str,
        post_id: str,
        text: str,
        media: list[dict[str, Any]],
        params: dict[str, Any],
    ) -> dict[str, Any]:
        entry = {
            "platform": platform,
            "account": account,
            "id": post_id,
            "text": text,
            "media": media,
            "params": params,
            "received_at": now_iso(),
        }
        with self.lock:
            self.ledger.append(entry)
        return entry

    def posts_of(self, platform: str, account: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.ledger if e["platform"] == platform and e["account"] == account]


def inject_faults(
    state: SandboxState, platform: str, style: FaultStyle, token: str | None, publishing: bool
) -> Response | None:
    """Apply the configured faults to one request; a Response means answer with it."""
    faults = state.faults_for(platform)
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
