"""Which object store a local run reads and writes, for the runner and for its children.

`local` maps `s3://bucket/key` to `<workdir>/s3/bucket/key`; an `http(s)://` endpoint (the
tests' moto server, MinIO) or `aws` (the normal credential chain) go through boto3. The child
processes get the environment that makes `steps.io.storage.from_env()` pick the same store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from steps.io.storage import S3_ROOT_ENV, LocalStorage, S3Storage, Storage, split_uri


@dataclass
class Backend:
    storage: Storage
    label: str  # "local", "aws" or the endpoint URL
    env: dict[str, str] = field(default_factory=dict)  # set on every child
    unset: tuple[str, ...] = ()  # removed from every child's environment
    root: Path | None = None  # the local root, when storage is local

    def where(self, uri: str) -> str:
        """Where a user finds `uri`: the local path for local storage, else the URI itself."""
        if self.root is None:
            return uri
        bucket, key = split_uri(uri)
        return str(self.root / bucket / key)


def open_backend(storage: str, workdir: Path) -> Backend:
    """`local`, `aws` or an endpoint URL -> the Backend for a run under `workdir`."""
    if storage == "local":
        root = (workdir / "s3").resolve()
        return Backend(LocalStorage(root), "local", {S3_ROOT_ENV: str(root)},
                       ("AWS_ENDPOINT_URL",), root)
    import boto3

    if storage == "aws":
        return Backend(S3Storage(boto3.client("s3")), "aws", {}, (S3_ROOT_ENV,))
    if storage.startswith(("http://", "https://")):
        client = boto3.client("s3", endpoint_url=storage)
        return Backend(S3Storage(client), storage, {"AWS_ENDPOINT_URL": storage}, (S3_ROOT_ENV,))
    raise ValueError(f"storage must be 'local', 'aws' or an http(s) endpoint URL, got {storage!r}")


def write_assets(backend: Backend, assets: dict[str, bytes]) -> int:
    """Put the code bundle and settings files in place; skip the identical ones. Returns the
    number written. What is there is found by listing (s3:ListBucket), not by reading: the
    pipeline role never needs to read an asset it is about to be handed anyway."""
    import hashlib

    from botocore.exceptions import ClientError

    present: dict[str, tuple[int, str]] = {}
    for folder in sorted({uri.rsplit("/", 1)[0] + "/" for uri in assets}):
        try:
            present.update({o.uri: (o.size, o.etag) for o in backend.storage.list(folder)})
        except ClientError:
            pass  # not allowed to list: write them (same content, same key) and let the steps fail
    written = 0
    for uri, data in sorted(assets.items()):
        if present.get(uri) == (len(data), hashlib.md5(data).hexdigest()):
            continue
        backend.storage.write_bytes(uri, data)
        written += 1
    return written
