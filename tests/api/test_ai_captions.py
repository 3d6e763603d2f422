"""POST /ai/generate-caption: validation, the model over HTTP (the real `openai` client
against the sandbox's /openai/v1), platform limits, monthly credits and the deadline."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import text

from app.db import get_db
from app.platform_rules import ErrorBag, check_platform_rules
from app.platforms import PLATFORMS
from app.services.ai_credits import ai_credits, take_credits
from tests.api.helpers import assert_error
from tests.conftest import AI_API_KEY, Tenant
from tests.servers import TrickleServer

ROUTE = "/ai/generate-caption"


@contextmanager
def settings(app: Flask, **overrides: Any) -> Iterator[None]:
    previous = app.config["CRIER"]
    app.config["CRIER"] = replace(previous, **overrides)
    try:
        yield
    finally:
        app.config["CRIER"] = previous


def used(app: Flask, organisation_id: int) -> int:
    with get_db(app).engine.connect() as conn:
        value = conn.execute(
            text("SELECT coalesce(sum(used), 0) FROM ai_credit_usage WHERE organisation_id = :o"),
            {"o": organisation_id},
        ).scalar()
    return int(value or 0)


def arrived(sandbox: httpx.Client) -> int:
    return int(sandbox.get("/_arrived").json().get("openai", 0))


def words(text: str) -> list[str]:
    """The text's words, hashtags left out."""
    return [word for word in text.split() if not word.startswith("#")]


def content_errors(platform: str, caption: str) -> list[str]:
    """What intake's rules check says about the caption as a post's text."""
    errors = ErrorBag()
    check_platform_rules(caption, [platform], [], {}, errors)
    return errors.errors.get("content", [])


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "topic", "Missing data for required field."),
        ({"topic": "   "}, "topic", "Must not be blank: say what the post is about."),
        ({"topic": "x" * 1001}, "topic", "At most 1000 characters."),
        ({"topic": 5}, "topic", "Not a valid string."),
        ({"topic": "t", "platform": "myspace"}, "platform", "Must be one of: instagram"),
        ({"topic": "t", "tone": "angry"}, "tone", "Must be one of: professional"),
        ({"topic": "t", "length": "epic"}, "length", "Must be one of: short, medium, long."),
        ({"topic": "t", "count": 0}, "count", "Must be greater than or equal to 1"),
        ({"topic": "t", "count": 6}, "count", "less than or equal to 5"),
        ({"topic": "t", "count": "2"}, "count", "Not a valid integer."),
        ({"topic": "t", "include_hashtags": "yes"}, "include_hashtags", "Not a valid boolean."),
        ({"topic": "t", "include_emojis": 1}, "include_emojis", "Not a valid boolean."),
        ({"topic": "t", "temperature": 2}, "temperature", "Unknown field."),
    ],
)
def test_invalid_requests_name_the_field(
    app: Flask,
    tenant: Tenant,
    sandbox: httpx.Client,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    error = assert_error(tenant.api.post(ROUTE, json=body), 400, "validation_error")
    assert field in error["details"], error
    assert any(message in m for m in error["details"][field]), error
    assert f"{field}: " in error["message"], error
    assert used(app, tenant.organisation_id) == 0
    assert arrived(sandbox) == 0


def test_a_body_that_is_not_an_object_is_refused(tenant: Tenant) -> None:
    assert_error(tenant.api.post(ROUTE, json=["topic"]), 400, "validation_error")
    response = tenant.api.post(ROUTE, content=b"topic=x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


# ------------------------------------------------------------------- the model, over HTTP


def test_captions_from_the_model_over_http(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    body = {"topic": "Black Friday sale on running shoes, 30% off", "platform": "x", "count": 3}
    response = tenant.api.post(ROUTE, json=body)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["platform"] == "x"
    assert data["credits_used"] == 3
    assert data["credits_remaining"] == 97
    assert len(data["captions"]) == len(data["variants"]) == 3
    assert len(set(data["captions"])) == 3  # three choices, not one three times
    for caption, variant in zip(data["captions"], data["variants"], strict=True):
        assert variant["text"] == caption
        assert "Black Friday sale on running shoes" in caption
        assert variant["character_limit"] == 280
        assert variant["character_count"] == PLATFORMS["x"].count_text(caption) <= 280
        assert variant["hashtags"] == ["#black", "#friday", "#sale"]
        assert variant["trimmed"] is False
        assert content_errors("x", caption) == []
    # `n` asked for the three at once: one request to the model.
    assert arrived(sandbox) == 1
    assert used(app, tenant.organisation_id) == 3


def test_defaults_and_no_platform(tenant: Tenant, sandbox: httpx.Client) -> None:
    data = tenant.api.post(ROUTE, json={"topic": "our new bakery"}).json()["data"]
    assert data["platform"] is None
    assert data["credits_used"] == 1
    [variant] = data["variants"]
    assert variant["character_limit"] is None
    assert variant["character_count"] == len(variant["text"])
    # medium: about 180 characters
    assert 100 <= variant["character_count"] <= 260, variant


def test_hashtags_and_emojis_left_out_when_asked(tenant: Tenant, sandbox: httpx.Client) -> None:
    # A model that adds them anyway: they are taken out.
    sandbox.post("/_faults", json={"openai": {"answer": "Fresh bread daily 🥖✨ come by! #bakery"}})
    body = {"topic": "bread", "include_hashtags": False, "include_emojis": False}
    [variant] = tenant.api.post(ROUTE, json=body).json()["data"]["variants"]
    assert variant["text"] == "Fresh bread daily come by!"
    assert variant["hashtags"] == []


def test_labels_and_quotes_are_taken_off(tenant: Tenant, sandbox: httpx.Client) -> None:
    sandbox.post("/_faults", json={"openai": {"answer": 'Caption 1: "Open all weekend."'}})
    data = tenant.api.post(ROUTE, json={"topic": "hours"}).json()["data"]
    assert data["captions"] == ["Open all weekend."]


def test_a_server_that_ignores_n_is_asked_again(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"openai": {"max_choices": 1}})
    data = tenant.api.post(ROUTE, json={"topic": "launch", "count": 5}).json()["data"]
    assert data["credits_used"] == 5
    assert len(data["captions"]) == 5
    assert arrived(sandbox) == 5


def test_a_server_that_refuses_n_is_asked_one_at_a_time(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"openai": {"refuse_n": True}})
    data = tenant.api.post(ROUTE, json={"topic": "launch", "count": 5}).json()["data"]
    assert (data["credits_used"], len(data["captions"])) == (5, 5)
    assert arrived(sandbox) == 6  # the refused one, then one per caption
    assert used(app, tenant.organisation_id) == 5


def test_captions_that_came_before_a_failure_are_kept(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    # One choice per request; the second request is rate limited for longer than is left.
    faults = {"max_choices": 1, "rate_limit_every": 2, "retry_after": 3600}
    sandbox.post("/_faults", json={"openai": faults})
    data = tenant.api.post(ROUTE, json={"topic": "launch", "count": 3}).json()["data"]
    assert (len(data["captions"]), data["credits_used"], data["credits_remaining"]) == (1, 1, 99)
    assert used(app, tenant.organisation_id) == 1


def test_unusable_answers_cost_nothing(app: Flask, tenant: Tenant, sandbox: httpx.Client) -> None:
    # Only hashtags, and the caller wants none: nothing is left of any answer.
    sandbox.post("/_faults", json={"openai": {"answer": "#one #two"}})
    body = {"topic": "t", "include_hashtags": False, "count": 2}
    assert_error(tenant.api.post(ROUTE, json=body), 502, "ai_bad_answer")
    assert used(app, tenant.organisation_id) == 0


# ------------------------------------------------------------------------ platform limits


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_an_answer_over_the_limit_is_trimmed_to_fit(
    tenant: Tenant, sandbox: httpx.Client, platform: str
) -> None:
    rules = PLATFORMS[platform]
    # Emoji, accents and hashtags: counted differently by X, Threads and YouTube.
    unit = "Grand opening 🎉 at the café, bring friends #launch "
    answer = unit * (rules.text_limit // len(unit) + 20)
    assert rules.count_text(answer) > rules.text_limit
    sandbox.post("/_faults", json={"openai": {"answer": answer}})
    response = tenant.api.post(ROUTE, json={"topic": "opening", "platform": platform})
    assert response.status_code == 200, response.text
    [variant] = response.json()["data"]["variants"]
    caption = variant["text"]
    assert variant["trimmed"] is True
    assert variant["character_limit"] == rules.text_limit
    assert variant["character_count"] == rules.count_text(caption) <= rules.text_limit
    assert caption.endswith("…")
    # Cut at a word boundary, not rewritten (past the platform's most hashtags, the rest
    # are dropped).
    kept, whole = words(caption[:-1]), words(answer)
    assert kept == whole[: len(kept)], (kept[-5:], whole[len(kept) - 5 : len(kept) + 1])
    if rules.max_hashtags is not None:
        assert len(variant["hashtags"]) <= rules.max_hashtags
    # Intake's own check accepts it as the post's text.
    assert content_errors(platform, caption) == []


def test_the_prompt_names_the_platform_limit(tenant: Tenant, sandbox: httpx.Client) -> None:
    # The sandbox writes about the length the prompt asks for: long on X is under 280.
    body = {"topic": "spring", "platform": "x", "length": "long"}
    [variant] = tenant.api.post(ROUTE, json=body).json()["data"]["variants"]
    assert variant["trimmed"] is False
    assert variant["character_count"] <= 280


# ----------------------------------------------------------------------------- credits


def test_credits_are_spent_then_refused_with_402(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    with settings(app, ai_monthly_credits=3):
        first = tenant.api.post(ROUTE, json={"topic": "a", "count": 2}).json()["data"]
        assert (first["credits_used"], first["credits_remaining"]) == (2, 1)
        # More than is left: refused whole, nothing taken.
        error = assert_error(
            tenant.api.post(ROUTE, json={"topic": "a", "count": 2}), 402, "insufficient_credits"
        )
        assert "1 of 3 left" in error["message"], error
        last = tenant.api.post(ROUTE, json={"topic": "a"}).json()["data"]
        assert last["credits_remaining"] == 0
        assert_error(tenant.api.post(ROUTE, json={"topic": "a"}), 402, "insufficient_credits")
        me = tenant.api.get("/me").json()["data"]["ai_credits"]
    period = datetime.now(UTC).strftime("%Y-%m")
    assert me == {**me, "limit": 3, "used": 3, "remaining": 0, "period": period}
    assert arrived(sandbox) == 2  # the refused requests never reached the model


def test_credits_are_per_organisation(app: Flask, make_tenant: Any, sandbox: httpx.Client) -> None:
    one, two = make_tenant("one"), make_tenant("two")
    with settings(app, ai_monthly_credits=1):
        assert one.api.post(ROUTE, json={"topic": "a"}).status_code == 200
        assert two.api.post(ROUTE, json={"topic": "a"}).status_code == 200
        assert_error(one.api.post(ROUTE, json={"topic": "a"}), 402, "insufficient_credits")


@pytest.mark.parametrize("spent", [7, 0], ids=["row-exists", "first-use-of-the-month"])
def test_twenty_parallel_requests_with_three_credits_left_get_exactly_three(
    app: Flask, tenant: Tenant, sandbox: httpx.Client, spent: int
) -> None:
    with settings(app, ai_monthly_credits=spent + 3):
        if spent:
            with get_db(app).session() as session:
                take_credits(session, tenant.organisation_id, spent, spent + 3, datetime.now(UTC))
        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(
                pool.map(
                    lambda _: tenant.api.post(ROUTE, json={"topic": "rush"}).status_code,
                    range(20),
                )
            )
    assert sorted(statuses) == [200] * 3 + [402] * 17, statuses
    assert used(app, tenant.organisation_id) == spent + 3
    assert arrived(sandbox) == 3


def test_credits_come_back_when_the_model_fails(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"openai": {"error_rate": 1.0, "error_status": 503}})
    error = assert_error(
        tenant.api.post(ROUTE, json={"topic": "a", "count": 5}), 502, "ai_upstream_error"
    )
    assert error["details"]["upstream_status"] == ["503"]
    assert used(app, tenant.organisation_id) == 0
    assert arrived(sandbox) == 2  # one retry


def test_ai_credits_counts_the_month_of_the_moment(app: Flask, tenant: Tenant) -> None:
    november = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    december = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    with get_db(app).session() as session:
        take_credits(session, tenant.organisation_id, 4, 100, november)
        assert ai_credits(session, tenant.organisation_id, november, limit=100) == {
            "limit": 100,
            "used": 4,
            "remaining": 96,
            "period": "2026-11",
            "resets_at": "2026-12-01T00:00:00Z",
        }
        fresh = ai_credits(session, tenant.organisation_id, december, limit=100)
    assert (fresh["used"], fresh["remaining"], fresh["period"]) == (0, 100, "2026-12")


def test_me_shows_the_credits_to_a_profile_key(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    profile = tenant.api.post("/profiles", json={"name": "client"}).json()["data"]["id"]
    key = tenant.api.post("/keys", json={"name": "p", "profile_id": profile}).json()["data"]["key"]
    client = httpx.Client(
        base_url=str(tenant.api.base_url), headers={"Authorization": f"Bearer {key}"}
    )
    with client:
        # A profile key may write posts, so it may have captions written: the
        # organisation's credits.
        assert client.post(ROUTE, json={"topic": "a", "count": 2}).status_code == 200
        assert client.get("/me").json()["data"]["ai_credits"]["used"] == 2
    assert tenant.api.get("/me").json()["data"]["ai_credits"]["remaining"] == 98


def test_a_key_without_the_scope_is_refused(app: Flask, tenant: Tenant) -> None:
    reader = tenant.api.post("/keys", json={"name": "r", "scopes": ["posts:read"]})
    key = reader.json()["data"]["key"]
    response = tenant.api.post(
        ROUTE, json={"topic": "a"}, headers={"Authorization": f"Bearer {key}"}
    )
    error = assert_error(response, 403, "insufficient_scope")
    assert error["details"]["required_scope"] == "ai"


# -------------------------------------------------------------- configuration, failures


def test_without_a_model_the_route_says_what_to_set(app: Flask, tenant: Tenant) -> None:
    with settings(app, ai_base_url=None, ai_model=None, ai_api_key=None):
        error = assert_error(tenant.api.post(ROUTE, json={"topic": "a"}), 501, "ai_not_configured")
    for name in ("CRIER_AI_BASE_URL", "CRIER_AI_MODEL", "CRIER_AI_API_KEY"):
        assert name in error["message"]
    assert used(app, tenant.organisation_id) == 0


def test_validation_comes_before_configuration(app: Flask, tenant: Tenant) -> None:
    with settings(app, ai_base_url=None):
        assert_error(tenant.api.post(ROUTE, json={}), 400, "validation_error")


def test_a_missing_model_is_named(app: Flask, tenant: Tenant) -> None:
    with settings(app, ai_model=None):
        error = assert_error(tenant.api.post(ROUTE, json={"topic": "a"}), 501, "ai_not_configured")
    assert error["message"].endswith("Missing: CRIER_AI_MODEL.")


def test_outcomes_are_counted(app: Flask, tenant: Tenant, sandbox: httpx.Client) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ok, captions = (
        sample("crier_ai_caption_requests_total", outcome="ok"),
        sample("crier_ai_captions_total"),
    )
    failed = sample("crier_ai_caption_requests_total", outcome="ai_upstream_error")
    assert tenant.api.post(ROUTE, json={"topic": "a", "count": 2}).status_code == 200
    sandbox.post("/_faults", json={"openai": {"error_rate": 1.0}})
    assert tenant.api.post(ROUTE, json={"topic": "a"}).status_code == 502
    assert sample("crier_ai_caption_requests_total", outcome="ok") == ok + 1
    assert sample("crier_ai_captions_total") == captions + 2
    assert sample("crier_ai_caption_requests_total", outcome="ai_upstream_error") == failed + 1


def test_a_trickling_server_meets_the_deadline(app: Flask, tenant: Tenant) -> None:
    trickle = TrickleServer(interval=0.5)  # a full answer would take minutes
    with trickle, settings(app, ai_base_url=f"{trickle.url}/v1", ai_deadline=2.0):
        started = time.monotonic()
        error = assert_error(tenant.api.post(ROUTE, json={"topic": "a"}), 504, "ai_timeout")
        elapsed = time.monotonic() - started
    assert "2 seconds" in error["message"]
    # Far below the minutes the answer would take (generous for a loaded machine).
    assert elapsed < 20, elapsed
    assert used(app, tenant.organisation_id) == 0


def test_rate_limited_upstream_is_retried_once_then_502(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"openai": {"rate_limit_every": 1, "retry_after": 1}})
    assert_error(tenant.api.post(ROUTE, json={"topic": "a"}), 502, "ai_rate_limited")
    assert arrived(sandbox) == 2
    assert used(app, tenant.organisation_id) == 0


def test_a_retry_after_past_the_deadline_is_not_waited_for(
    app: Flask, tenant: Tenant, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"openai": {"rate_limit_every": 1, "retry_after": 60}})
    with settings(app, ai_deadline=5.0):
        assert_error(tenant.api.post(ROUTE, json={"topic": "a"}), 502, "ai_rate_limited")
    assert arrived(sandbox) == 1


def test_a_refused_key_is_reported_and_never_logged(
    app: Flask, tenant: Tenant, sandbox: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.post("/_faults", json={"openai": {"revoked_tokens": [AI_API_KEY]}})
    with caplog.at_level(logging.DEBUG):
        response = tenant.api.post(ROUTE, json={"topic": "a"})
    assert_error(response, 502, "ai_auth_failed")
    assert AI_API_KEY not in response.text
    assert AI_API_KEY not in caplog.text


def test_an_unreachable_server_is_a_502(app: Flask, tenant: Tenant) -> None:
    with settings(app, ai_base_url="http://127.0.0.1:9/v1", ai_deadline=5.0):
        assert_error(tenant.api.post(ROUTE, json={"topic": "a"}), 502, "ai_unreachable")


def test_settings_from_the_environment(app: Flask) -> None:
    from app.config import Settings

    parsed = Settings.from_env(
        {
            "CRIER_AI_BASE_URL": "http://127.0.0.1:11434/v1/",
            "CRIER_AI_MODEL": "llama3.2",
            "CRIER_AI_API_KEY": "sk-secret",
            "CRIER_AI_DEADLINE": "12.5",
            "CRIER_AI_MONTHLY_CREDITS": "250",
        }
    )
    assert parsed.ai_base_url == "http://127.0.0.1:11434/v1"
    assert (parsed.ai_model, parsed.ai_deadline, parsed.ai_monthly_credits) == (
        "llama3.2",
        12.5,
        250,
    )
    assert "sk-secret" not in repr(parsed)


def test_the_analytics_summary_counts_the_credits_spent_in_its_period(
    tenant: Tenant, sandbox: httpx.Client
) -> None:
    def spent(query: str) -> int:
        response = tenant.api.get(f"/analytics/summary?{query}")
        assert response.status_code == 200, response.text
        return response.json()["data"]["ai_credits"]["used_this_period"]

    assert tenant.api.post(ROUTE, json={"topic": "a", "count": 3}).status_code == 200
    sandbox.post("/_faults", json={"openai": {"error_rate": 1.0, "error_status": 503}})
    assert tenant.api.post(ROUTE, json={"topic": "a", "count": 2}).status_code == 502
    # Taken, then given back when the model failed: only the delivered captions count.
    assert spent("period=today") == 3
    assert spent("period=all") == 3
    assert spent("period=custom&from=2020-01-01&to=2020-01-31") == 0
