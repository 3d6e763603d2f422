"""When a post is due: a scheduled_at string and a time zone read as one UTC instant.

Shared by creating a post and changing it; kept apart from both because the rules of
reading a wall-clock time (offsets, daylight saving gaps, the allowed window) are their
own subject.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import ValidationError

PAST_TOLERANCE = timedelta(seconds=60)
MAX_SCHEDULE_AHEAD = timedelta(days=730)


def resolve_timezone(name: str | None) -> ZoneInfo:
    if name in (None, ""):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"Unknown time zone {name!r}; use an IANA name such as America/New_York.",
            details={"timezone": [f"Unknown IANA time zone: {name!r}."]},
        ) from exc


def parse_schedule(raw: str | None, tz_name: str | None, now: datetime) -> tuple[datetime, bool]:
    """The UTC instant to publish at, and whether it means "now".

    An explicit offset or `Z` is an absolute instant; a time without one is wall-clock
    time in `tz_name`. Wall times that a DST change skips are refused, repeated ones take
    the first occurrence.
    """
    zone = resolve_timezone(tz_name)
    if raw is None:
        return now, True

    def invalid(message: str) -> ValidationError:
        return ValidationError(message, details={"scheduled_at": [message]})

    text = raw.strip()
    if "T" not in text and " " not in text:
        raise invalid("scheduled_at must be an ISO 8601 date and time, e.g. 2026-04-15T14:30:00Z.")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise invalid(
            f"scheduled_at {raw!r} is not a valid ISO 8601 date and time, "
            "e.g. 2026-04-15T14:30:00Z."
        ) from exc
    try:
        if parsed.tzinfo is None:
            local = parsed.replace(tzinfo=zone)
            round_trip = local.astimezone(UTC).astimezone(zone)
            if round_trip.replace(tzinfo=None) != parsed:
                raise invalid(
                    f"{parsed.isoformat()} does not exist in {zone.key}: the clocks skip it "
                    "for daylight saving time."
                )
            instant = local.astimezone(UTC)
        else:
            instant = parsed.astimezone(UTC)
    except OverflowError:
        # Year 1 or 9999 shifted past the calendar's edge: far outside the allowed window.
        instant = (
            datetime.min.replace(tzinfo=UTC)
            if parsed.year < 5000
            else datetime.max.replace(tzinfo=UTC)
        )
    if instant < now - PAST_TOLERANCE:
        raise invalid("scheduled_at is in the past; omit it to publish now.")
    if instant > now + MAX_SCHEDULE_AHEAD:
        raise invalid("scheduled_at may be at most 730 days ahead.")
    return max(instant, now), False
