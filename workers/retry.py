"""Retry policy: exponential backoff with full jitter, bounded attempts, per platform."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass


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


def retry_policy(platform: str) -> RetryPolicy:
    """Defaults per platform, overridable by CRIER_RETRY_* and CRIER_<PLATFORM>_RETRY_*."""
    policy = _PLATFORM_DEFAULTS.get(platform, RetryPolicy())
    values = {
        "max_attempts": policy.max_attempts,
        "base_seconds": policy.base_seconds,
        "cap_seconds": policy.cap_seconds,
    }
    for name in values:
        for key in (
            f"CRIER_{platform.upper()}_RETRY_{name.upper()}",
            f"CRIER_RETRY_{name.upper()}",
        ):
            raw = os.environ.get(key)
            if raw:
                values[name] = type(values[name])(raw)
                break
    return RetryPolicy(**values)  # type: ignore[arg-type]
