"""Bad input to POST /posts: every mistake gets a 4xx envelope that says what to fix, never a 500.

Also the platform rules checked at intake, so a post a platform would refuse at publish time
is refused while the caller is still there to fix it.
"""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from app.platforms import PLATFORMS
from tests.api.helpers import assert_error, count, future, ok_data, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes, mp4_bytes, png_bytes

JSON = {"Content-Type": "application/json"}


def body_for(account_id: int, **changes: Any) -> dict[str, Any]:
    """A valid scheduled post for one account, with `changes` applied."""
    body: dict[str, Any] = {
        "content": "hello",
        "account_ids": [account_id],
        "scheduled_at": future(),
    }
    body.update(changes)
    return body


def refused(response: Any, path: str, message: str) -> None:
    """A platform-rule refusal: the one problem in details, and in the message with its path."""
    error = assert_error(response, 400, "validation_error", f"{path}: {message}")
    assert error["details"] == {path: [message]}


# ------------------------------------------------------------------ the body itself


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"content": "hi",',
            "The request body is not valid JSON: Expecting property name enclosed in double "
            "quotes at line 1 column 18.",
        ),
        (
            b"{'content': 'hi'}",
            "The request body is not valid JSON: Expecting property name enclosed in double "
            "quotes at line 1 column 2.",
        ),
        (b"", "The request body is empty; send a JSON object."),
        (b"   \n", "The request body is empty; send a JSON object."),
        (b'{"content": "\xff\xfe"}', "The request body is not valid UTF-8."),
        (b"[1, 2]", "The request body must be a JSON object."),
        (b'"hello"', "The request body must be a JSON object."),
        (b"null", "The request body must be a JSON object."),
        (b"42", "The request body must be a JSON object."),
    ],
)
def test_malformed_bodies_are_400(tenant: Tenant, raw: bytes, message: str) -> None:
    response = tenant.api.post("/posts", content=raw, headers=JSON)
    assert_error(response, 400, "validation_error", message)


def test_every_json_endpoint_refuses_bad_bodies(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    post_id = ok_data(tenant.api.post("/posts", json=body_for(account_id)), 201)["post_id"]
    for method, path in (
        ("POST", "/posts"),
        ("PATCH", f"/posts/{post_id}"),
        ("POST", "/posts/bulk"),
    ):
        assert_error(
            tenant.api.request(method, path, content=b"{nope", headers=JSON),
            400,
            "validation_error",
            "The request body is not valid JSON: Expecting property name enclosed in double "
            "quotes at line 1 column 2.",
        )
        assert_error(
            tenant.api.request(method, path, content=b"{}", headers={"Content-Type": "text/csv"}),
            415,
            "unsupported_media_type",
            "Content-Type must be application/json; got text/csv.",
        )
        assert_error(
            tenant.api.request(method, path, content=b"[" * 70 + b"]" * 70, headers=JSON),
            400,
            "validation_error",
            "The request body nests too deeply; at most 64 levels of arrays and objects.",
        )


def test_deeply_nested_json_is_400_not_500(tenant: Tenant, make_account: Any) -> None:
    # 100 000 open brackets fit in the 1 MiB limit and blow Python's recursion limit.
    response = tenant.api.post("/posts", content=b"[" * 100_000, headers=JSON)
    assert_error(
        response,
        400,
        "validation_error",
        "The request body nests too deeply; at most 64 levels of arrays and objects.",
    )
    # Brackets inside strings (even after an escaped quote) are text, not nesting.
    account_id = make_account(tenant, "threads")
    text = '\\"' + "[{" * 100
    created = tenant.api.post("/posts", json=body_for(account_id, content=text))
    assert ok_data(created, 201)["accounts_count"] == 1


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("text/plain", "Content-Type must be application/json; got text/plain."),
        (
            "application/x-www-form-urlencoded",
            "Content-Type must be application/json; got application/x-www-form-urlencoded.",
        ),
        (None, "Content-Type must be application/json; none was given."),
    ],
)
def test_wrong_content_type_is_415(
    tenant: Tenant, make_account: Any, content_type: str | None, message: str
) -> None:
    account_id = make_account(tenant, "x")
    headers = {"Content-Type": content_type} if content_type else {}
    raw = b'{"content": "hi", "account_ids": [%d]}' % account_id
    response = tenant.api.post("/posts", content=raw, headers=headers)
    assert_error(response, 415, "unsupported_media_type", message)


def test_json_with_charset_and_vendor_type_is_accepted(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    raw = b'{"content": "hi", "account_ids": [%d]}' % account_id
    for content_type in ("application/json; charset=utf-8", "application/vnd.crier+json"):
        response = tenant.api.post("/posts", content=raw, headers={"Content-Type": content_type})
        assert response.status_code == 201, response.text


def test_oversized_body_is_413(tenant: Tenant, make_account: Any, app: Flask) -> None:
    account_id = make_account(tenant, "x")
    raw = b'{"content": "%s", "account_ids": [%d]}' % (b"a" * (1024 * 1024), account_id)
    response = tenant.api.post("/posts", content=raw, headers=JSON)
    message = "The request body is too large; JSON bodies may be at most 1048576 bytes."
    assert_error(response, 413, "payload_too_large", message)

    def chunks() -> Any:
        """Sent chunked: no Content-Length, so the limit must hold while reading."""
        yield raw[: len(raw) // 2]
        yield raw[len(raw) // 2 :]

    response = tenant.api.post("/posts", content=chunks(), headers=JSON)
    assert_error(response, 413, "payload_too_large", message)
    assert count(app, "posts") == 0


def test_missing_required_fields(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    response = tenant.api.post("/posts", json={"account_ids": [account_id]})
    error = assert_error(
        response, 400, "validation_error", "Missing required field: content is required."
    )
    assert error["details"] == {"content": ["Missing data for required field."]}
    response = tenant.api.post("/posts", json={"content": "hi", "account_ids": None})
    error = assert_error(
        response, 400, "validation_error", "Missing required field: account_ids is required."
    )
    assert error["details"] == {"account_ids": ["Missing data for required field."]}


# --------------------------------------------------------------- wrong types, per field

WRONG_TYPES: list[tuple[dict[str, Any], str, str]] = [
    ({"content": 123}, "content", "Not a valid string."),
    ({"content": ["a"]}, "content", "Not a valid string."),
    ({"content": {"text": "a"}}, "content", "Not a valid string."),
    ({"content": True}, "content", "Not a valid string."),
    ({"account_ids": "1"}, "account_ids", "Not a valid list."),
    ({"account_ids": 1}, "account_ids", "Not a valid list."),
    ({"account_ids": {"1": 1}}, "account_ids", "Not a valid list."),
    ({"account_ids": ["1"]}, "account_ids[0]", "Not a valid integer."),
    ({"account_ids": [1.5]}, "account_ids[0]", "Not a valid integer."),
    ({"account_ids": [True]}, "account_ids[0]", "Not a valid integer."),
    ({"account_ids": [None]}, "account_ids[0]", "Field may not be null."),
    (
        {"account_ids": [0]},
        "account_ids[0]",
        "Must be greater than or equal to 1 and less than or equal to 9223372036854775807.",
    ),
    (
        {"account_ids": [2**70]},
        "account_ids[0]",
        "Must be greater than or equal to 1 and less than or equal to 9223372036854775807.",
    ),
    ({"account_ids": []}, "account_ids", "Give between 1 and 500 account ids."),
    ({"scheduled_at": 1700000000}, "scheduled_at", "Not a valid string."),
    ({"scheduled_at": ["2030-01-01T00:00:00Z"]}, "scheduled_at", "Not a valid string."),
    (
        {"scheduled_at": "tomorrow"},
        "scheduled_at",
        "scheduled_at must be an ISO 8601 date and time, e.g. 2026-04-15T14:30:00Z.",
    ),
    (
        {"scheduled_at": "2030-13-45T10:00:00Z"},
        "scheduled_at",
        "scheduled_at '2030-13-45T10:00:00Z' is not a valid ISO 8601 date and time, "
        "e.g. 2026-04-15T14:30:00Z.",
    ),
    (
        {"scheduled_at": "9999-12-31T23:59:59-23:59"},
        "scheduled_at",
        "scheduled_at may be at most 730 days ahead.",
    ),
    (
        {"scheduled_at": "0001-01-01T00:00:00+01:00"},
        "scheduled_at",
        "scheduled_at is in the past; omit it to publish now.",
    ),
    ({"timezone": 5}, "timezone", "Not a valid string."),
    ({"timezone": "Mars/Olympus"}, "timezone", "Unknown IANA time zone: 'Mars/Olympus'."),
    ({"timezone": "America"}, "timezone", "Unknown IANA time zone: 'America'."),
    ({"timezone": "../../etc/passwd"}, "timezone", "Unknown IANA time zone: '../../etc/passwd'."),
    ({"media_ids": "abc"}, "media_ids", "Not a valid list."),
    ({"media_ids": ["not-a-uuid"]}, "media_ids[0]", "Not a valid UUID."),
    ({"media_ids": [5]}, "media_ids[0]", "Not a valid UUID."),
    ({"platform_content": "x"}, "platform_content", "Invalid input type."),
    ({"platform_content": ["x"]}, "platform_content", "Invalid input type."),
    ({"platform_content": {"x": "short"}}, "platform_content.x", "Invalid input type."),
    (
        {"platform_content": {"x": {"content": 5}}},
        "platform_content.x.content",
        "Not a valid string.",
    ),
    (
        {"platform_content": {"x": {"settings": "s"}}},
        "platform_content.x.settings",
        "Invalid input type.",
    ),
    (
        {"platform_content": {"x": {"settings": {"replySettings": "nobody"}}}},
        "platform_content.x.settings.replySettings",
        "Must be one of: everyone, following, mentionedUsers.",
    ),
    (
        {"platform_content": {"instagram": {"contentType": "Carousel"}}},
        "platform_content.instagram.contentType",
        "Must be one of: Post, Story, Reels, Trial Reel.",
    ),
    (
        {"platform_content": {"instagram": {"settings": {"altText": "a" * 101}}}},
        "platform_content.instagram.settings.altText",
        "Longer than maximum length 100.",
    ),
    (
        {"platform_content": {"instagram": {"settings": {"coverPhotoTimestamp": "2.5"}}}},
        "platform_content.instagram.settings.coverPhotoTimestamp",
        "Not a valid number.",
    ),
    (
        {"platform_content": {"instagram": {"settings": {"coverPhotoTimestamp": -1}}}},
        "platform_content.instagram.settings.coverPhotoTimestamp",
        "Must be greater than or equal to 0.",
    ),
    (
        {"platform_content": {"tiktok": {"settings": {"allowComments": "yes"}}}},
        "platform_content.tiktok.settings.allowComments",
        "Not a valid boolean.",
    ),
    (
        {"platform_content": {"tiktok": {"settings": {"allowDuet": 1}}}},
        "platform_content.tiktok.settings.allowDuet",
        "Not a valid boolean.",
    ),
    (
        {"platform_content": {"tiktok": {"settings": {"privacyLevel": "EVERYONE"}}}},
        "platform_content.tiktok.settings.privacyLevel",
        "Must be one of: PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR, "
        "SELF_ONLY.",
    ),
    (
        {"platform_content": {"youtube": {"settings": {"title": 5}}}},
        "platform_content.youtube.settings.title",
        "Not a valid string.",
    ),
    (
        {"platform_content": {"youtube": {"settings": {"title": "t" * 101}}}},
        "platform_content.youtube.settings.title",
        "Longer than maximum length 100.",
    ),
    (
        {"platform_content": {"youtube": {"settings": {"tags": "a,b"}}}},
        "platform_content.youtube.settings.tags",
        "Not a valid list.",
    ),
    (
        {"platform_content": {"youtube": {"settings": {"tags": ["ok", 3]}}}},
        "platform_content.youtube.settings.tags[1]",
        "Not a valid string.",
    ),
    (
        {"platform_content": {"youtube": {"settings": {"privacyStatus": "secret"}}}},
        "platform_content.youtube.settings.privacyStatus",
        "Must be one of: public, unlisted, private.",
    ),
    (
        {"platform_content": {"linkedin": {"settings": {"visibility": "public"}}}},
        "platform_content.linkedin.settings.visibility",
        "Must be one of: PUBLIC, CONNECTIONS, LOGGED_IN_MEMBERS.",
    ),
    (
        {"platform_content": {"facebook": {"settings": {"videoType": "story"}}}},
        "platform_content.facebook.settings.videoType",
        "Must be one of: reel, video.",
    ),
]


@pytest.mark.parametrize(("changes", "path", "message"), WRONG_TYPES)
def test_wrong_types_in_every_field(
    tenant: Tenant, make_account: Any, app: Flask, changes: dict[str, Any], path: str, message: str
) -> None:
    account_id = make_account(tenant, "x")
    response = tenant.api.post("/posts", json=body_for(account_id, **changes))
    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {path: [message]}
    if path == "timezone" and message.startswith("Unknown"):
        name = changes["timezone"]
        summary = f"Unknown time zone {name!r}; use an IANA name such as America/New_York."
    elif path == "scheduled_at" and not message.startswith("Not a valid"):
        summary = message
    else:
        summary = f"Invalid request: {path}: {message}"
    assert error["message"] == summary
    assert count(app, "posts") == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\u0000b", "Must not contain NUL characters (\\u0000)."),
        ("a\ud800b", "Must not contain unpaired UTF-16 surrogates."),
    ],
)
def test_unstorable_characters_are_400(
    tenant: Tenant, make_account: Any, text: str, message: str
) -> None:
    """PostgreSQL cannot store NUL, and UTF-8 cannot encode a lone surrogate."""
    account_id = make_account(tenant, "threads")
    for changes, path in (
        ({"content": text}, "content"),
        ({"platform_content": {"threads": {"content": text}}}, "platform_content.threads.content"),
        ({"timezone": text}, "timezone"),
    ):
        body = body_for(account_id, **changes)
        raw = _dumps_ascii(body)
        response = tenant.api.post("/posts", content=raw, headers=JSON)
        error = assert_error(response, 400, "validation_error")
        assert error["details"] == {path: [message]}, error


def _dumps_ascii(body: dict[str, Any]) -> bytes:
    """JSON with \\u escapes, which is how a lone surrogate travels in valid UTF-8 JSON."""
    import json

    return json.dumps(body, ensure_ascii=True).encode()


# ------------------------------------------------------------------------ unknown fields


def test_unknown_top_level_field(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    response = tenant.api.post("/posts", json=body_for(account_id, publish_at="now", tags=["a"]))
    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {"publish_at": ["Unknown field."], "tags": ["Unknown field."]}
    assert error["message"] == "Invalid request: publish_at: Unknown field.; tags: Unknown field."


def test_unknown_platform_key(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    body = body_for(account_id, platform_content={"myspace": {"content": "hi"}})
    error = assert_error(tenant.api.post("/posts", json=body), 400, "validation_error")
    assert error["details"] == {"platform_content.myspace": ["Unknown field."]}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_unknown_fields_in_each_platform_entry_and_settings(
    tenant: Tenant, make_account: Any, platform: str
) -> None:
    account_id = make_account(tenant, "x")
    entry = {"content": "hi", "caption": "no", "settings": {"bogus": True}}
    body = body_for(account_id, platform_content={platform: entry})
    error = assert_error(tenant.api.post("/posts", json=body), 400, "validation_error")
    assert error["details"] == {
        f"platform_content.{platform}.caption": ["Unknown field."],
        f"platform_content.{platform}.settings.bogus": ["Unknown field."],
    }


def test_settings_of_another_platform_are_unknown(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    body = body_for(account_id, platform_content={"x": {"settings": {"privacyLevel": "SELF_ONLY"}}})
    error = assert_error(tenant.api.post("/posts", json=body), 400, "validation_error")
    assert error["details"] == {"platform_content.x.settings.privacyLevel": ["Unknown field."]}


# ------------------------------------------------------------------------ platform rules


@pytest.mark.parametrize(
    ("platform", "limit", "unit"),
    [
        ("x", 280, "weighted characters"),
        ("threads", 500, "characters"),
        ("linkedin", 3000, "characters"),
        ("instagram", 2200, "characters"),
        ("facebook", 63206, "characters"),
    ],
)
def test_text_length_per_platform(
    tenant: Tenant, make_account: Any, platform: str, limit: int, unit: str
) -> None:
    account_id = make_account(tenant, platform)
    media = [upload(tenant.api, "p.jpg", jpeg_bytes())] if platform == "instagram" else []
    at_limit = body_for(account_id, content="a" * limit, media_ids=media)
    assert tenant.api.post("/posts", json=at_limit).status_code == 201
    over = body_for(account_id, content="a" * (limit + 1), media_ids=media)
    label = {"x": "X", "linkedin": "LinkedIn"}.get(platform, platform.capitalize())
    refused(
        tenant.api.post("/posts", json=over),
        "content",
        f"{label} allows at most {limit} {unit}; this text has {limit + 1}.",
    )


def test_x_weighs_urls_and_cjk(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    # A URL of any length counts 23: 256 + 1 + 23 = 280 fits.
    fits = "a" * 256 + " " + "https://example.com/" + "p" * 200
    assert tenant.api.post("/posts", json=body_for(account_id, content=fits)).status_code == 201
    # CJK characters weigh 2: 141 of them are 282.
    refused(
        tenant.api.post("/posts", json=body_for(account_id, content="漢" * 141)),
        "content",
        "X allows at most 280 weighted characters; this text has 282.",
    )


def test_platform_override_is_checked_where_it_was_given(tenant: Tenant, make_account: Any) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    body = {
        "content": "a" * 1000,  # fine for LinkedIn, too long for X
        "account_ids": [x, linkedin],
        "scheduled_at": future(),
        "platform_content": {"x": {"content": "b" * 300}},
    }
    refused(
        tenant.api.post("/posts", json=body),
        "platform_content.x.content",
        "X allows at most 280 weighted characters; this text has 300.",
    )
    body["platform_content"] = {"x": {"content": "short for X"}}
    assert tenant.api.post("/posts", json=body).status_code == 201


def test_instagram_needs_media(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "instagram")
    refused(
        tenant.api.post("/posts", json=body_for(account_id)),
        "media_ids",
        "Instagram Post needs at least one image or video; no media_ids were given.",
    )


def test_instagram_story_reels_trial_reel_media_rules(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "instagram")
    image_a = upload(tenant.api, "a.jpg", jpeg_bytes())
    image_b = upload(tenant.api, "b.jpg", jpeg_bytes(color="blue"))
    video = upload(tenant.api, "clip.mp4", mp4_bytes(12))

    def post(content_type: str, media: list[str], *, in_settings: bool = False) -> Any:
        entry: dict[str, Any] = (
            {"settings": {"contentType": content_type}}
            if in_settings
            else {"contentType": content_type}
        )
        body = body_for(account_id, media_ids=media, platform_content={"instagram": entry})
        return tenant.api.post("/posts", json=body)

    refused(
        post("Story", [image_a, image_b]),
        "media_ids",
        "Instagram Story takes exactly one image or video; got 2 images and 0 videos.",
    )
    assert post("Story", [image_a]).status_code == 201
    assert post("Story", [video]).status_code == 201
    refused(
        post("Reels", [image_a]),
        "media_ids",
        "Instagram Reels takes exactly one video; got 1 image and 0 videos.",
    )
    refused(
        post("Reels", []),
        "media_ids",
        "Instagram Reels needs exactly one video; no media_ids were given.",
    )
    assert post("Reels", [video]).status_code == 201
    refused(
        post("Trial Reel", [image_a]),
        "media_ids",
        "Instagram Trial Reel takes exactly one video; got 1 image and 0 videos.",
    )
    assert post("Trial Reel", [video]).status_code == 201
    # The contentType may also sit inside settings.
    refused(
        post("Reels", [image_a], in_settings=True),
        "media_ids",
        "Instagram Reels takes exactly one video; got 1 image and 0 videos.",
    )


def test_instagram_refuses_png_and_short_video(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "instagram")
    png = upload(tenant.api, "p.png", png_bytes())
    short = upload(tenant.api, "short.mp4", mp4_bytes(2))
    refused(
        tenant.api.post("/posts", json=body_for(account_id, media_ids=[png])),
        "media_ids",
        f"Instagram Post does not accept image/png ({png}); it takes image/jpeg.",
    )
    refused(
        tenant.api.post("/posts", json=body_for(account_id, media_ids=[short])),
        "media_ids",
        "Instagram Post videos must last at least 3 s; short.mp4 lasts 2.0 s.",
    )


def test_instagram_alt_text_and_cover_rules(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "instagram")
    video = upload(tenant.api, "clip.mp4", mp4_bytes(12))
    alt = {"instagram": {"settings": {"altText": "A red square"}}}
    refused(
        tenant.api.post(
            "/posts", json=body_for(account_id, media_ids=[video], platform_content=alt)
        ),
        "platform_content.instagram.settings.altText",
        "Instagram alt text applies to images only.",
    )
    cover = {"instagram": {"contentType": "Reels", "settings": {"coverPhotoTimestamp": 30}}}
    refused(
        tenant.api.post(
            "/posts", json=body_for(account_id, media_ids=[video], platform_content=cover)
        ),
        "platform_content.instagram.settings.coverPhotoTimestamp",
        "coverPhotoTimestamp is after the end of the video.",
    )


def test_tiktok_and_youtube_need_a_video(tenant: Tenant, make_account: Any) -> None:
    tiktok = make_account(tenant, "tiktok")
    youtube = make_account(tenant, "youtube")
    image = upload(tenant.api, "a.jpg", jpeg_bytes())
    video = upload(tenant.api, "clip.mp4", mp4_bytes(12))
    title = {"youtube": {"settings": {"title": "Launch"}}}

    refused(
        tenant.api.post("/posts", json=body_for(tiktok)),
        "media_ids",
        "TikTok needs exactly one video; no media_ids were given.",
    )
    refused(
        tenant.api.post("/posts", json=body_for(tiktok, media_ids=[image])),
        "media_ids",
        "TikTok takes exactly one video; got 1 image and 0 videos.",
    )
    refused(
        tenant.api.post("/posts", json=body_for(youtube, platform_content=title)),
        "media_ids",
        "YouTube needs exactly one video; no media_ids were given.",
    )
    ok = body_for(tiktok, media_ids=[video])
    assert tenant.api.post("/posts", json=ok).status_code == 201
    ok = body_for(youtube, media_ids=[video], platform_content=title)
    assert tenant.api.post("/posts", json=ok).status_code == 201


def test_youtube_title_required(tenant: Tenant, make_account: Any) -> None:
    youtube = make_account(tenant, "youtube")
    video = upload(tenant.api, "clip.mp4", mp4_bytes(12))
    refused(
        tenant.api.post("/posts", json=body_for(youtube, media_ids=[video])),
        "platform_content.youtube.settings.title",
        "YouTube requires a title (platform_content.youtube.settings.title).",
    )
    blank = {"youtube": {"settings": {"title": "   "}}}
    error = assert_error(
        tenant.api.post(
            "/posts", json=body_for(youtube, media_ids=[video], platform_content=blank)
        ),
        400,
        "validation_error",
    )
    assert error["details"] == {
        "platform_content.youtube.settings.title": ["The title must not be empty."]
    }


def test_media_size_and_duration_limits(tenant: Tenant, make_account: Any) -> None:
    x = make_account(tenant, "x")
    facebook = make_account(tenant, "facebook")
    # Noise does not compress: a 1800x1800 noise JPEG at quality 100 is over X's 5 MB.
    noise = Image.frombytes("RGB", (1800, 1800), os.urandom(1800 * 1800 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "JPEG", quality=100)
    big = buffer.getvalue()
    assert len(big) > 5 * 1024 * 1024
    big_id = upload(tenant.api, "big.jpg", big)
    refused(
        tenant.api.post("/posts", json=body_for(x, media_ids=[big_id])),
        "media_ids",
        f"big.jpg is {len(big) / 1048576:.1f} MB; X allows at most 5 MB per image.",
    )
    long_clip = upload(tenant.api, "long.mp4", mp4_bytes(150))
    refused(
        tenant.api.post("/posts", json=body_for(x, media_ids=[long_clip])),
        "media_ids",
        "X videos may last at most 140 s; long.mp4 lasts 150.0 s.",
    )
    reel = {"facebook": {"settings": {"videoType": "reel"}}}
    clip = upload(tenant.api, "reel.mp4", mp4_bytes(100))
    refused(
        tenant.api.post("/posts", json=body_for(facebook, media_ids=[clip], platform_content=reel)),
        "media_ids",
        "Facebook reel videos may last at most 90 s; reel.mp4 lasts 100.0 s.",
    )


def test_x_takes_at_most_four_images(tenant: Tenant, make_account: Any) -> None:
    x = make_account(tenant, "x")
    images = [upload(tenant.api, f"{i}.png", png_bytes(8 + i, 8)) for i in range(5)]
    refused(
        tenant.api.post("/posts", json=body_for(x, media_ids=images)),
        "media_ids",
        "X takes up to 4 images or one video; got 5 images and 0 videos.",
    )
    created = ok_data(tenant.api.post("/posts", json=body_for(x, media_ids=images[:4])), 201)
    assert created["accounts_count"] == 1


def test_every_platform_reports_its_own_errors_at_once(tenant: Tenant, make_account: Any) -> None:
    accounts = [make_account(tenant, p) for p in ("instagram", "tiktok", "youtube")]
    body = {"content": "hi", "account_ids": accounts, "scheduled_at": future()}
    error = assert_error(tenant.api.post("/posts", json=body), 400, "validation_error")
    assert error["details"] == {
        "media_ids": [
            "Instagram Post needs at least one image or video; no media_ids were given.",
            "TikTok needs exactly one video; no media_ids were given.",
            "YouTube needs exactly one video; no media_ids were given.",
        ],
        "platform_content.youtube.settings.title": [
            "YouTube requires a title (platform_content.youtube.settings.title)."
        ],
    }
