"""Fetching objects of a shard for `read_mode: stream`, verified against the shard's index.

Library code does the transfer: s3transfer's TransferManager (what boto3's `download_file`
uses) splits an object larger than `part_size_mb` into concurrent ranged GETs on a small
thread pool, writes the parts straight into the destination file (memory stays a few parts),
and retries a part whose body breaks off mid-read (`num_download_attempts`). botocore's
`standard` retry mode retries the requests themselves with exponential backoff and jitter on
throttling (SlowDown, 503), RequestTimeout, 5xx and connection errors.

What is ours, and why:

- Every GET carries `If-Match: <ETag from the index>`, and the size comes from the index too
  (no HEAD). s3transfer pins the ETag only on ranged parts, so small objects get it through
  `PinnedTransferManager` allowing `IfMatch` as a download argument. An object changed since the
  shard was indexed fails with PreconditionFailed on every part: the record fails, naming the
  key, and never mixes bytes of two versions.
- Errors become one line naming the object (`FetchError`), which the worker turns into the
  record's `fetch_error` row.
- `LocalFetcher` is the same contract over the local runner's folder storage.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from s3transfer.exceptions import S3DownloadFailedError
from s3transfer.manager import TransferConfig, TransferManager

from steps.io import storage as st
from steps.contract import ENV_S3_ROOT
from steps.featurize.settings import StreamSettings

MIB = 1 << 20
THROTTLING = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503", "ServiceUnavailable",
              "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "500"}


@dataclass(frozen=True)
class ObjectRef:
    """One object of the shard, as its index describes it."""

    uri: str
    size: int
    etag: str


class FetchError(Exception):
    """An object could not be fetched as indexed; the message names it."""


class Fetcher(Protocol):
    def submit(self, obj: ObjectRef, path: Path) -> Future: ...
    def result(self, obj: ObjectRef, path: Path, future: Future) -> None: ...
    def close(self) -> None: ...


def _check_size(obj: ObjectRef, path: Path) -> None:
    size = path.stat().st_size
    if size != obj.size:
        raise FetchError(f"{obj.uri}: {size} bytes, but the shard's index says {obj.size} (changed since indexed)")


class S3Fetcher:
    """Concurrent, ranged, retried and ETag-pinned GETs through s3transfer."""

    def __init__(self, options: StreamSettings, client=None) -> None:
        self.options = options
        self.client = client or s3_client(options)
        part = options.part_size_mb * MIB
        config = TransferConfig(multipart_threshold=part, multipart_chunksize=part,
                                max_request_concurrency=options.threads, num_download_attempts=options.max_attempts)
        self.manager = PinnedTransferManager(self.client, config)

    def submit(self, obj: ObjectRef, path: Path) -> Future:
        bucket, key = st.split_uri(obj.uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        return self.manager.download(bucket, key, str(path), extra_args={"IfMatch": f'"{obj.etag}"'},
                                     subscribers=[_Known(obj)])

    def result(self, obj: ObjectRef, path: Path, future) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            future.result()
        except ClientError as err:
            raise FetchError(_client_error(obj, err, self.options.max_attempts)) from None
        except S3DownloadFailedError as err:  # s3transfer's wrapping of PreconditionFailed, among others
            cause = err.__cause__ or err.__context__
            if isinstance(cause, ClientError):
                raise FetchError(_client_error(obj, cause, self.options.max_attempts)) from None
            raise FetchError(f"{obj.uri}: {err}") from None
        except (BotoCoreError, OSError) as err:
            raise FetchError(f"{obj.uri}: {type(err).__name__}: {err} (after {self.options.max_attempts} "
                             "attempts)") from None
        _check_size(obj, path)

    def close(self) -> None:
        self.manager.shutdown()


def s3_client(options: StreamSettings):
    """An S3 client sized for `options.threads` concurrent GETs, retrying as S3 advises."""
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=options.threads + 2, tcp_keepalive=True,
                    retries={"mode": "standard", "max_attempts": options.max_attempts})
    return boto3.client("s3", config=config)


def _client_error(obj: ObjectRef, err, attempts: int) -> str:
    code = str(err.response.get("Error", {}).get("Code", ""))
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("NoSuchKey", "404", "NotFound"):
        return f"{obj.uri}: no such object (the shard's index lists it)"
    if code in ("PreconditionFailed", "412") or status == 412:
        return f"{obj.uri}: changed since the shard was indexed (ETag is no longer {obj.etag})"
    if code in THROTTLING or status in (500, 503):
        return f"{obj.uri}: {code or status} after {attempts} attempts (throttled or unavailable)"
    return f"{obj.uri}: {code or status}: {err}"


class _Known:
    """An s3transfer subscriber that gives the size and ETag from the index, so no HEAD is made
    and every ranged part is pinned to that ETag."""

    def __init__(self, obj: ObjectRef) -> None:
        self.obj = obj

    def on_queued(self, future, **kwargs) -> None:
        future.meta.provide_transfer_size(self.obj.size)
        future.meta.provide_object_etag(f'"{self.obj.etag}"')

    def on_progress(self, future, bytes_transferred, **kwargs) -> None:
        pass

    def on_done(self, future, **kwargs) -> None:
        pass


class PinnedTransferManager(TransferManager):
    """TransferManager that also accepts IfMatch on whole-object GETs (it pins ranged parts only)."""

    ALLOWED_DOWNLOAD_ARGS = [*TransferManager.ALLOWED_DOWNLOAD_ARGS, "IfMatch"]


class LocalFetcher:
    """The local runner's folder storage: copy, then check size and ETag (MD5, as LocalStorage gives)."""

    def __init__(self, storage: st.LocalStorage, options: StreamSettings) -> None:
        self.storage = storage
        self.pool = ThreadPoolExecutor(max_workers=options.threads)

    def _copy(self, obj: ObjectRef, path: Path) -> None:
        src = self.storage.path(obj.uri)
        if not src.is_file():
            raise FetchError(f"{obj.uri}: no such object (the shard's index lists it)")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path)
        _check_size(obj, path)
        if st.md5_file(path) != obj.etag:
            raise FetchError(f"{obj.uri}: changed since the shard was indexed (ETag is no longer {obj.etag})")

    def submit(self, obj: ObjectRef, path: Path) -> Future:
        return self.pool.submit(self._copy, obj, path)

    def result(self, obj: ObjectRef, path: Path, future: Future) -> None:
        future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def fetcher_from_env(options: StreamSettings, env: dict[str, str] | None = None) -> Fetcher:
    """Folder storage when the local runner maps s3:// to a folder, S3 (or AWS_ENDPOINT_URL) otherwise."""
    env = os.environ if env is None else env
    root = env.get(ENV_S3_ROOT)
    return LocalFetcher(st.LocalStorage(root), options) if root else S3Fetcher(options)
