"""Retry policy: exponential backoff with full jitter, bounded attempts, per platform."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from app.config import Settings


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 5.0
    cap_seconds: float = 15 * 60.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^(n-1))]."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        return (rng or random).uniform(0, ceiling)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


# Video platforms process slowly and fail transiently more often: give them longer.
_PLATFORM_DEFAULTS = {
    "youtube": RetryPolicy(max_attempts=6, base_seconds=15.0, cap_seconds=30 * 60.0),
    "tiktok": RetryPolicy(max_attempts=6, base_seconds=15.0, cap_seconds=30 * 60.0),
}


def retry_policy(platform: str, settings: Settings) -> RetryPolicy:
    """Defaults per platform, overridden by CRIER_<PLATFORM>_RETRY_* and then CRIER_RETRY_*
    (as parsed into `settings`)."""
    policy = _PLATFORM_DEFAULTS.get(platform, RetryPolicy())
    own = settings.platform_retry.get(platform)
    values: dict[str, Any] = {}
    for name in ("max_attempts", "base_seconds", "cap_seconds"):
        for value in (getattr(own, name, None), getattr(settings, f"retry_{name}")):
            if value is not None:
                values[name] = value
                break
    return replace(policy, **values)
