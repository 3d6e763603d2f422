"""POST /media/upload-from-url over real HTTP against a local file server (the fetch run
as the `media_import` worker runs it), the `type` filter of GET /media, and
DELETE /media/{id}?force=true."""

from __future__ import annotations

import struct
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from app import create_app
from app.db import get_db
from app.http_deadline import deadline_client
from app.services.media import inspect_media
from app.services.outbound import REFUSED
from tests.api.helpers import assert_error, future, ok_data, sql
from tests.conftest import Tenant, make_key_client
from tests.media_samples import jpeg_bytes, mp4_bytes
from tests.servers import TrickleServer, serve_wsgi
from workers.media_import import count_try, finish_import


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


def run_import(app: Flask, media_id: str, **overrides: Any) -> str:
    """What the `media_import` worker does with the import's message."""
    settings = replace(app.config["CRIER"], **overrides)
    with app.app_context(), httpx.Client() as plain:
        client = deadline_client(settings.media_import_deadline) if overrides else plain
        return finish_import(get_db(app), settings, client, media_id)


def imported(tenant: Tenant, app: Flask, body: dict[str, Any]) -> dict[str, Any]:
    """Start an import (202, `uploading`), let the worker run it, and read the media."""
    started = ok_data(tenant.api.post("/media/upload-from-url", json=body), 202)
    assert started["media_status"] == "uploading"
    run_import(app, started["id"])
    return ok_data(tenant.api.get(f"/media/{started['id']}"))


def test_an_image_is_fetched_by_a_worker(tenant: Tenant, source: str, app: Flask) -> None:
    media = imported(tenant, app, {"url": f"{source}/photo.jpg"})
    assert media["media_status"] == "ready" and media["kind"] == "image"
    assert (media["width"], media["height"]) == (320, 240)
    assert media["filename"] == "photo.jpg" and media["source_url"] == f"{source}/photo.jpg"
    named = imported(tenant, app, {"url": f"{source}/photo.jpg", "filename": "cover.jpg"})
    assert named["filename"] == "cover.jpg"


def test_a_video_waits_for_a_worker(tenant: Tenant, source: str, app: Flask) -> None:
    media = ok_data(
        tenant.api.post("/media/upload-from-url", json={"url": f"{source}/clip.mp4"}), 202
    )
    assert media["media_status"] == "uploading" and media["kind"] == "video"
    assert ok_data(tenant.api.get(f"/media/{media['id']}"))["media_status"] == "uploading"
    assert run_import(app, media["id"]) == "ready"
    ready = ok_data(tenant.api.get(f"/media/{media['id']}"))
    assert ready["duration_seconds"] == pytest.approx(12.0)
    assert run_import(app, media["id"]) == "skipped"  # a second delivery changes nothing


def test_the_request_never_touches_the_source(tenant: Tenant, app: Flask) -> None:
    """Twenty imports of a source that trickles its answer: each answers at once, the API
    opens no connection to it, and the worker's fetch ends at its deadline."""
    with TrickleServer(interval=0.5) as slow:
        ids = []
        for n in range(20):
            began = time.monotonic()
            response = tenant.api.post("/media/upload-from-url", json={"url": f"{slow.url}/{n}"})
            assert time.monotonic() - began < 2.0
            ids.append(ok_data(response, 202)["id"])
        began = time.monotonic()
        assert tenant.api.get("/health").status_code == 200
        assert time.monotonic() - began < 2.0
        assert slow.accepted == 0
        began = time.monotonic()
        assert run_import(app, ids[0], media_import_deadline=1.5) == "failed"
        assert 1.4 < time.monotonic() - began < 3.0
        assert slow.accepted == 1
    failed = ok_data(tenant.api.get(f"/media/{ids[0]}"))
    assert failed["status_reason"].startswith("Fetching the URL timed out")
    assert "deadline of 1.5 s" in failed["status_reason"]


def test_bad_sources_are_precise_errors(tenant: Tenant, source: str, app: Flask) -> None:
    failures = [
        (f"{source}/nothing", "The URL answered HTTP 404."),
        (f"{source}/moved", "The URL answered HTTP 302 (a redirect)"),
        (f"{source}/notes.txt", "Unsupported media type"),
        (f"{source}/empty", "The file at the URL is empty."),
        ("http://127.0.0.1:1/closed.jpg", REFUSED),
    ]
    for url, reason in failures:
        media = imported(tenant, app, {"url": url})
        assert media["media_status"] == "failed", url
        assert media["status_reason"].startswith(reason), media["status_reason"]
    for body in ({"url": "ftp://example.com/a.jpg"}, {}):
        assert_error(tenant.api.post("/media/upload-from-url", json=body), 400, "validation_error")


def test_private_addresses_and_other_ports_are_refused_alike(
    app_settings: dict[str, Any], source: str
) -> None:
    strict = create_app({**app_settings, "allow_private_urls": False})
    with serve_wsgi(strict) as url, make_key_client(strict, url) as api:
        for target in (
            f"{source}/photo.jpg",  # loopback, and not port 80 or 443
            "http://169.254.169.254/latest/meta-data",
            "http://127.1:1/a.jpg",
            "http://[2002:7f00:1::]/a.jpg",  # 6to4 around 127.0.0.1
            "http://[fec0::1]/a.jpg",
            "http://93.184.216.34:8080/a.jpg",  # public, but another port
        ):
            error = assert_error(
                api.post("/media/upload-from-url", json={"url": target}), 400, "validation_error"
            )
            assert error["message"] == REFUSED and error["details"] == {"url": [REFUSED]}
    opened = create_app({**app_settings, "allow_private_urls": False, "outbound_ports": (8080,)})
    with serve_wsgi(opened) as url, make_key_client(opened, url, "ports") as api:
        ok_data(
            api.post("/media/upload-from-url", json={"url": "http://93.184.216.34:8080/a.jpg"}),
            202,
        )


def test_list_filters_by_type(tenant: Tenant, source: str, app: Flask) -> None:
    image = imported(tenant, app, {"url": f"{source}/photo.jpg"})
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
    image = imported(tenant, app, {"url": f"{source}/photo.jpg"})
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


def crafted_mp4(claimed: int = 400 * 1024 * 1024) -> bytes:
    """A small MP4 whose `hdlr` box claims hundreds of MB."""
    data = mp4_bytes()
    at = data.index(b"hdlr")
    return data[: at - 4] + struct.pack(">I", claimed) + data[at:]


def test_a_box_that_claims_hundreds_of_mb_is_not_allocated(
    tenant: Tenant, app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "crafted.mp4"
    path.write_bytes(crafted_mp4())
    tracemalloc.start()
    try:
        facts = inspect_media(path, "video/mp4")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, peak
    assert (facts.width, facts.height, facts.duration_seconds) == (1080, 1920, 12.0)
    with serve_wsgi(file_server({"/crafted.mp4": (200, "video/mp4", crafted_mp4())})) as url:
        media = imported(tenant, app, {"url": f"{url}/crafted.mp4"})
    assert media["media_status"] == "ready" and media["duration_seconds"] == 12.0


def test_an_import_that_keeps_stopping_its_worker_ends_failed(
    tenant: Tenant, source: str, app: Flask
) -> None:
    """Each try is counted before the fetch: tries that ended their worker (killed, out
    of memory) leave their count behind, and the one past the limit settles the media."""
    settings = app.config["CRIER"]
    started = ok_data(
        tenant.api.post("/media/upload-from-url", json={"url": f"{source}/clip.mp4"}), 202
    )
    for _ in range(settings.media_import_max_tries):
        count_try(settings, started["id"])  # as a try that died mid-fetch leaves it
    assert run_import(app, started["id"]) == "failed"
    failed = ok_data(tenant.api.get(f"/media/{started['id']}"))
    assert failed["status_reason"].startswith(
        f"Importing this file stopped its worker {settings.media_import_max_tries} times"
    )
