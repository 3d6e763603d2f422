"""When a published target's metrics are read: at fixed ages after it was published
(CRIER_METRICS_SCHEDULE, docs/analytics.md).

Plain functions of the ages and a clock reading, shared by the settings (parsing the
variable), the collector (the next reading after one) and the API.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# One hour, one day, one week and thirty days after publishing.
DEFAULT_AGES = (3600, 86400, 604800, 2592000)
RETENTION = "CRIER_METRICS_RETENTION_DAYS"
AGES_MEANING = (
    "seconds after publishing at which a post's metrics are read, comma separated; days "
    "metric snapshots are kept (pruned hourly)"
)


def parse_ages(raw: str) -> tuple[int, ...]:
    """`3600,86400` → (3600, 86400): positive whole seconds, sorted, each once."""
    ages: set[int] = set()
    for part in raw.split(","):
        text = part.strip()
        if not text:
            continue
        if not text.isdigit() or int(text) <= 0:
            raise ValueError(
                f"CRIER_METRICS_SCHEDULE: {text!r} is not a positive number of seconds"
            )
        ages.add(int(text))
    if not ages:
        raise ValueError("CRIER_METRICS_SCHEDULE names no age")
    return tuple(sorted(ages))


def first_collection(published_at: datetime, ages: tuple[int, ...]) -> datetime | None:
    """When a target published at `published_at` is first read; None with no ages."""
    return published_at + timedelta(seconds=ages[0]) if ages else None


def next_collection(
    published_at: datetime, now: datetime, ages: tuple[int, ...]
) -> datetime | None:
    """The reading after one taken at `now`: the first scheduled age still ahead, or None
    when the schedule is done. A reading that came late (a hold, a stopped worker) never
    makes the next one come early: each scheduled age is read at most once."""
    age = (now - published_at).total_seconds()
    for scheduled in ages:
        if scheduled > age:
            return published_at + timedelta(seconds=scheduled)
    return None
