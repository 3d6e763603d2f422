"""Adapters are tested over real HTTP against the sandbox, never against mocks."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from workers.adapters.base import AccountCredentials, MediaItem, PublishRequest


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


# A 1x1 JPEG and a minimal MP4 header are enough: the sandbox checks kinds, not pixels.
_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4n"
    "ICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EAB"
    "QQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q=="
)


def _mp4_bytes() -> bytes:
    ftyp = b"ftypisom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    box = struct.pack(">I", len(ftyp) + 4) + ftyp
    return box + b"\x00" * 2048


@pytest.fixture
def image_item(tmp_path: Path) -> MediaItem:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_JPEG)
    return MediaItem(
        id="11111111-1111-4111-8111-111111111111",
        kind="image",
        mime_type="image/jpeg",
        size_bytes=len(_JPEG),
        path=str(path),
        public_url="https://crier.example/media/public/photo-token",
        filename="photo.jpg",
        width=1,
        height=1,
    )


@pytest.fixture
def video_item(tmp_path: Path) -> MediaItem:
    data = _mp4_bytes()
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    return MediaItem(
        id="22222222-2222-4222-8222-222222222222",
        kind="video",
        mime_type="video/mp4",
        size_bytes=len(data),
        path=str(path),
        public_url="https://crier.example/media/public/clip-token",
        filename="clip.mp4",
        width=1080,
        height=1920,
        duration_seconds=12.0,
    )


def make_request(
    platform: str,
    text: str = "Hello from Crier",
    settings: dict | None = None,
    media: list[MediaItem] | None = None,
    access_token: str = "sandbox-token",
    refresh_token: str | None = "sandbox-refresh",
    external_id: str | None = "1784140000000001",
    handle: dict | None = None,
    target_id: int = 1,
) -> PublishRequest:
    account = AccountCredentials(
        account_id=1,
        platform=platform,
        name=f"{platform} test account",
        external_id=external_id,
        access_token=access_token,
        refresh_token=refresh_token,
    )
    return PublishRequest(
        target_id=target_id,
        platform=platform,
        account=account,
        text=text,
        settings=settings or {},
        media=media or [],
        handle=handle,
    )
