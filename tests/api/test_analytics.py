"""The analytics routes over HTTP: the summary's periods and filters, the profile
boundary, precise 400s, a post's and an account's figures, the results' metrics block
and the CSV export. Readings are written straight to the tables the collector fills."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.api.helpers import assert_error, future, ok_data, sql
from tests.conftest import Tenant

NOW = datetime.now(UTC)


@dataclass
class World:
    profile_a: int
    profile_b: int
    x: int  # profile A
    linkedin: int  # profile B
    youtube: int  # no profile (a Facebook Page)
    posts: dict[str, str]
    key_a: httpx.Client


def _post(tenant: Tenant, account: int, text: str) -> str:
    data = tenant.api.post(
        "/posts", json={"content": text, "account_ids": [account], "scheduled_at": future()}
    )
    return str(ok_data(data, 201)["post_id"])


def _due(app: Flask, post_id: str, at: datetime, status: str) -> None:
    """The post was made and due at `at` and is `status` (its one target likewise)."""
    target_status = {"partially_published": "published"}.get(status, status)
    sql(
        app,
        "UPDATE posts SET created_at = :at, scheduled_at = :at, status = :s WHERE id = :p",
        at=at,
        s=status,
        p=post_id,
    )
    published = target_status == "published"
    sql(
        app,
        "UPDATE post_targets SET status = :s, next_attempt_at = :at, published_at = :pub, "
        "platform_post_id = CASE WHEN :is_pub THEN 'p-' || id END WHERE post_id = :p",
        at=at,
        s=target_status,
        pub=at if published else None,
        is_pub=published,
        p=post_id,
    )


def _reading(app: Flask, post_id: str, age: int, **values: int) -> None:
    target = sql(app, "SELECT * FROM post_targets WHERE post_id = :p", p=post_id)[0]
    sql(
        app,
        "INSERT INTO metric_snapshots (target_id, account_id, platform, collected_at, "
        "age_seconds, views, likes, comments, shares, impressions, clicks, saves, raw) VALUES "
        "(:t, :a, :pl, :at, :age, :views, :likes, :comments, :shares, :impressions, :clicks, "
        ":saves, '{}')",
        t=target["id"],
        a=target["account_id"],
        pl=target["platform"],
        at=target["published_at"] + timedelta(seconds=age),
        age=age,
        **{
            name: values.get(name)
            for name in ("views", "likes", "comments", "shares", "impressions", "clicks", "saves")
        },
    )


@pytest.fixture
def world(app: Flask, live_url: str, tenant: Tenant, make_account: Any) -> Any:
    profile_a = ok_data(tenant.api.post("/profiles", json={"name": "A"}), 201)["id"]
    profile_b = ok_data(tenant.api.post("/profiles", json={"name": "B"}), 201)["id"]
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin", external_id="urn:li:person:42")
    youtube = make_account(tenant, "facebook")
    ok_data(tenant.api.patch(f"/accounts/{x}", json={"profile_id": profile_a}))
    ok_data(tenant.api.patch(f"/accounts/{linkedin}", json={"profile_id": profile_b}))
    posts = {
        "x_today": _post(tenant, x, "x today"),
        "x_week_failed": _post(tenant, x, "x this week, failed"),
        "li_month": _post(tenant, linkedin, "linkedin this month"),
        "yt_old": _post(tenant, youtube, "facebook long ago"),
        "x_scheduled": _post(tenant, x, "x later"),
        "x_draft": _post(tenant, x, "x draft"),
    }
    _due(app, posts["x_today"], NOW - timedelta(minutes=30), "published")
    _due(app, posts["x_week_failed"], NOW - timedelta(days=3), "failed")
    _due(app, posts["li_month"], NOW - timedelta(days=20), "published")
    _due(app, posts["yt_old"], NOW - timedelta(days=100), "published")
    sql(app, "UPDATE posts SET status = 'draft' WHERE id = :p", p=posts["x_draft"])
    sql(app, "UPDATE post_targets SET status = 'draft' WHERE post_id = :p", p=posts["x_draft"])
    _reading(app, posts["x_today"], 60, views=5, likes=1, impressions=5, saves=0)
    _reading(app, posts["x_today"], 1800, views=100, likes=7, comments=2, shares=3, impressions=100)
    _reading(app, posts["li_month"], 3600, likes=11, comments=4)
    _reading(app, posts["yt_old"], 3600, views=1000, likes=50, comments=9)
    key = ok_data(
        tenant.api.post(
            "/keys", json={"name": "a", "scopes": ["posts:read"], "profile_id": profile_a}
        ),
        201,
    )["key"]
    with httpx.Client(
        base_url=live_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as key_a:
        yield World(profile_a, profile_b, x, linkedin, youtube, posts, key_a)


def summary(api: httpx.Client, query: str = "") -> dict[str, Any]:
    return dict(ok_data(api.get(f"/analytics/summary{query}")))


def test_periods_count_posts_per_post_and_destinations_per_target(
    tenant: Tenant, world: World
) -> None:
    today = summary(tenant.api, "?period=today")
    assert today["period"] == "today"
    # Posts count by when they were made: the two made now count today, scheduled or not.
    assert today["posts"] == {
        "total": 3,
        "draft": 1,
        "scheduled": 1,
        "publishing": 0,
        "published": 1,
        "partially_failed": 0,
        "failed": 0,
    }
    window = {
        k: datetime.fromisoformat(v.replace("Z", "+00:00")) for k, v in today["range"].items()
    }
    assert window["to"] - window["from"] == timedelta(hours=24)
    # The latest reading of each published target, not the sum of readings.
    assert today["metrics"] == {
        "views": 100,
        "likes": 7,
        "comments": 2,
        "shares": 3,
        "impressions": 100,
        "clicks": 0,
    }
    week = summary(tenant.api, "?period=week")
    assert (week["posts"]["total"], week["posts"]["failed"]) == (4, 1)
    # Destinations: the draft counts in total only.
    assert week["by_platform"] == [
        {"platform": "x", "total": 4, "scheduled": 1, "published": 1, "failed": 1}
    ]
    month = summary(tenant.api)  # month by default
    assert month["period"] == "month" and month["posts"]["total"] == 5
    assert month["metrics"]["likes"] == 7 + 11
    everything = summary(tenant.api, "?period=all")
    assert everything["range"]["from"] is None
    posts = everything["posts"]
    assert (posts["total"], posts["scheduled"], posts["draft"]) == (6, 1, 1)
    assert [p["platform"] for p in everything["by_platform"]] == ["facebook", "linkedin", "x"]
    assert everything["metrics"]["views"] == 1100
    custom = summary(
        tenant.api,
        f"?period=custom&from={(NOW - timedelta(days=150)).date()}"
        f"&to={(NOW - timedelta(days=50)).date()}",
    )
    assert custom["posts"]["total"] == 1 and custom["metrics"]["views"] == 1000
    assert custom["range"]["from"].endswith("T00:00:00.000Z")


def test_filters_and_the_profile_boundary(tenant: Tenant, world: World) -> None:
    narrowed = summary(tenant.api, f"?period=all&profile_id={world.profile_a}")
    assert narrowed["posts"]["total"] == 4
    assert {p["platform"] for p in narrowed["by_platform"]} == {"x"}
    by_account = summary(tenant.api, f"?period=all&account_id={world.linkedin}")
    assert by_account["posts"]["total"] == 1 and by_account["metrics"]["likes"] == 11
    # A key restricted to A sees A only, and B's profile or account reads as absent.
    own = summary(world.key_a, "?period=all")
    assert own["posts"]["total"] == 4 and own["metrics"]["views"] == 100
    assert_error(
        world.key_a.get(f"/analytics/summary?profile_id={world.profile_b}"), 404, "not_found"
    )
    foreign = world.key_a.get(f"/analytics/summary?account_id={world.linkedin}")
    unknown = world.key_a.get("/analytics/summary?account_id=987654")
    assert (
        assert_error(foreign, 404, "not_found")["message"]
        == (assert_error(unknown, 404, "not_found")["message"])
    )
    assert_error(world.key_a.get(f"/posts/{world.posts['li_month']}/analytics"), 404, "not_found")
    assert_error(world.key_a.get(f"/accounts/{world.linkedin}/analytics"), 404, "not_found")
    rows = list(csv.reader(io.StringIO(world.key_a.get("/analytics/export.csv?period=all").text)))
    assert {row[3] for row in rows[1:]} == {"x"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?period=year", "period must be one of today, week, month, all, custom; got 'year'"),
        ("?period=custom&from=2026-01-01", "period=custom needs both from and to; to is missing"),
        ("?period=week&from=2026-01-01", "from and to are taken with period=custom, not week"),
        (
            "?from=2026-02-01&to=2026-01-01",
            "to (2026-01-02T00:00:00.000Z) must be after from (2026-02-01T00:00:00.000Z)",
        ),
        (
            "?period=custom&from=yesterday&to=2026-01-01",
            "from must be a date (2026-12-01) or an ISO 8601 instant with an offset "
            "(2026-12-01T09:00:00Z); got 'yesterday'",
        ),
        (
            "?period=custom&from=2026-01-01T00:00:00&to=2026-01-02",
            "from must be a date (2026-12-01) or an ISO 8601 instant with an offset "
            "(2026-12-01T09:00:00Z); got '2026-01-01T00:00:00'",
        ),
    ],
)
def test_invalid_periods_are_precise_400s(tenant: Tenant, query: str, message: str) -> None:
    for path in ("/analytics/summary", "/analytics/export.csv"):
        assert_error(tenant.api.get(path + query), 400, "validation_error", message)


def test_a_posts_figures_series_and_results_block(tenant: Tenant, world: World) -> None:
    post_id = world.posts["x_today"]
    data = ok_data(tenant.api.get(f"/posts/{post_id}/analytics"))
    [target] = data["targets"]
    assert [r["age_seconds"] for r in target["series"]] == [60, 1800]
    assert target["latest"]["views"] == 100 and target["latest"]["clicks"] is None
    assert data["totals"]["views"] == 100 and data["totals"]["clicks"] is None
    results = ok_data(tenant.api.get(f"/posts/{post_id}/results"))
    assert results["metrics"]["likes"] == 7
    assert results["results"][0]["metrics"]["age_seconds"] == 1800
    unread = ok_data(tenant.api.get(f"/posts/{world.posts['x_scheduled']}/results"))
    assert unread["results"][0]["metrics"] is None and unread["metrics"]["views"] is None


def test_an_accounts_followers_and_top_posts(app: Flask, tenant: Tenant, world: World) -> None:
    for days, followers, change in ((2, 1000, None), (1, 1010, 10)):
        sql(
            app,
            "INSERT INTO account_metric_snapshots (account_id, platform, collected_at, "
            "followers, followers_change, raw) VALUES (:a, 'x', :at, :f, :c, '{}')",
            a=world.x,
            at=NOW - timedelta(days=days),
            f=followers,
            c=change,
        )
    data = ok_data(tenant.api.get(f"/accounts/{world.x}/analytics?period=week"))
    assert data["followers"]["latest"] == 1010 and data["followers"]["change"] == 10
    assert [f["followers"] for f in data["followers"]["series"]] == [1000, 1010]
    assert [p["post_id"] for p in data["top_posts"]] == [world.posts["x_today"]]
    assert data["top_posts"][0]["views"] == 100


def test_the_csv_export_has_a_row_per_published_destination(tenant: Tenant, world: World) -> None:
    response = tenant.api.get("/analytics/export.csv?period=all")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["post_id"] for r in rows] == [
        world.posts["yt_old"],
        world.posts["li_month"],
        world.posts["x_today"],
    ]
    assert rows[2]["views"] == "100" and rows[2]["age_seconds"] == "1800"
    assert rows[1]["views"] == "" and rows[1]["likes"] == "11"


def test_the_csv_export_runs_no_formula(app: Flask, tenant: Tenant, world: World) -> None:
    sql(
        app,
        "UPDATE accounts SET name = '=HYPERLINK(\"http://e.example\")' WHERE id = :a",
        a=world.x,
    )
    rows = list(
        csv.DictReader(io.StringIO(tenant.api.get("/analytics/export.csv?period=all").text))
    )
    names = {r["platform"]: r["account_name"] for r in rows}
    assert names["x"] == '\'=HYPERLINK("http://e.example")'
    assert names["linkedin"] == "linkedin account"
