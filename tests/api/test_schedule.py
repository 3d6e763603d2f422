"""scheduled_at and timezone: wall-clock times follow the zone's DST rules; instants stay put.

Dates are taken in the coming year so they are always in the future and within 730 days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask

from tests.api.helpers import assert_error, future, ok_data, sql, targets_of
from tests.conftest import Tenant

NEXT_YEAR = datetime.now(UTC).year + 1


def nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def create(tenant: Tenant, account_id: int, **fields: Any) -> Any:
    return tenant.api.post("/posts", json={"content": "hi", "account_ids": [account_id], **fields})


def test_new_york_in_april_is_utc_minus_4(tenant: Tenant, make_account: Any, app: Flask) -> None:
    account_id = make_account(tenant, "x")
    local = f"{NEXT_YEAR}-04-15T14:30:00"
    data = ok_data(create(tenant, account_id, scheduled_at=local, timezone="America/New_York"), 201)
    assert data["scheduled_for"] == f"{NEXT_YEAR}-04-15T18:30:00.000Z"
    assert data["status"] == "scheduled"
    stored = sql(app, "SELECT scheduled_at, timezone FROM posts WHERE id = :p", p=data["post_id"])
    assert stored[0]["scheduled_at"] == datetime(NEXT_YEAR, 4, 15, 18, 30, tzinfo=UTC)
    assert stored[0]["timezone"] == "America/New_York"
    [target] = targets_of(app, data["post_id"])
    assert target["next_attempt_at"] == datetime(NEXT_YEAR, 4, 15, 18, 30, tzinfo=UTC)
    post = ok_data(tenant.api.get(f"/posts/{data['post_id']}"))
    assert post["timezone"] == "America/New_York"
    assert post["scheduled_for"] == f"{NEXT_YEAR}-04-15T18:30:00.000Z"


def test_new_york_in_january_is_utc_minus_5(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    local = f"{NEXT_YEAR}-01-15T14:30:00"
    data = ok_data(create(tenant, account_id, scheduled_at=local, timezone="America/New_York"), 201)
    assert data["scheduled_for"] == f"{NEXT_YEAR}-01-15T19:30:00.000Z"


def test_spring_forward_gap_is_refused(tenant: Tenant, make_account: Any, app: Flask) -> None:
    account_id = make_account(tenant, "x")
    day = nth_sunday(NEXT_YEAR, 3, 2)  # US DST starts the second Sunday of March at 02:00
    local = f"{day.isoformat()}T02:30:00"
    message = (
        f"{local} does not exist in America/New_York: the clocks skip it for daylight saving time."
    )
    response = create(tenant, account_id, scheduled_at=local, timezone="America/New_York")
    error = assert_error(response, 400, "validation_error", message)
    assert error["details"] == {"scheduled_at": [message]}
    assert sql(app, "SELECT count(*) AS n FROM posts")[0]["n"] == 0
    # Either side of the gap is fine: 01:59 EST and 03:00 EDT.
    before = ok_data(
        create(tenant, account_id, scheduled_at=f"{day}T01:59:00", timezone="America/New_York"),
        201,
    )
    assert before["scheduled_for"] == f"{day}T06:59:00.000Z"
    after = ok_data(
        create(tenant, account_id, scheduled_at=f"{day}T03:00:00", timezone="America/New_York"),
        201,
    )
    assert after["scheduled_for"] == f"{day}T07:00:00.000Z"


def test_fall_back_repeated_hour_takes_the_first(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    day = nth_sunday(NEXT_YEAR, 11, 1)  # US DST ends the first Sunday of November
    data = ok_data(
        create(tenant, account_id, scheduled_at=f"{day}T01:30:00", timezone="America/New_York"),
        201,
    )
    assert data["scheduled_for"] == f"{day}T05:30:00.000Z"  # 01:30 EDT, not EST


def test_explicit_offset_wins_over_timezone(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    data = ok_data(
        create(
            tenant,
            account_id,
            scheduled_at=f"{NEXT_YEAR}-04-15T14:30:00+02:00",
            timezone="America/New_York",
        ),
        201,
    )
    assert data["scheduled_for"] == f"{NEXT_YEAR}-04-15T12:30:00.000Z"


def test_naive_time_defaults_to_utc(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    data = ok_data(create(tenant, account_id, scheduled_at=f"{NEXT_YEAR}-04-15T14:30:00"), 201)
    assert data["scheduled_for"] == f"{NEXT_YEAR}-04-15T14:30:00.000Z"
    post = ok_data(tenant.api.get(f"/posts/{data['post_id']}"))
    assert post["timezone"] == "UTC"


def test_scheduled_for_alias(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    data = ok_data(create(tenant, account_id, scheduled_for=f"{NEXT_YEAR}-04-15T14:30:00Z"), 201)
    assert data["scheduled_for"] == f"{NEXT_YEAR}-04-15T14:30:00.000Z"
    response = create(
        tenant,
        account_id,
        scheduled_for=f"{NEXT_YEAR}-04-15T14:30:00Z",
        scheduled_at=f"{NEXT_YEAR}-04-16T14:30:00Z",
    )
    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {
        "scheduled_for": ["Give scheduled_at or its alias scheduled_for, not two different values."]
    }


def test_past_far_future_and_date_only_are_refused(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    cases = {
        "2020-01-01T00:00:00Z": "scheduled_at is in the past; omit it to publish now.",
        future(800): "scheduled_at may be at most 730 days ahead.",
        f"{NEXT_YEAR}-04-15": (
            "scheduled_at must be an ISO 8601 date and time, e.g. 2026-04-15T14:30:00Z."
        ),
    }
    for raw, message in cases.items():
        error = assert_error(
            create(tenant, account_id, scheduled_at=raw), 400, "validation_error", message
        )
        assert error["details"] == {"scheduled_at": [message]}


def test_unknown_timezone(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    response = create(tenant, account_id, scheduled_at=future(), timezone="Europe/Atlantis")
    error = assert_error(
        response,
        400,
        "validation_error",
        "Unknown time zone 'Europe/Atlantis'; use an IANA name such as America/New_York.",
    )
    assert error["details"] == {"timezone": ["Unknown IANA time zone: 'Europe/Atlantis'."]}


def test_omitted_schedule_publishes_now(tenant: Tenant, make_account: Any, app: Flask) -> None:
    account_id = make_account(tenant, "x")
    before = datetime.now(UTC)
    data = ok_data(create(tenant, account_id), 201)
    assert data["status"] == "publishing"
    assert data["message"] == "Post is being published to 1 account."
    moment = datetime.strptime(data["scheduled_for"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= moment <= datetime.now(UTC) + timedelta(seconds=1)
    # Due now, so it was handed to the broker at once with a dispatch token.
    [target] = targets_of(app, data["post_id"])
    assert target["status"] == "queued"
    assert target["dispatch_token"] is not None


def test_patch_reschedule_uses_the_posts_timezone(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    created = ok_data(
        create(
            tenant,
            account_id,
            scheduled_at=f"{NEXT_YEAR}-04-15T14:30:00",
            timezone="America/New_York",
        ),
        201,
    )
    post_id = created["post_id"]
    # A naive time in the PATCH is read in the post's zone: January is EST.
    patched = ok_data(
        tenant.api.patch(f"/posts/{post_id}", json={"scheduled_at": f"{NEXT_YEAR}-01-20T09:00:00"})
    )
    assert patched["scheduled_for"] == f"{NEXT_YEAR}-01-20T14:00:00.000Z"
    assert patched["timezone"] == "America/New_York"
    # A new zone and time together.
    patched = ok_data(
        tenant.api.patch(
            f"/posts/{post_id}",
            json={"scheduled_at": f"{NEXT_YEAR}-07-01T09:00:00", "timezone": "Europe/London"},
        )
    )
    assert patched["scheduled_for"] == f"{NEXT_YEAR}-07-01T08:00:00.000Z"
    assert patched["timezone"] == "Europe/London"
    day = nth_sunday(NEXT_YEAR, 3, 2)
    response = tenant.api.patch(
        f"/posts/{post_id}",
        json={"scheduled_at": f"{day}T02:15:00", "timezone": "America/New_York"},
    )
    assert_error(
        response,
        400,
        "validation_error",
        f"{day}T02:15:00 does not exist in America/New_York: the clocks skip it for daylight "
        "saving time.",
    )
    unchanged = ok_data(tenant.api.get(f"/posts/{post_id}"))
    assert unchanged["scheduled_for"] == f"{NEXT_YEAR}-07-01T08:00:00.000Z"
    assert unchanged["timezone"] == "Europe/London"


def test_patch_timezone_alone_keeps_the_instant(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    """The zone only says how to read a wall-clock time; changed alone it moves nothing."""
    account_id = make_account(tenant, "x")
    scheduled = ok_data(
        create(
            tenant,
            account_id,
            scheduled_at=f"{NEXT_YEAR}-04-15T14:30:00",
            timezone="America/New_York",
        ),
        201,
    )
    patched = ok_data(
        tenant.api.patch(f"/posts/{scheduled['post_id']}", json={"timezone": "Asia/Tokyo"})
    )
    assert patched["scheduled_for"] == f"{NEXT_YEAR}-04-15T18:30:00.000Z"
    assert patched["timezone"] == "Asia/Tokyo"
    assert patched["status"] == "scheduled"
    # A post being published now stays "now".
    now = ok_data(create(tenant, account_id), 201)
    patched = ok_data(tenant.api.patch(f"/posts/{now['post_id']}", json={"timezone": "Asia/Tokyo"}))
    assert patched["status"] == "publishing"
    assert patched["scheduled_for"] == now["scheduled_for"]
    [row] = sql(app, "SELECT publish_now FROM posts WHERE id = :p", p=now["post_id"])
    assert row["publish_now"] is True
