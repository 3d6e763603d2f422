"""Media in object storage: CRIER_MEDIA_STORAGE=s3://bucket/prefix keeps uploads in S3 (or
an S3-compatible store at CRIER_S3_ENDPOINT_URL) through boto3. Local disk
(CRIER_MEDIA_DIR) stays the default.

Platforms that pull media get presigned GET URLs; callers with large files upload
straight to the bucket through a presigned PUT. Workers whose platforms take the bytes
read a local copy, fetched once into CRIER_MEDIA_DIR/cache.
Credentials and region come from boto3's usual sources (AWS_* variables, a role).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.config import Settings


@dataclass(frozen=True)
class ObjectStore:
    bucket: str
    prefix: str
    client: Any

    def key(self, storage_key: str) -> str:
        return f"{self.prefix}{storage_key}"

    def put_file(self, path: Path, storage_key: str, content_type: str) -> None:
        self.client.upload_file(
            str(path), self.bucket, self.key(storage_key), ExtraArgs={"ContentType": content_type}
        )

    def download(self, storage_key: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f"{destination.name}.{os.getpid()}.part")
        try:
            self.client.download_file(self.bucket, self.key(storage_key), str(partial))
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)

    def size(self, storage_key: str) -> int | None:
        """The object's size, or None when there is no such object."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(storage_key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def delete(self, storage_key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(storage_key))

    def presigned_get(self, storage_key: str, expires_in: int) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.key(storage_key)},
            ExpiresIn=expires_in,
        )

    def presigned_put(self, storage_key: str, content_type: str, expires_in: int) -> str:
        return self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(storage_key),
                "ContentType": content_type,
            },
            ExpiresIn=expires_in,
        )


def parse_storage_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → (bucket, "prefix/"); the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"CRIER_MEDIA_STORAGE must look like s3://bucket/prefix, not {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


@lru_cache(maxsize=8)
def _store(url: str, endpoint_url: str | None) -> ObjectStore:
    bucket, prefix = parse_storage_url(url)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(
            signature_version="s3v4",
            # S3-compatible stores (MinIO, moto, Ceph) answer on one host: path style.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )
    return ObjectStore(bucket, prefix, client)


def object_store(settings: Settings) -> ObjectStore | None:
    """The object store when CRIER_MEDIA_STORAGE is set, else None (local disk)."""
    if not settings.media_storage:
        return None
    return _store(settings.media_storage, settings.s3_endpoint_url)
