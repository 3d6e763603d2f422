"""POST /media/upload-from-url over real HTTP against a local file server, the `type`
filter of GET /media, and DELETE /media/{id}?force=true."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from app import create_app
from tests.api.helpers import assert_error, future, ok_data, sql
from tests.conftest import Tenant, make_key_client
from tests.media_samples import jpeg_bytes, mp4_bytes
from tests.servers import serve_wsgi


def file_server(files: dict[str, tuple[int, str, bytes]]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status, content_type, body = files.get(
            environ["PATH_INFO"], (404, "text/plain", b"missing")
        )
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if status == 302:
            headers.append(("Location", "http://127.0.0.1:1/elsewhere"))
        start_response(f"{status} X", headers)
        return [body]

    return app


@pytest.fixture
def source() -> Iterator[str]:
    files = {
        "/photo.jpg": (200, "image/jpeg", jpeg_bytes(320, 240)),
        "/clip.mp4": (200, "video/mp4", mp4_bytes()),
        "/notes.txt": (200, "text/plain", b"just text, not media"),
        "/moved": (302, "text/plain", b""),
        "/empty": (200, "image/jpeg", b""),
    }
    with serve_wsgi(file_server(files)) as url:
        yield url


def test_an_image_is_ready_at_once(tenant: Tenant, source: str) -> None:
    media = ok_data(
        tenant.api.post("/media/upload-from-url", json={"url": f"{source}/photo.jpg"}), 201
    )
    assert media["media_status"] == "ready" and media["kind"] == "image"
    assert (media["width"], media["height"]) == (320, 240)
    assert media["filename"] == "photo.jpg" and media["source_url"] == f"{source}/photo.jpg"
    named = ok_data(
        tenant.api.post(
            "/media/upload-from-url", json={"url": f"{source}/photo.jpg", "filename": "cover.jpg"}
        ),
        201,
    )
    assert named["filename"] == "cover.jpg"


def test_a_video_waits_for_a_worker(tenant: Tenant, source: str, app: Flask) -> None:
    media = ok_data(
        tenant.api.post("/media/upload-from-url", json={"url": f"{source}/clip.mp4"}), 202
    )
    assert media["media_status"] == "uploading" and media["kind"] == "video"
    assert ok_data(tenant.api.get(f"/media/{media['id']}"))["media_status"] == "uploading"


def test_bad_sources_are_precise_errors(tenant: Tenant, source: str) -> None:
    cases = [
        ({"url": f"{source}/nothing"}, 422, "media_fetch_failed", "The URL answered HTTP 404."),
        ({"url": f"{source}/moved"}, 422, "media_fetch_failed", None),
        ({"url": f"{source}/notes.txt"}, 415, "unsupported_media_type", None),
        ({"url": f"{source}/empty"}, 400, "validation_error", "The file at the URL is empty."),
        ({"url": "ftp://example.com/a.jpg"}, 400, "validation_error", None),
        ({"url": "http://127.0.0.1:1/closed.jpg"}, 422, "media_fetch_failed", None),
        ({}, 400, "validation_error", None),
    ]
    for body, status, code, message in cases:
        assert_error(tenant.api.post("/media/upload-from-url", json=body), status, code, message)


def test_private_addresses_are_refused_unless_allowed(
    app_settings: dict[str, Any], source: str
) -> None:
    strict = create_app({**app_settings, "allow_private_urls": False})
    with serve_wsgi(strict) as url, make_key_client(strict, url) as api:
        for target in (f"{source}/photo.jpg", "http://169.254.169.254/latest/meta-data"):
            error = assert_error(
                api.post("/media/upload-from-url", json={"url": target}), 400, "validation_error"
            )
            assert "Refused" in error["message"] and "url" in error["details"]
        error = assert_error(
            api.post("/media/upload-from-url", json={"url": "http://127.1:1/a.jpg"}),
            400,
            "validation_error",
        )
        assert "loopback" in error["message"]


def test_list_filters_by_type(tenant: Tenant, source: str) -> None:
    image = ok_data(
        tenant.api.post("/media/upload-from-url", json={"url": f"{source}/photo.jpg"}), 201
    )
    video = ok_data(
        tenant.api.post("/media/upload-from-url", json={"url": f"{source}/clip.mp4"}), 202
    )
    assert [m["id"] for m in ok_data(tenant.api.get("/media?type=image"))] == [image["id"]]
    assert [m["id"] for m in ok_data(tenant.api.get("/media?type=video"))] == [video["id"]]
    assert len(ok_data(tenant.api.get("/media"))) == 2
    assert_error(tenant.api.get("/media?type=audio"), 400, "validation_error")


def test_uploading_media_cannot_be_attached(tenant: Tenant, source: str, make_account: Any) -> None:
    account = make_account(tenant, "x")
    video = ok_data(
        tenant.api.post("/media/upload-from-url", json={"url": f"{source}/clip.mp4"}), 202
    )
    error = assert_error(
        tenant.api.post(
            "/posts", json={"content": "v", "account_ids": [account], "media_ids": [video["id"]]}
        ),
        400,
        "validation_error",
    )
    assert "still being imported" in error["details"]["media_ids"][0]


def test_force_delete_detaches_from_scheduled_posts(
    tenant: Tenant, source: str, make_account: Any, app: Flask
) -> None:
    account = make_account(tenant, "x")
    image = ok_data(
        tenant.api.post("/media/upload-from-url", json={"url": f"{source}/photo.jpg"}), 201
    )
    post = ok_data(
        tenant.api.post(
            "/posts",
            json={
                "content": "pic",
                "account_ids": [account],
                "media_ids": [image["id"]],
                "scheduled_at": future(),
            },
        ),
        201,
    )
    error = assert_error(tenant.api.delete(f"/media/{image['id']}"), 409, "media_in_use")
    assert "force" in error["details"]
    sql(app, "UPDATE post_targets SET status = 'publishing'")
    assert_error(tenant.api.delete(f"/media/{image['id']}?force=true"), 409, "media_in_use")
    sql(app, "UPDATE post_targets SET status = 'scheduled'")
    deleted = ok_data(tenant.api.delete(f"/media/{image['id']}?force=true"))
    assert deleted["detached_from_posts"] == [post["post_id"]]
    assert ok_data(tenant.api.get(f"/posts/{post['post_id']}"))["media_ids"] == []
    assert_error(tenant.api.delete(f"/media/{image['id']}?force=maybe"), 400, "validation_error")
