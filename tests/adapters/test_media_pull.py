"""The sandbox pulls media from public URLs as Instagram, Threads and Facebook do (with
`fetch_media` on), and the adapters classify a failed pull as the platform reports it.

A tiny WSGI app stands in for Crier's public media links: a JPEG and an MP4 at some
paths, 404 (deleted media) and 410 (expired link) at others.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from sandbox import create_sandbox_app
from sandbox.core import PulledMedia, PullFailure, pull_media
from tests.adapters.conftest import make_request
from tests.media_samples import jpeg_bytes, mp4_bytes
from tests.servers import serve_wsgi
from workers.adapters.base import MediaItem, NullContext, PermanentError, TransientError
from workers.adapters.facebook import FacebookAdapter
from workers.adapters.instagram import InstagramAdapter
from workers.adapters.threads import ThreadsAdapter

USER = "1784140000000001"
JPEG = jpeg_bytes(64, 48)
COVER = jpeg_bytes(32, 32, "blue")
MP4 = mp4_bytes(seconds=4.0)
FILES = {
    "/photo.jpg": ("image/jpeg", JPEG),
    "/cover.jpg": ("image/jpeg", COVER),
    "/clip.mp4": ("video/mp4", MP4),
}
GONE_BODY = b'{"data": null, "error": {"code": "link_expired"}}'


def media_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path in FILES:
        content_type, body = FILES[path]
        status = "200 OK"
    elif path.startswith("/gone"):
        content_type, body, status = "application/json", GONE_BODY, "410 Gone"
    elif path == "/redirect.jpg":
        start_response("302 Found", [("Location", "/photo.jpg"), ("Content-Length", "0")])
        return [b""]
    elif path == "/slow.jpg":
        time.sleep(1.0)
        content_type, body, status = "image/jpeg", JPEG, "200 OK"
    else:
        content_type, body, status = "text/html", b"<h1>Not Found</h1>", "404 NOT FOUND"
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def media_url() -> Iterator[str]:
    with serve_wsgi(media_app) as url:
        yield url


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pulled(url: str, data: bytes, content_type: str, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "url": url,
        "content_type": content_type,
        "bytes": len(data),
        "sha256": sha256(data),
    }


def fetch_on(sandbox: httpx.Client, *platforms: str) -> None:
    body = {platform: {"fetch_media": True} for platform in platforms}
    sandbox.post("/_faults", json=body).raise_for_status()


def ledger(sandbox: httpx.Client, platform: str) -> list[dict[str, Any]]:
    return sandbox.get("/_ledger", params={"platform": platform}).json()


@pytest.fixture
def image_at(image_item: MediaItem, media_url: str) -> Callable[[str], MediaItem]:
    return lambda path: replace(image_item, public_url=media_url + path)


@pytest.fixture
def video_at(video_item: MediaItem, media_url: str) -> Callable[[str], MediaItem]:
    return lambda path: replace(video_item, public_url=media_url + path)


@pytest.fixture
def instagram(http: httpx.Client, sandbox_url: str) -> InstagramAdapter:
    adapter = InstagramAdapter(http, base_url=sandbox_url)
    adapter.poll_interval, adapter.max_wait = 0.05, 2.0
    return adapter


@pytest.fixture
def threads(http: httpx.Client, sandbox_url: str) -> ThreadsAdapter:
    adapter = ThreadsAdapter(http, base_url=sandbox_url)
    adapter.poll_interval, adapter.max_wait = 0.05, 2.0
    return adapter


@pytest.fixture
def facebook(http: httpx.Client, sandbox_url: str) -> FacebookAdapter:
    return FacebookAdapter(http, base_url=sandbox_url)


# -- the pull itself ----------------------------------------------------------------------


def test_pull_media_reports_status_type_size_and_hash(media_url: str) -> None:
    result = pull_media(f"{media_url}/clip.mp4", "video")
    assert result == PulledMedia(f"{media_url}/clip.mp4", 200, "video/mp4", len(MP4), sha256(MP4))


@pytest.mark.parametrize(
    ("path", "kind", "reason", "wrong_kind"),
    [
        ("/missing.jpg", "image", "HTTP 404", False),
        ("/gone.jpg", "image", "HTTP 410", False),
        ("/redirect.jpg", "image", "HTTP 302 redirect to /photo.jpg (not followed)", False),
        ("/clip.mp4", "image", "expected image, the URL served video/mp4", True),
        ("/photo.jpg", "video", "expected video, the URL served image/jpeg", True),
    ],
)
def test_pull_media_failures(
    media_url: str, path: str, kind: str, reason: str, wrong_kind: bool
) -> None:
    assert pull_media(media_url + path, kind) == PullFailure(reason, wrong_kind)


def test_pull_media_bounds_size_and_time(media_url: str) -> None:
    too_big = pull_media(f"{media_url}/clip.mp4", "video", max_bytes=len(MP4) - 1)
    assert too_big == PullFailure(f"larger than {len(MP4) - 1} bytes")
    slow = pull_media(f"{media_url}/slow.jpg", "image", timeout=0.2)
    assert slow == PullFailure("timed out after 0.2 s")
    unreachable = pull_media("http://127.0.0.1:9/photo.jpg", "image")
    assert isinstance(unreachable, PullFailure) and "ConnectError" in unreachable.reason


# -- switching it on and off --------------------------------------------------------------


def test_fetch_media_is_off_by_default_and_per_platform(
    sandbox: httpx.Client, instagram: InstagramAdapter, image_at: Callable[[str], MediaItem]
) -> None:
    # Off: a link nobody serves is recorded, not pulled.
    instagram.publish(make_request("instagram", media=[image_at("/missing.jpg")]), NullContext())
    fetch_on(sandbox, "threads")  # on for Threads only
    instagram.publish(make_request("instagram", "2", media=[image_at("/gone.jpg")]), NullContext())
    assert [e["media"][0] for e in ledger(sandbox, "instagram")] == [
        {"kind": "image", "url": image_at("/missing.jpg").public_url},
        {"kind": "image", "url": image_at("/gone.jpg").public_url},
    ]


def test_sandbox_default_applies_after_reset_and_to_faults_without_the_key(
    http: httpx.Client, image_at: Callable[[str], MediaItem]
) -> None:
    with serve_wsgi(create_sandbox_app(fetch_media=True)) as url:
        adapter = InstagramAdapter(http, base_url=url)
        request = make_request("instagram", media=[image_at("/missing.jpg")])
        for control in ({"instagram": {"latency_ms": 1}}, {}, None):
            if control is None:
                http.post(f"{url}/_reset").raise_for_status()
            else:
                http.post(f"{url}/_faults", json=control).raise_for_status()
            with pytest.raises(PermanentError) as raised:
                adapter.publish(request, NullContext())
            assert raised.value.code == "instagram_media_fetch_failed"
        http.post(f"{url}/_faults", json={"instagram": {"fetch_media": False}})
        adapter.publish(request, NullContext())
        assert len(http.get(f"{url}/_ledger").json()) == 1


# -- Instagram ----------------------------------------------------------------------------


def test_instagram_pulls_image_and_reel_with_cover(
    sandbox: httpx.Client,
    instagram: InstagramAdapter,
    image_at: Callable[[str], MediaItem],
    video_at: Callable[[str], MediaItem],
    media_url: str,
) -> None:
    fetch_on(sandbox, "instagram")
    image = image_at("/photo.jpg")
    instagram.publish(make_request("instagram", "Still", media=[image]), NullContext())
    video = video_at("/clip.mp4")
    instagram.publish(make_request("instagram", "Reel", media=[video]), NullContext())

    photo_entry, reel_entry = ledger(sandbox, "instagram")
    assert photo_entry["media"] == [pulled(image.public_url, JPEG, "image/jpeg", "image")]
    assert reel_entry["media"] == [pulled(video.public_url, MP4, "video/mp4", "video")]

    # cover_url (which the adapter does not send) is pulled with the reel.
    token = {"Authorization": "Bearer sandbox-token"}
    created = sandbox.post(
        f"/instagram/v25.0/{USER}/media",
        headers=token,
        data={
            "media_type": "REELS",
            "video_url": video.public_url,
            "cover_url": f"{media_url}/cover.jpg",
        },
    )
    creation_id = created.json()["id"]
    published = sandbox.post(
        f"/instagram/v25.0/{USER}/media_publish", headers=token, data={"creation_id": creation_id}
    )
    assert published.status_code == 200, published.text
    entry = ledger(sandbox, "instagram")[-1]
    assert entry["params"]["cover_url"] == f"{media_url}/cover.jpg"
    assert entry["media"][0]["cover"] == {
        "url": f"{media_url}/cover.jpg",
        "content_type": "image/jpeg",
        "bytes": len(COVER),
        "sha256": sha256(COVER),
    }


def test_instagram_carousel_children_carry_their_hashes(
    sandbox: httpx.Client,
    instagram: InstagramAdapter,
    image_at: Callable[[str], MediaItem],
    video_at: Callable[[str], MediaItem],
) -> None:
    fetch_on(sandbox, "instagram")
    image, video = image_at("/photo.jpg"), video_at("/clip.mp4")
    instagram.publish(make_request("instagram", "Both", media=[image, video]), NullContext())
    [entry] = ledger(sandbox, "instagram")
    assert entry["media"] == [
        pulled(image.public_url, JPEG, "image/jpeg", "image"),
        pulled(video.public_url, MP4, "video/mp4", "video"),
    ]


def test_instagram_image_link_gone_refuses_the_container(
    sandbox: httpx.Client, instagram: InstagramAdapter, image_at: Callable[[str], MediaItem]
) -> None:
    fetch_on(sandbox, "instagram")
    context = NullContext()
    with pytest.raises(PermanentError) as raised:
        instagram.publish(make_request("instagram", media=[image_at("/gone.jpg")]), context)
    error = raised.value
    assert error.code == "instagram_media_fetch_failed"
    assert error.details["graph_code"] == 9004 and error.details["graph_subcode"] == 2207052
    assert "could not be fetched" in error.message and "HTTP 410" in error.message
    assert "CRIER_PUBLIC_URL" in error.message
    assert not context.irreversible
    assert ledger(sandbox, "instagram") == []


def test_instagram_reel_link_missing_ends_the_container_in_error(
    sandbox: httpx.Client, instagram: InstagramAdapter, video_at: Callable[[str], MediaItem]
) -> None:
    fetch_on(sandbox, "instagram")
    context = NullContext()
    with pytest.raises(PermanentError) as raised:
        instagram.publish(make_request("instagram", media=[video_at("/missing.mp4")]), context)
    assert raised.value.code == "instagram_media_fetch_failed"
    assert raised.value.details["graph_subcode"] == 2207052
    assert not context.irreversible
    assert ledger(sandbox, "instagram") == []

    # The container says ERROR with the subcode; publishing it anyway fails with 9004.
    container_id = context.handle["container_id"]
    token = {"Authorization": "Bearer sandbox-token"}
    status = sandbox.get(
        f"/instagram/v25.0/{container_id}", params={"fields": "status_code,status"}, headers=token
    ).json()
    assert status["status_code"] == "ERROR" and "2207052" in status["status"]
    published = sandbox.post(
        f"/instagram/v25.0/{USER}/media_publish", headers=token, data={"creation_id": container_id}
    )
    assert published.status_code == 400
    error = published.json()["error"]
    assert (error["code"], error["error_subcode"]) == (9004, 2207052)
    assert error["error_user_title"] == "Media download has failed."


def test_instagram_refuses_a_url_of_the_wrong_kind(
    sandbox: httpx.Client,
    instagram: InstagramAdapter,
    image_item: MediaItem,
    video_item: MediaItem,
    media_url: str,
) -> None:
    fetch_on(sandbox, "instagram")
    image_serving_video = replace(image_item, public_url=f"{media_url}/clip.mp4")
    with pytest.raises(PermanentError) as raised:
        instagram.publish(make_request("instagram", media=[image_serving_video]), NullContext())
    assert raised.value.code == "instagram_image_format_unsupported"
    video_serving_image = replace(video_item, public_url=f"{media_url}/photo.jpg")
    with pytest.raises(PermanentError) as raised:
        instagram.publish(make_request("instagram", media=[video_serving_image]), NullContext())
    assert raised.value.code == "instagram_video_format_unsupported"
    assert ledger(sandbox, "instagram") == []


# -- Threads ------------------------------------------------------------------------------


def test_threads_pulls_image_and_video(
    sandbox: httpx.Client,
    threads: ThreadsAdapter,
    image_at: Callable[[str], MediaItem],
    video_at: Callable[[str], MediaItem],
) -> None:
    fetch_on(sandbox, "threads")
    image, video = image_at("/photo.jpg"), video_at("/clip.mp4")
    threads.publish(make_request("threads", "Image", media=[image]), NullContext())
    threads.publish(make_request("threads", "Video", media=[video]), NullContext())
    image_entry, video_entry = ledger(sandbox, "threads")
    assert image_entry["media"] == [pulled(image.public_url, JPEG, "image/jpeg", "image")]
    assert video_entry["media"] == [pulled(video.public_url, MP4, "video/mp4", "video")]


def test_threads_image_link_missing_is_permanent(
    sandbox: httpx.Client, threads: ThreadsAdapter, image_at: Callable[[str], MediaItem]
) -> None:
    fetch_on(sandbox, "threads")
    with pytest.raises(PermanentError) as raised:
        threads.publish(make_request("threads", media=[image_at("/missing.jpg")]), NullContext())
    assert raised.value.code == "threads_media_fetch_failed"
    assert raised.value.details["graph_subcode"] == 2207052
    assert "HTTP 404" in raised.value.message
    assert ledger(sandbox, "threads") == []


def test_threads_video_download_failure_is_retryable_as_documented(
    sandbox: httpx.Client, threads: ThreadsAdapter, video_at: Callable[[str], MediaItem]
) -> None:
    """FAILED_DOWNLOADING_VIDEO is retryable (Threads' own docs): the next attempt makes a
    new container with a freshly signed link."""
    fetch_on(sandbox, "threads")
    context = NullContext()
    with pytest.raises(TransientError) as raised:
        threads.publish(make_request("threads", media=[video_at("/gone.mp4")]), context)
    assert raised.value.code == "threads_media_fetch_failed"
    assert raised.value.details["error_message"] == "FAILED_DOWNLOADING_VIDEO"
    assert not context.irreversible

    retry = make_request("threads", media=[video_at("/clip.mp4")], handle=context.handle)
    result = threads.publish(retry, NullContext())
    [entry] = ledger(sandbox, "threads")
    assert entry["id"] == result.platform_post_id
    assert entry["media"][0]["sha256"] == sha256(MP4)


# -- Facebook -----------------------------------------------------------------------------


def test_facebook_pulls_photo_album_and_video(
    sandbox: httpx.Client,
    facebook: FacebookAdapter,
    image_at: Callable[[str], MediaItem],
    video_at: Callable[[str], MediaItem],
) -> None:
    fetch_on(sandbox, "facebook")
    photo, video = image_at("/photo.jpg"), video_at("/clip.mp4")
    facebook.publish(make_request("facebook", "One photo", media=[photo]), NullContext())
    facebook.publish(make_request("facebook", "Two photos", media=[photo, photo]), NullContext())
    facebook.publish(make_request("facebook", "A video", media=[video]), NullContext())
    single, album, clip = ledger(sandbox, "facebook")
    expected_photo = pulled(photo.public_url, JPEG, "image/jpeg", "image")
    assert single["media"] == [expected_photo]
    assert album["media"] == [expected_photo, expected_photo]
    assert clip["params"]["edge"] == "videos"
    assert clip["media"] == [pulled(video.public_url, MP4, "video/mp4", "video")]


def test_facebook_photo_and_video_links_that_fail(
    sandbox: httpx.Client,
    facebook: FacebookAdapter,
    image_at: Callable[[str], MediaItem],
    video_at: Callable[[str], MediaItem],
) -> None:
    fetch_on(sandbox, "facebook")
    with pytest.raises(PermanentError) as raised:
        facebook.publish(make_request("facebook", media=[image_at("/missing.jpg")]), NullContext())
    assert raised.value.code == "facebook_image_fetch_failed"
    assert raised.value.details["graph_code"] == 324
    assert "Missing or invalid image file" in raised.value.message

    with pytest.raises(PermanentError) as raised:
        facebook.publish(make_request("facebook", media=[video_at("/gone.mp4")]), NullContext())
    assert raised.value.code == "facebook_video_fetch_failed"
    assert raised.value.details["graph_code"] == 389
    assert "CRIER_PUBLIC_URL" in raised.value.message

    with pytest.raises(PermanentError) as raised:
        facebook.publish(make_request("facebook", media=[video_at("/photo.jpg")]), NullContext())
    assert raised.value.code == "facebook_video_format_unsupported"
    assert ledger(sandbox, "facebook") == []
