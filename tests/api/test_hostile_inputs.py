"""Inputs a review found answering 500: each is now a 4xx with the envelope.

The Hypothesis properties below then throw arbitrary bytes at the media probes and
arbitrary strings at the time parsing: nothing escapes but the documented errors.
"""

from __future__ import annotations

import io
import os
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError as MarshmallowError

from app.api.envelope import ApiError
from app.samples import mp4_bytes
from app.schedule import parse_schedule
from app.schemas import ListPostsQuery
from app.services import media as media_service
from tests.api.helpers import assert_error, ok_data
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes, png_bytes

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def box(kind: bytes, payload: bytes = b"", size: int | None = None) -> bytes:
    return struct.pack(">I4s", size if size is not None else 8 + len(payload), kind) + payload


def ftyp() -> bytes:
    return box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")


def _nest(depth: int) -> bytes:
    inner = box(b"tkhd")
    for _ in range(depth):
        inner = box(b"moov", inner)
    return inner


def test_a_4300_digit_json_integer_is_a_400(tenant: Tenant) -> None:
    for body in ('{"content": "x", "account_ids": [' + "9" * 5000 + "]}", "1" * 4301):
        response = tenant.api.post(
            "/posts", content=body, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400, "validation_error")
        assert "number too long" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+23:59"],
)
def test_instants_outside_the_calendar_in_utc_are_a_400(tenant: Tenant, value: str) -> None:
    for name in ("scheduled_from", "scheduled_to", "created_from", "created_to"):
        response = tenant.api.get("/posts", params={name: value})
        error = assert_error(response, 400, "validation_error")
        assert error["details"][name] == [
            "Not a representable instant: in UTC it falls outside years 1 to 9999."
        ]
    # The edges themselves, in UTC, are fine.
    ok_data(tenant.api.get("/posts", params={"scheduled_from": "0001-01-01T00:00:00Z"}))


def test_huge_path_and_query_numbers_are_4xx(tenant: Tenant) -> None:
    assert tenant.api.get("/accounts/" + "9" * 5000).status_code == 404
    response = tenant.api.get("/posts", params={"account_id": "9" * 5000})
    assert_error(response, 400, "validation_error")


@pytest.mark.parametrize(
    "data",
    [
        # A track header of size 8: a header with no body.
        ftyp() + box(b"moov", box(b"trak", box(b"tkhd"))),
        # A thousand nested moov boxes.
        ftyp() + _nest(1000),
        # A 64-bit size that runs past the file, and a truncated 64-bit size.
        ftyp() + box(b"moov", struct.pack(">I4sQ", 1, b"trak", 2**63)),
        ftyp() + struct.pack(">I4s", 1, b"moov") + b"\x00\x01",
    ],
    ids=["tkhd-size-8", "nested-moov", "size64-past-end", "size64-truncated"],
)
def test_hostile_mp4_boxes_upload_without_a_500(tenant: Tenant, data: bytes) -> None:
    response = tenant.api.post("/media/upload", files={"file": ("clip.mp4", data)})
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        media = response.json()["data"]
        assert media["width"] is None and media["height"] is None


def test_a_real_track_header_still_gives_the_size(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4_bytes(3.0, 720, 1280))
    facts = media_service.inspect_media(path, "video/mp4")
    assert (facts.width, facts.height) == (720, 1280)
    assert facts.duration_seconds == pytest.approx(3.0)


# ---------------------------------------------------------------------- properties

FUZZ = settings(
    max_examples=int(os.environ.get("CRIER_FUZZ_EXAMPLES", "150")) * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

box_kinds = st.sampled_from([b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"tkhd"])


@st.composite
def box_trees(draw: st.DrawFn, depth: int = 0) -> bytes:
    """Plausible-looking box trees with lying sizes here and there."""
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(box_kinds)
        if kind != b"tkhd" and depth < 12 and draw(st.booleans()):
            payload = draw(box_trees(depth + 1))
        else:
            payload = draw(st.binary(max_size=120))
        size = draw(
            st.one_of(st.none(), st.sampled_from([0, 1, 7, 8, 16, 2**32 - 1]), st.integers(0, 400))
        )
        parts.append(box(kind, payload, size))
    return b"".join(parts)


@FUZZ
@given(tree=box_trees(), tail=st.binary(max_size=64))
def test_mp4_probe_never_raises(
    tmp_path_factory: pytest.TempPathFactory, tree: bytes, tail: bytes
) -> None:
    path = tmp_path_factory.mktemp("mp4") / "fuzz.mp4"
    path.write_bytes(ftyp() + tree + tail)
    for mime in ("video/mp4", "video/quicktime"):
        facts = media_service.inspect_media(path, mime)
        assert facts.kind == "video"
        assert facts.width is None or facts.width >= 0


@st.composite
def damaged_images(draw: st.DrawFn) -> tuple[bytes, str]:
    original, mime = draw(
        st.sampled_from([(jpeg_bytes(16, 8), "image/jpeg"), (png_bytes(), "image/png")])
    )
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 12))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut]), mime


@FUZZ
@given(sample=damaged_images())
def test_image_probe_raises_only_documented_errors(
    tmp_path_factory: pytest.TempPathFactory, sample: tuple[bytes, str]
) -> None:
    data, mime = sample
    path = tmp_path_factory.mktemp("img") / "fuzz.bin"
    path.write_bytes(data)
    try:
        facts = media_service.inspect_media(path, mime)
    except ApiError as exc:  # ValidationError (400) or payload_too_large (413)
        assert 400 <= exc.status < 500
    else:
        assert facts.kind == "image"


iso_like = st.one_of(
    st.text(max_size=40),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).flatmap(
        lambda moment: st.sampled_from(
            [
                moment.isoformat(),
                moment.isoformat() + "Z",
                moment.isoformat() + "+14:00",
                moment.isoformat() + "-12:00",
                moment.isoformat() + "+23:59",
            ]
        )
    ),
)


@FUZZ
@given(
    raw=iso_like,
    zone=st.sampled_from([None, "UTC", "America/New_York", "Pacific/Kiritimati", "Nope/Zone"]),
)
def test_schedule_parsing_raises_only_validation_errors(raw: str, zone: str | None) -> None:
    try:
        instant, _now = parse_schedule(raw, zone, NOW)
    except ApiError as exc:
        assert exc.status == 400
    else:
        assert instant.tzinfo is not None and instant >= NOW


@FUZZ
@given(
    raw=iso_like,
    name=st.sampled_from(["scheduled_from", "scheduled_to", "created_from", "created_to"]),
)
def test_list_filters_parse_or_refuse(raw: str, name: str) -> None:
    try:
        loaded = ListPostsQuery().load({name: raw})
    except MarshmallowError:
        return
    assert loaded[name].utcoffset().total_seconds() == 0


def test_upload_stream_probe_on_an_empty_moov(tenant: Tenant) -> None:
    data = ftyp() + box(b"moov")
    response = tenant.api.post("/media/upload", files={"file": ("e.mp4", io.BytesIO(data))})
    assert response.status_code in (201, 400, 415), response.text
