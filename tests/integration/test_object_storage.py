"""Media in object storage (CRIER_MEDIA_STORAGE=s3://…) against a real S3-compatible
server process (moto in server mode): presigned uploads, presigned pulls, worker copies."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from flask import Flask

from app import create_app
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.media_samples import jpeg_bytes, mp4_bytes
from tests.servers import serve_wsgi

BUCKET = "crier-media"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "crier-test",
    "AWS_SECRET_ACCESS_KEY": "crier-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
FINAL = ("published", "failed", "unconfirmed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server as a process of its own, with AWS credentials in our env."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def storage_url() -> str:
    return f"s3://{BUCKET}/test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3_api(
    app_settings: dict[str, Any], s3_endpoint: str, storage_url: str, tenant: Tenant
) -> Iterator[httpx.Client]:
    """The API of an app that keeps media in the bucket, as the tenant."""
    s3_app: Flask = create_app(
        {**app_settings, "media_storage": storage_url, "s3_endpoint_url": s3_endpoint}
    )
    with (
        serve_wsgi(s3_app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {tenant.key}"}, timeout=30
        ) as client,
    ):
        yield client


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint)


def object_key(storage_url: str, media: dict[str, Any], tenant: Tenant, ext: str) -> str:
    prefix = storage_url.split("/", 3)[3]
    return f"{prefix}/{tenant.organisation_id}/{media['id']}{ext}"


def presigned_upload(api: httpx.Client, name: str, content_type: str, data: bytes) -> dict:
    started = api.post(
        "/media/uploads",
        json={"filename": name, "content_type": content_type, "size_bytes": len(data)},
    )
    assert started.status_code == 201, started.text
    upload = started.json()["data"]["upload"]
    put = httpx.put(upload["url"], content=data, headers=upload["headers"], timeout=30)
    assert put.status_code == 200, put.text
    return started.json()["data"]


def test_presigned_upload_is_probed_and_ready(
    s3_api: httpx.Client, s3_endpoint: str, storage_url: str, tenant: Tenant
) -> None:
    video = mp4_bytes(seconds=4.0)
    started = s3_api.post(
        "/media/uploads",
        json={"filename": "clip.mp4", "content_type": "video/mp4", "size_bytes": len(video)},
    )
    assert started.status_code == 201, started.text
    data = started.json()["data"]
    assert data["status"] == "pending" and data["upload"]["method"] == "PUT"
    assert data["upload"]["url"].startswith(f"{s3_endpoint}/{BUCKET}/")

    early = s3_api.post(f"/media/{data['id']}/complete")
    assert early.status_code == 409 and early.json()["error"]["code"] == "upload_incomplete"

    upload = data["upload"]
    put = httpx.put(upload["url"], content=video, headers=upload["headers"], timeout=30)
    assert put.status_code == 200
    done = s3_api.post(f"/media/{data['id']}/complete")
    assert done.status_code == 201, done.text
    media = done.json()["data"]
    assert media["status"] == "ready" and media["kind"] == "video"
    assert media["mime_type"] == "video/mp4" and media["size_bytes"] == len(video)
    assert media["sha256"] == hashlib.sha256(video).hexdigest()
    assert media["width"] and media["height"] and media["duration_seconds"]
    assert s3_api.get(f"/media/{data['id']}").json()["data"]["sha256"] == media["sha256"]
    # Completing again answers the same media.
    again = s3_api.post(f"/media/{data['id']}/complete")
    assert again.status_code == 201 and again.json()["data"]["id"] == media["id"]


def test_presigned_upload_refusals(
    s3_api: httpx.Client, s3_endpoint: str, storage_url: str, tenant: Tenant
) -> None:
    bad_type = s3_api.post(
        "/media/uploads",
        json={"filename": "a.txt", "content_type": "text/plain", "size_bytes": 10},
    )
    assert bad_type.status_code == 400
    assert bad_type.json()["error"]["code"] == "validation_error"
    too_big = s3_api.post(
        "/media/uploads",
        json={"filename": "big.mp4", "content_type": "video/mp4", "size_bytes": 10**13},
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"
    unknown = s3_api.post(f"/media/{uuid.uuid4()}/complete")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    # Announced as an image, but the bytes are a video: refused, and the object removed.
    data = presigned_upload(s3_api, "x.png", "image/png", mp4_bytes(seconds=1.0))
    refused = s3_api.post(f"/media/{data['id']}/complete")
    assert refused.status_code == 415
    assert refused.json()["error"]["code"] == "unsupported_media_type"
    with pytest.raises(ClientError):
        s3(s3_endpoint).head_object(
            Bucket=BUCKET, Key=object_key(storage_url, data, tenant, ".png")
        )
    # Local disk (the default) has no presigned uploads.
    local = tenant.api.post(
        "/media/uploads",
        json={"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 10},
    )
    assert local.status_code == 409
    assert local.json()["error"]["code"] == "object_storage_not_configured"


def test_multipart_upload_goes_to_the_bucket(
    s3_api: httpx.Client,
    s3_endpoint: str,
    storage_url: str,
    tenant: Tenant,
    app_settings: dict[str, Any],
) -> None:
    image = jpeg_bytes()
    response = s3_api.post("/media/upload", files={"file": ("still.jpg", image)})
    assert response.status_code == 201, response.text
    media = response.json()["data"]
    key = object_key(storage_url, media, tenant, ".jpg")
    stored = s3(s3_endpoint).get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == image and stored["ContentType"] == "image/jpeg"
    local = Path(app_settings["media_dir"]) / str(tenant.organisation_id) / f"{media['id']}.jpg"
    assert not local.exists()
    assert s3_api.delete(f"/media/{media['id']}").status_code == 200
    with pytest.raises(ClientError):
        s3(s3_endpoint).head_object(Bucket=BUCKET, Key=key)


def test_presigned_upload_ends_in_a_published_instagram_reel(
    s3_api: httpx.Client,
    s3_endpoint: str,
    storage_url: str,
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
) -> None:
    """The caller uploads to the bucket; Instagram pulls the reel from a presigned GET
    URL; X gets the bytes from the worker's copy of the object."""
    sandbox.post("/_faults", json={"instagram": {"fetch_media": True}}).raise_for_status()
    stack.worker(
        extra_env={
            **AWS_ENV,
            "CRIER_MEDIA_STORAGE": storage_url,
            "CRIER_S3_ENDPOINT_URL": s3_endpoint,
        }
    )
    instagram = make_account(tenant, "instagram", external_id="1784140000000101")
    x = make_account(tenant, "x", external_id="2244994945")
    video = mp4_bytes(seconds=12.0)
    data = presigned_upload(s3_api, "launch.mp4", "video/mp4", video)
    completed = s3_api.post(f"/media/{data['id']}/complete")
    assert completed.status_code == 201, completed.text
    created = s3_api.post(
        "/posts",
        json={
            "content": "From the bucket to the feed.",
            "account_ids": [instagram, x],
            "media_ids": [data["id"]],
            "platform_content": {"instagram": {"contentType": "Reels"}},
        },
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]

    def finished() -> list[dict[str, Any]] | None:
        targets = s3_api.get(f"/posts/{post_id}").json()["data"]["targets"]
        return targets if all(t["status"] in FINAL for t in targets) else None

    targets = wait_until(finished, timeout=60, interval=0.25)
    assert {t["platform"]: t["status"] for t in targets} == {
        "instagram": "published",
        "x": "published",
    }, targets
    entries = {e["platform"]: e for e in sandbox.get("/_ledger").json()}
    [reel] = entries["instagram"]["media"]
    assert reel["url"].startswith(f"{s3_endpoint}/{BUCKET}/")
    assert reel["kind"] == "video" and reel["content_type"] == "video/mp4"
    assert reel["sha256"] == hashlib.sha256(video).hexdigest()
    assert entries["instagram"]["params"].get("media_type") == "REELS"
    [clip] = entries["x"]["media"]
    assert clip["kind"] == "video"


def test_completing_an_upload_never_moves_media_across_profiles(
    app_settings: dict[str, Any], s3_endpoint: str, storage_url: str, tenant: Tenant
) -> None:
    """A presigned upload belongs to the profile it was started in: another profile's key
    cannot complete it, nor "complete" finished media to pull it into its own profile."""
    s3_app: Flask = create_app(
        {**app_settings, "media_storage": storage_url, "s3_endpoint_url": s3_endpoint}
    )
    with (
        serve_wsgi(s3_app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {tenant.key}"}, timeout=30
        ) as admin,
    ):
        keys = {}
        for name in ("a", "b"):
            profile = admin.post("/profiles", json={"name": name}).json()["data"]["id"]
            made = admin.post(
                "/keys", json={"name": name, "scopes": ["media:write"], "profile_id": profile}
            ).json()["data"]
            keys[name] = (profile, made["key"])
        a, b = (
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {k}"}, timeout=30)
            for _p, k in keys.values()
        )
        with a, b:
            pending = presigned_upload(a, "a.jpg", "image/jpeg", jpeg_bytes())
            # B cannot complete A's upload: it does not exist for B.
            early = b.post(f"/media/{pending['id']}/complete")
            assert early.status_code == 404, early.text
            done = a.post(f"/media/{pending['id']}/complete")
            assert done.status_code == 201, done.text
            assert done.json()["data"]["profile_id"] == keys["a"][0]
            # Nor can B "complete" A's finished media to move it into B.
            late = b.post(f"/media/{pending['id']}/complete")
            assert late.status_code == 404, late.text
            assert a.get(f"/media/{pending['id']}").json()["data"]["profile_id"] == keys["a"][0]
            assert b.get(f"/media/{pending['id']}").status_code == 404
            # An upload started for a profile, completed by the organisation's key, is the
            # profile's; a profile key cannot start one in another profile.
            other = admin.post(
                "/media/uploads",
                json={
                    "filename": "x.jpg",
                    "content_type": "image/jpeg",
                    "size_bytes": 10,
                    "profile_id": keys["b"][0],
                },
            )
            assert other.status_code == 201
            refused = a.post(
                "/media/uploads",
                json={
                    "filename": "x.jpg",
                    "content_type": "image/jpeg",
                    "size_bytes": 10,
                    "profile_id": keys["b"][0],
                },
            )
            assert refused.status_code == 404, refused.text
