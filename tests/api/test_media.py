"""Media upload, listing, deletion and the signed public link platforms pull files from.

The type of a file is read from its bytes: neither its name nor the part's Content-Type
decides it.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from PIL import Image

from app import create_app
from app.db import get_db
from app.models import Media
from app.services import media as media_service
from tests.api.helpers import TIMESTAMP, assert_error, future, ok_data, sql, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes, mp4_bytes, png_bytes
from tests.servers import serve_wsgi

ACCEPTED = "image/jpeg, image/png, image/gif, image/webp, video/mp4, video/quicktime, video/webm"


def stored_path(app: Flask, media_id: str) -> Path:
    [row] = sql(app, "SELECT storage_key FROM media WHERE id = :m", m=media_id)
    return Path(app.config["CRIER"].media_dir) / row["storage_key"]


def test_upload_jpeg_records_its_facts(tenant: Tenant, app: Flask) -> None:
    data = jpeg_bytes(640, 480)
    response = tenant.api.post("/media/upload", files={"file": ("photo.jpg", data)})
    media = ok_data(response, 201)
    assert response.headers["Location"] == f"/media/{media['id']}"
    assert {k: v for k, v in media.items() if k not in ("id", "created_at")} == {
        "filename": "photo.jpg",
        "kind": "image",
        "mime_type": "image/jpeg",
        "size_bytes": len(data),
        "width": 640,
        "height": 480,
        "duration_seconds": None,
        "sha256": hashlib.sha256(data).hexdigest(),
        "media_status": "ready",
        "status_reason": None,
        "source_url": None,
        "profile_id": None,
    }
    assert TIMESTAMP.match(media["created_at"])
    path = stored_path(app, media["id"])
    assert path.read_bytes() == data
    assert path.suffix == ".jpg"


def test_upload_mp4_records_size_and_duration(tenant: Tenant) -> None:
    data = mp4_bytes(12.5, 1080, 1920)
    media = ok_data(tenant.api.post("/media/upload", files={"file": ("clip.mp4", data)}), 201)
    assert (media["kind"], media["mime_type"]) == ("video", "video/mp4")
    assert (media["width"], media["height"]) == (1080, 1920)
    assert media["duration_seconds"] == 12.5


def test_type_comes_from_the_bytes_not_the_name(tenant: Tenant, app: Flask) -> None:
    # A PNG named .mp4 and sent as video/mp4 is a PNG.
    response = tenant.api.post(
        "/media/upload", files={"file": ("x.mp4", png_bytes(20, 10), "video/mp4")}
    )
    media = ok_data(response, 201)
    assert (media["filename"], media["kind"], media["mime_type"]) == ("x.mp4", "image", "image/png")
    assert (media["width"], media["height"]) == (20, 10)
    assert stored_path(app, media["id"]).suffix == ".png"
    # Text named .jpg and sent as image/jpeg is refused.
    response = tenant.api.post(
        "/media/upload", files={"file": ("x.jpg", b"just some text\n" * 20, "image/jpeg")}
    )
    assert_error(
        response,
        415,
        "unsupported_media_type",
        f"Unsupported media type: the file's contents must be one of {ACCEPTED}.",
    )
    # A PDF is recognised, and still refused, by name.
    response = tenant.api.post("/media/upload", files={"file": ("x.jpg", b"%PDF-1.4\n%\xe2\xe3")})
    assert_error(
        response,
        415,
        "unsupported_media_type",
        f"Unsupported media type application/pdf: the file's contents must be one of {ACCEPTED}.",
    )
    assert sql(app, "SELECT count(*) AS n FROM media") == [{"n": 1}]


def test_upload_request_errors(tenant: Tenant) -> None:
    error = assert_error(
        tenant.api.post("/media/upload", files={"other": ("a.jpg", jpeg_bytes())}),
        400,
        "validation_error",
        "Missing required field: file is required (multipart field `file`).",
    )
    assert error["details"] == {"file": ["Missing data for required field."]}
    error = assert_error(
        tenant.api.post("/media/upload", files={"file": ("empty.jpg", b"")}),
        400,
        "validation_error",
        "The uploaded file is empty.",
    )
    assert error["details"] == {"file": ["Empty file."]}
    assert_error(
        tenant.api.post("/media/upload", json={"file": "aGVsbG8="}),
        415,
        "unsupported_media_type",
        "Upload media as multipart/form-data with the file in the field `file`.",
    )
    truncated = png_bytes(64, 64)[:40]
    error = assert_error(
        tenant.api.post("/media/upload", files={"file": ("cut.png", truncated)}),
        400,
        "validation_error",
        "The file looks like an image but cannot be read; it may be truncated.",
    )
    assert error["details"] == {"file": ["Unreadable image."]}


def _raw_multipart(filename: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart body with the filename exactly as given (httpx would escape it)."""
    boundary = b"crier-test-boundary"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size in its header and carries almost no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [30_000, 10_000])
def test_decompression_bombs_are_refused(tenant: Tenant, app: Flask, side: int) -> None:
    """30000² is over Pillow's hard limit (an error), 10000² over its soft one (a warning)."""
    response = tenant.api.post(
        "/media/upload", files={"file": ("bomb.png", _png_header_only(side, side))}
    )
    assert_error(
        response,
        413,
        "payload_too_large",
        f"The image has more than {Image.MAX_IMAGE_PIXELS} pixels; it is too large to process.",
    )
    assert sql(app, "SELECT count(*) AS n FROM media") == [{"n": 0}]


def test_filenames_are_cleaned(tenant: Tenant) -> None:
    cases = {
        b"../../etc/passwd.jpg": "passwd.jpg",
        # Backslashes escaped, as quoted-string requires: the name is C:\Users\me\photo.jpg.
        b"C:\\\\Users\\\\me\\\\photo.jpg": "photo.jpg",
        b"bad\x00name\x07.jpg": "badname.jpg",
        b"n" * 300 + b".jpg": "n" * 251 + ".jpg",
        b"": None,
    }
    for sent, kept in cases.items():
        body, headers = _raw_multipart(sent, jpeg_bytes())
        media = ok_data(tenant.api.post("/media/upload", content=body, headers=headers), 201)
        assert media["filename"] == (kept or f"{media['id']}.jpg"), sent


@pytest.fixture
def small_upload_url(app_settings: dict[str, Any]) -> Iterator[str]:
    """A second app on the same database whose upload limit is 64 KiB."""
    small = create_app({**app_settings, "max_upload_bytes": 64 * 1024})
    try:
        with serve_wsgi(small) as url:
            yield url
    finally:
        get_db(small).dispose()


def test_upload_over_the_size_limit_is_413(tenant: Tenant, small_upload_url: str) -> None:
    headers = dict(tenant.api.headers)
    with httpx.Client(base_url=small_upload_url, headers=headers, timeout=30) as client:
        small = client.post("/media/upload", files={"file": ("ok.jpg", jpeg_bytes())})
        assert small.status_code == 201, small.text
        big = png_bytes(1, 1) + b"\x00" * (100 * 1024)
        response = client.post("/media/upload", files={"file": ("big.png", big)})
        assert_error(response, 413, "payload_too_large", "The request body is too large.")


def test_list_get_and_delete(tenant: Tenant, app: Flask) -> None:
    first = upload(tenant.api, "1.jpg", jpeg_bytes())
    second = upload(tenant.api, "2.png", png_bytes())
    listing = tenant.api.get("/media")
    assert [m["id"] for m in ok_data(listing)] == [second, first]
    assert listing.json()["meta"]["pagination"] == {"limit": 50, "offset": 0, "total": 2}
    page = tenant.api.get("/media", params={"limit": 1, "offset": 1})
    assert [m["id"] for m in ok_data(page)] == [first]
    assert ok_data(tenant.api.get(f"/media/{first}"))["filename"] == "1.jpg"

    path = stored_path(app, first)
    assert path.exists()
    assert ok_data(tenant.api.delete(f"/media/{first}")) == {
        "id": first,
        "deleted": True,
        "detached_from_posts": [],
    }
    assert not path.exists()
    assert_error(tenant.api.get(f"/media/{first}"), 404, "not_found", "Media not found.")
    assert_error(tenant.api.delete(f"/media/{first}"), 404, "not_found", "Media not found.")
    assert [m["id"] for m in ok_data(tenant.api.get("/media"))] == [second]


def test_media_in_use_cannot_be_deleted(tenant: Tenant, make_account: Any, app: Flask) -> None:
    account_id = make_account(tenant, "x")
    media_id = upload(tenant.api, "a.jpg", jpeg_bytes())
    body = {
        "content": "with picture",
        "account_ids": [account_id],
        "media_ids": [media_id],
        "scheduled_at": future(),
    }
    post_id = ok_data(tenant.api.post("/posts", json=body), 201)["post_id"]
    assert_error(
        tenant.api.delete(f"/media/{media_id}"),
        409,
        "media_in_use",
        f"This media is attached to post {post_id}, which has not finished publishing.",
    )
    assert stored_path(app, media_id).exists()
    # Once the post is over (here: cancelled) the media may go.
    ok_data(tenant.api.delete(f"/posts/{post_id}"))
    assert ok_data(tenant.api.delete(f"/media/{media_id}"))["deleted"] is True


def test_media_of_a_published_post_can_be_deleted(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    account_id = make_account(tenant, "x")
    media_id = upload(tenant.api, "a.jpg", jpeg_bytes())
    body = {"content": "c", "account_ids": [account_id], "media_ids": [media_id]}
    ok_data(tenant.api.post("/posts", json=body), 201)
    sql(app, "UPDATE post_targets SET status = 'published'")
    assert ok_data(tenant.api.delete(f"/media/{media_id}"))["deleted"] is True


def _signed_url(app: Flask, media_id: str) -> str:
    with app.app_context(), get_db(app).session() as session:
        media = session.get(Media, __import__("uuid").UUID(media_id))
        assert media is not None
        return media_service.signed_media_url(app.config["CRIER"], media)


def test_signed_public_link(tenant: Tenant, app: Flask, live_url: str) -> None:
    data = jpeg_bytes(100, 50)
    media_id = upload(tenant.api, "public.jpg", data)
    url = _signed_url(app, media_id)
    public_path = url.split("/media/public/", 1)[1]
    assert public_path.endswith(".jpg")
    # No Authorization header at all.
    response = httpx.get(f"{live_url}/media/public/{public_path}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == data
    # Without the extension it is the same file.
    bare = httpx.get(f"{live_url}/media/public/{public_path.rsplit('.', 1)[0]}")
    assert bare.status_code == 200 and bare.content == data


def test_tampered_or_expired_public_link(
    tenant: Tenant, app: Flask, live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    media_id = upload(tenant.api, "public.jpg", jpeg_bytes())
    token = _signed_url(app, media_id).split("/media/public/", 1)[1].rsplit(".", 1)[0]
    # Change a character inside the signature: the last base64 character may carry only
    # padding bits, and flipping those leaves the decoded signature as it was.
    at = len(token) - 5
    flipped = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
    for bad in (flipped, "garbage", token + "x", "a.b.c"):
        response = httpx.get(f"{live_url}/media/public/{bad}.jpg")
        assert_error(response, 404, "not_found", "Media not found.")
    # A link for media that has been deleted since.
    ok_data(tenant.api.delete(f"/media/{media_id}"))
    assert_error(httpx.get(f"{live_url}/media/public/{token}"), 404, "not_found")
    other = upload(tenant.api, "other.jpg", jpeg_bytes())
    token = _signed_url(app, other).split("/media/public/", 1)[1]
    monkeypatch.setattr(media_service, "MEDIA_LINK_MAX_AGE", -1)
    assert_error(
        httpx.get(f"{live_url}/media/public/{token}"),
        410,
        "link_expired",
        "This media link has expired.",
    )
