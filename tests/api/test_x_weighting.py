"""X's weighted length by twitter-text v3 (twitter-text-parser), at intake and in the
worker (both call app.platforms.count_x_weighted through check_platform_rules)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twitter_text import parse_tweet

from app.platforms import TWITTER_TEXT_MAX_INPUT, count_x_weighted
from tests.api.helpers import assert_error, future
from tests.conftest import Tenant

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # one ZWJ sequence


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("Hello", 5),
        ("Hi http://test.co", 26),  # an explicit URL counts 23
        ("see example.com", 27),  # a bare domain is a URL too
        ("https://example.com/" + "p" * 300, 23),
        (FAMILY, 2),  # a ZWJ sequence is one emoji: 2, not 4 emoji + 3 joiners
        ("\U0001f44d\U0001f3fd", 2),  # skin-tone modifier sequence
        ("\u6f22\u5b57", 4),  # CJK weighs 2
        ("caf\u0065\u0301", 4),  # NFC: e + combining acute is one character
        ("", 0),
    ],
)
def test_weighted_length_follows_twitter_text(text: str, weight: int) -> None:
    assert count_x_weighted(text) == weight


def test_intake_counts_zwj_emoji_and_bare_domains_like_x(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")

    def post(content: str) -> Any:
        return tenant.api.post(
            "/posts",
            json={"content": content, "account_ids": [account_id], "scheduled_at": future()},
        )

    # 140 family emoji weigh exactly 280: accepted (a per-code-point count said 1,540).
    assert post(FAMILY * 140).status_code == 201
    error = assert_error(post(FAMILY * 141), 400, "validation_error")
    assert error["details"]["content"] == [
        "X allows at most 280 weighted characters; this text has 282."
    ]
    # A bare domain counts 23 (a per-character count said 11): 257 + 1 + 23 = 281.
    error = assert_error(post("a" * 257 + " example.com"), 400, "validation_error")
    assert error["details"]["content"] == [
        "X allows at most 280 weighted characters; this text has 281."
    ]


def test_hostile_texts_are_counted_in_linear_time() -> None:
    for text in ("a." * 50_000, "http://" + "a." * 400, ("a." * 40 + " ") * 20):
        started = time.monotonic()
        assert count_x_weighted(text) >= 23
        assert time.monotonic() - started < 0.5


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=TWITTER_TEXT_MAX_INPUT // 4))
def test_any_text_has_a_weight(text: str) -> None:
    weight = count_x_weighted(text)
    assert 0 <= weight <= 2 * len(text) + 23 * (text.count(".") + 1)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.characters(max_codepoint=127, blacklist_characters="."),
            st.sampled_from(["\r\n", "http://", "#1", "@a", "\u00a9", "\u20e3"]),
        ),
        max_size=200,
    ).map("".join)
)
def test_the_ascii_shortcut_weighs_as_twitter_text_does(text: str) -> None:
    # Plain ASCII without a dot skips the parser; everything else still goes through it.
    assert count_x_weighted(text) == parse_tweet(text).weightedLength
