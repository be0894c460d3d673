"""Uploading what the definition refers to (code bundle, settings files, a large definition).

Keys are content-addressed (the builder puts a hash in every key), so an object already there
with the same bytes is skipped: its ETag is the MD5 for a plain single-part put, and every
object written here also carries its SHA-256 in metadata, which holds under SSE-KMS too.
"""

from __future__ import annotations

import hashlib

from pipeline.deploy.clients import Aws
from pipeline.deploy.errors import DeployError

SHA_META = "sha256"


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise DeployError(f"not an s3://bucket/key URI: {uri}", exit_code=2)
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def _is_same(head: dict, body: bytes) -> bool:
    if head.get("Metadata", {}).get(SHA_META) == hashlib.sha256(body).hexdigest():
        return True
    return head.get("ETag", "").strip('"') == hashlib.md5(body).hexdigest()


def upload(aws: Aws, files: dict[str, bytes], kms_key_id: str | None = None) -> tuple[int, int]:
    """Put every file not already stored with the same content; returns (uploaded, skipped)."""
    uploaded = skipped = 0
    for uri, body in sorted(files.items()):
        bucket, key = split_uri(uri)
        head = aws.read("s3", "head_object", uri, missing_ok=True, Bucket=bucket, Key=key)
        if head is not None and _is_same(head, body):
            skipped += 1
            continue
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        aws.write("s3", "put_object", uri, Bucket=bucket, Key=key, Body=body,
                  Metadata={SHA_META: hashlib.sha256(body).hexdigest()}, **extra)
        uploaded += 1
    return uploaded, skipped
