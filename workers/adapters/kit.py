"""The platform kit: what every adapter does the same way, in one place.

A platform module states only what differs: its endpoints, the signals in its error
answers (codes, reasons, headers) and its limits. The rest is here: the common reading
of an HTTP status (429 rate limited, 401 auth, 5xx transient, any other 4xx permanent
with the platform's message), the wait a rate-limited answer names, the window a
reconcile looks back over, streaming a file from disk in blocks or byte ranges, and
polling a platform's processing until it ends or the attempt's bound runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from workers.adapters.base import (
    AuthExpiredError,
    PermanentError,
    PlatformError,
    RateLimitedError,
    TransientError,
)

T = TypeVar("T")

# Without a saved start, how far back reconcile looks for the post among recent ones.
RECONCILE_LOOKBACK = timedelta(hours=24)
# Files are read and sent in blocks of this size, never held whole in memory.
READ_BLOCK_BYTES = 1024 * 1024


# -- error classification -------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCodes:
    """The stable codes a platform gives the common error classes."""

    rate_limited: str
    auth_expired: str
    server_error: str
    rejected: str

    @classmethod
    def single(cls, code: str) -> ErrorCodes:
        """One code for every class: platforms whose answer names its own reason
        (YouTube's `reason`, TikTok's `error.code`) code the error by it."""
        return cls(rate_limited=code, auth_expired=code, server_error=code, rejected=code)


def classify_status(
    status: int,
    message: str,
    codes: ErrorCodes,
    *,
    rate_limit_wait: float,
    transient_statuses: Iterable[int] = (),
    details: dict[str, Any] | None = None,
    http_status: int | None = None,
) -> PlatformError:
    """The common reading of a failed answer, once the platform's own signals (duplicate
    content, daily quotas, revoked grants, ...) have had their say: 429 is a rate limit
    lifted after `rate_limit_wait` seconds, 401 a token to refresh, 5xx (and
    `transient_statuses`) worth another try, anything else final, with the platform's
    message. `http_status` is the answer's own status where the platform's signal stands
    for another (TikTok fails with HTTP 200 and an error code)."""
    answered = status if http_status is None else http_status
    if status == 429:
        return RateLimitedError(
            message,
            code=codes.rate_limited,
            http_status=answered,
            retry_after=rate_limit_wait,
            details=details,
        )
    if status == 401:
        return AuthExpiredError(
            message, code=codes.auth_expired, http_status=answered, details=details
        )
    if status >= 500 or status in transient_statuses:
        return TransientError(
            message, code=codes.server_error, http_status=answered, details=details
        )
    return PermanentError(message, code=codes.rejected, http_status=answered, details=details)


def retry_after_seconds(headers: httpx.Headers, default: float) -> float:
    """The wait a `Retry-After: <seconds>` header names, else `default`."""
    value = headers.get("retry-after", "")
    return float(value) if value.isdigit() else default


def reset_wait_seconds(response: httpx.Response, header: str, default: float) -> float:
    """The wait until the epoch second in `header` (X's x-rate-limit-reset), measured on
    the platform's clock (its Date header) so our clock's skew does not count; `default`
    without the header."""
    reset = response.headers.get(header)
    if not reset:
        return default
    return max(0.0, int(reset) - server_now(response))


def server_now(response: httpx.Response) -> float:
    """The platform's clock from the answer's Date header; ours without one."""
    try:
        return parsedate_to_datetime(response.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return time.time()


# -- reconciliation ---------------------------------------------------------------------


def reconcile_since(started: datetime | float | str | None, skew: timedelta) -> datetime:
    """From when a post found on the platform can be the attempt's: the saved start of
    the attempt (a datetime, unix time or ISO text) less `skew` for the clocks' drift, or
    without one the last RECONCILE_LOOKBACK. An older post with the same text is never
    adopted."""
    if started is None or started == "":
        return datetime.now(UTC) - RECONCILE_LOOKBACK
    if isinstance(started, str):
        moment = datetime.fromisoformat(started)
    elif isinstance(started, datetime):
        moment = started
    else:
        moment = datetime.fromtimestamp(float(started), UTC)
    return moment - skew


# -- files ------------------------------------------------------------------------------


def stream_file(path: str, offset: int = 0, block_bytes: int = READ_BLOCK_BYTES) -> Iterator[bytes]:
    """The file from `offset` on, in blocks: a large video is never held in memory."""
    with open(path, "rb") as source:
        source.seek(offset)
        while block := source.read(block_bytes):
            yield block


def file_parts(path: str, parts: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int, bytes]]:
    """(first, last, bytes) of each inclusive byte range, read in order from one open
    file: the parts a platform's upload instructions or chunk plan name."""
    with open(path, "rb") as source:
        for first, last in parts:
            source.seek(first)
            yield first, last, source.read(last - first + 1)


def chunk_ranges(size: int, chunk_bytes: int, count: int, start: int = 0) -> list[tuple[int, int]]:
    """The inclusive byte ranges of chunks `start`..`count - 1` of a file of `size`
    bytes cut in `chunk_bytes` pieces, the last one taking the remainder."""
    return [
        (index * chunk_bytes, size - 1 if index == count - 1 else (index + 1) * chunk_bytes - 1)
        for index in range(start, count)
    ]


# -- waiting for processing ---------------------------------------------------------------


def poll_until(
    look: Callable[[], T | None],
    *,
    interval: Callable[[], float] | float,
    deadline: float,
    still_processing: Callable[[], PlatformError],
) -> T:
    """Look until `look` returns a result (it raises when processing failed), sleeping
    `interval` seconds between looks. When the next look would come after `deadline` (a
    time.monotonic() instant), raise `still_processing()`: a TransientError whose retry
    resumes the same upload or container, saved in the handle."""
    while True:
        result = look()
        if result is not None:
            return result
        wait = interval() if callable(interval) else interval
        if time.monotonic() + wait > deadline:
            raise still_processing()
        time.sleep(wait)
