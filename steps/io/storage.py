"""One place where container code touches object storage.

`s3://bucket/key` URIs are resolved either to files under a local root (the local runner's
default: `WAVEPIPE_S3_ROOT`) or to a real S3 API through boto3 (AWS itself, or any endpoint
named by `AWS_ENDPOINT_URL`, such as the tests' moto server). Both backends expose the same
small interface, so stage code is written once against `Storage`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from steps.io import prefix_listing as s3list
from steps.contract import ENV_KMS_KEY_ID as KMS_ENV
from steps.contract import ENV_S3_ROOT as S3_ROOT_ENV

# CopyObject copies at most 5 GB in one request; above that only UploadPartCopy works.
SINGLE_COPY_LIMIT = 5 * 1024**3
MULTIPART_CHUNK = 256 * 1024**2
TEMP_PREFIX = ".wavepipe-tmp-"
# Local files hashed per task of a concurrent local listing.
LOCAL_BATCH = 64


# slots: Reconcile holds one of these (or a SourceFile made from it) per key; at a million keys
# the per-instance __dict__ alone would be about 100 MB.
@dataclass(frozen=True, slots=True)
class ObjectInfo:
    uri: str
    size: int
    etag: str


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> (`bucket`, `a/b`); raises ValueError naming the URI otherwise."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI without a bucket: {uri!r}")
    return bucket, key


class UnsafeKey(ValueError):
    """A key (or a part of one) that would name something outside its folder."""


def key_problem(key: str) -> str | None:
    """Why `key` (an S3 key, a part of one, or a path relative to a folder) cannot be placed
    under a folder without leaving it, or None. A local root maps keys to paths, where `..`, an
    absolute key or a NUL would escape or fail; S3 keeps them literally, but no key this project
    derives has them, so one that does is a hostile parameter, id or listing."""
    if "\x00" in key:
        return "contains a NUL byte"
    if "\\" in key:
        return "contains a backslash"
    if key.startswith("/"):
        return "is absolute (starts with '/')"
    if any(part in ("..", ".") for part in key.split("/")):
        return "has a '..' or '.' segment"
    return None


def check_key(key: str, what: str) -> str:
    """`key`, or UnsafeKey naming `what` (a URI, a parameter, an id) and the reason."""
    problem = key_problem(key)
    if problem:
        raise UnsafeKey(f"{what} {problem}: it would lead outside its folder")
    return key


def check_uri(uri: str) -> str:
    """`uri` if it is an s3:// URI whose bucket and key stay in place; ValueError naming it."""
    bucket, key = split_uri(uri)
    check_key(bucket, f"the bucket of {uri!r}")
    check_key(key, repr(uri))
    return uri


def join_uri(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


class Storage(Protocol):
    def list(self, prefix_uri: str, *, depth: int = 0, workers: int = 1) -> Iterator[ObjectInfo]: ...
    def head(self, uri: str) -> ObjectInfo | None: ...
    def copy(self, src_uri: str, dst_uri: str, *, size: int | None = None,
             metadata: dict[str, str] | None = None) -> None: ...
    def head_metadata(self, uri: str) -> dict[str, str] | None: ...
    def download(self, uri: str, path: Path) -> None: ...
    def upload(self, path: Path, uri: str) -> None: ...
    def read_bytes(self, uri: str) -> bytes: ...
    def write_bytes(self, uri: str, data: bytes) -> None: ...
    def delete(self, uri: str) -> None: ...


@contextlib.contextmanager
def naming(path: Path | str) -> Iterator[None]:
    """An OSError from a write (disk full, file too large) carries no file name: give it `path`,
    so the one line that reports it says where."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            err.filename = str(path)
        raise


def md5_file(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def upload_etag(path: Path) -> str:
    """The ETag S3 gives `path` uploaded by `S3Storage.upload` (boto3's default transfer: one
    PUT under 8 MiB, else parts of 8 MiB). Not what SSE-KMS gives, where no ETag is a digest."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig()
    if path.stat().st_size < config.multipart_threshold:
        return md5_file(path)
    parts = []
    with open(path, "rb") as fh:
        while block := fh.read(config.multipart_chunksize):
            parts.append(hashlib.md5(block).digest())
    return f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


class LocalStorage:
    """`s3://bucket/key` <-> `<root>/bucket/key`. ETags are MD5 hex, like single-part S3."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, uri: str) -> Path:
        """Where `uri` lives; UnsafeKey for a URI that would lead outside the root."""
        bucket, key = split_uri(check_uri(uri))
        return self.root / bucket / key

    def _info(self, path: Path, uri: str) -> ObjectInfo:
        return ObjectInfo(uri=uri, size=path.stat().st_size, etag=md5_file(path))

    def list(self, prefix_uri: str, *, depth: int = 0, workers: int = 1) -> Iterator[ObjectInfo]:
        """Objects under the prefix in key order, as S3 lists them. `workers` threads hash the
        files (a local listing costs its MD5s, not requests; `depth` changes nothing here)."""
        # S3 prefixes are string prefixes, not folders: `s3://b/a/1` matches `a/10/x` too.
        bucket, key = split_uri(check_uri(prefix_uri))
        base = self.root / bucket
        folder = base / key if key.endswith("/") or not key else (base / key).parent
        if not folder.is_dir():
            return
        found = ((rel, path) for rel, path in s3list.walk_in_key_order(base, folder, lambda n: n.startswith(TEMP_PREFIX))
                 if rel.startswith(key))

        def infos(batch: list[tuple[str, Path]]) -> list[ObjectInfo]:
            return [self._info(path, f"s3://{bucket}/{rel}") for rel, path in batch]

        if workers <= 1:
            for batch in s3list.chunks(found, LOCAL_BATCH):
                yield from infos(batch)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="locallist") as pool:
            for batch in s3list.ordered_map(infos, s3list.chunks(found, LOCAL_BATCH), pool, s3list.window_for(workers)):
                yield from batch

    def head(self, uri: str) -> ObjectInfo | None:
        path = self.path(uri)
        return self._info(path, uri) if path.is_file() else None

    def _atomic_write(self, dst: Path, fill) -> None:
        # Write beside the destination and rename, so no reader ever sees a partial file.
        dst.parent.mkdir(parents=True, exist_ok=True)
        with naming(dst):
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=dst.parent)
            os.close(fd)
            try:
                fill(Path(tmp))
                os.replace(tmp, dst)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def copy(self, src_uri: str, dst_uri: str, *, size: int | None = None,
             metadata: dict[str, str] | None = None) -> None:
        # Local files carry no metadata; their ETag is the MD5 of the bytes, so an identical
        # copy is recognised from the listing alone.
        src = self.path(src_uri)
        if not src.is_file():
            raise FileNotFoundError(src_uri)
        self._atomic_write(self.path(dst_uri), lambda tmp: shutil.copyfile(src, tmp))

    def head_metadata(self, uri: str) -> dict[str, str] | None:
        return {} if self.path(uri).is_file() else None

    def download(self, uri: str, path: Path) -> None:
        src = self.path(uri)
        if not src.is_file():
            raise FileNotFoundError(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        with naming(path):
            shutil.copyfile(src, path)

    def upload(self, path: Path, uri: str) -> None:
        self._atomic_write(self.path(uri), lambda tmp: shutil.copyfile(path, tmp))

    def read_bytes(self, uri: str) -> bytes:
        path = self.path(uri)
        if not path.is_file():
            raise FileNotFoundError(uri)
        return path.read_bytes()

    def write_bytes(self, uri: str, data: bytes) -> None:
        self._atomic_write(self.path(uri), lambda tmp: tmp.write_bytes(data))

    def delete(self, uri: str) -> None:
        self.path(uri).unlink(missing_ok=True)


class S3Storage:
    """boto3-backed storage. Copies are server-side: one CopyObject when the size is known
    and under 5 GB, managed multipart copy otherwise; every write carries the configured
    KMS key."""

    def __init__(self, client=None, kms_key_id: str | None = None, max_connections: int = 10) -> None:
        import boto3  # imported here so local-only runs never need AWS configuration
        from botocore.config import Config

        # One pooled connection per copy or listing thread, and S3's recommended retry mode
        # under load (it backs off on SlowDown/503, which a concurrent listing can meet).
        config = Config(max_pool_connections=max_connections, retries={"max_attempts": 10, "mode": "adaptive"})
        if client is None:
            client = _fast_listing_session(boto3).client("s3", config=config)
            _cheap_listing_check(client)
        self.client = client
        self.kms_key_id = kms_key_id

    def _extra(self) -> dict:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {}

    def list(self, prefix_uri: str, *, depth: int = 0, workers: int = 1) -> Iterator[ObjectInfo]:
        """Objects under the prefix in key order: one paginator, or with `depth` > 0 and
        `workers` > 1 concurrent key ranges cut at the folders `depth` levels down
        (`steps/io/prefix_listing.py`). Both give the same stream."""
        bucket, key = split_uri(prefix_uri)

        def info(obj: dict) -> ObjectInfo:
            return ObjectInfo(uri=f"s3://{bucket}/{obj['Key']}", size=int(obj["Size"]), etag=obj["ETag"].strip('"'))

        yield from s3list.list_s3(self.client, bucket, key, info, depth=depth, workers=workers)

    def head(self, uri: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        bucket, key = split_uri(uri)
        try:
            resp = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(uri=uri, size=int(resp["ContentLength"]), etag=resp["ETag"].strip('"'))

    def copy(self, src_uri: str, dst_uri: str, *, size: int | None = None,
             metadata: dict[str, str] | None = None) -> None:
        """Server-side copy. `size` (from a listing) saves the HEAD a managed copy makes;
        `metadata` replaces the object's user metadata (the source's is kept otherwise)."""
        sb, sk = split_uri(src_uri)
        db, dk = split_uri(check_uri(dst_uri))  # sources are read as they are; writes stay in place
        extra = self._extra()
        if metadata is not None:
            extra |= {"Metadata": metadata, "MetadataDirective": "REPLACE"}
        # S3 makes an object visible only when the (multipart) copy completes: no partial file.
        with _missing_as_file_not_found(src_uri):
            if size is not None and size < SINGLE_COPY_LIMIT:
                self.client.copy_object(CopySource={"Bucket": sb, "Key": sk}, Bucket=db, Key=dk, **extra)
                return
            from boto3.s3.transfer import TransferConfig

            config = TransferConfig(multipart_threshold=SINGLE_COPY_LIMIT, multipart_chunksize=MULTIPART_CHUNK)
            self.client.copy({"Bucket": sb, "Key": sk}, db, dk, ExtraArgs=extra or None, Config=config)

    def head_metadata(self, uri: str) -> dict[str, str] | None:
        """User metadata of an object (`x-amz-meta-*`), or None when it does not exist."""
        from botocore.exceptions import ClientError

        bucket, key = split_uri(uri)
        try:
            return dict(self.client.head_object(Bucket=bucket, Key=key).get("Metadata", {}))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def download(self, uri: str, path: Path) -> None:
        bucket, key = split_uri(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(bucket, key, str(path))

    def upload(self, path: Path, uri: str) -> None:
        bucket, key = split_uri(check_uri(uri))
        self.client.upload_file(str(path), bucket, key, ExtraArgs=self._extra() or None)

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_uri(uri)
        with _missing_as_file_not_found(uri):
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = split_uri(check_uri(uri))
        self.client.put_object(Bucket=bucket, Key=key, Body=data, **self._extra())

    def delete(self, uri: str) -> None:
        bucket, key = split_uri(uri)
        self.client.delete_object(Bucket=bucket, Key=key)


def _fast_listing_session(boto3):
    """A boto3 session whose clients keep timestamps as the strings S3 sent.

    Parsing LastModified with dateutil is about three quarters of the client's CPU time per
    listed key, and nothing here reads it (sizes and ETags identify content). A session of its
    own, so other clients in the process keep datetimes."""
    import botocore.session

    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return boto3.session.Session(botocore_session=core)


def _cheap_listing_check(client) -> None:
    """Before parsing any S3 response, botocore parses its body once more, to catch an error
    sent with status 200 (CopyObject and CompleteMultipartUpload can) or a body cut short (then
    it retries as for a 500). For a 1,000-key listing page that extra parse is about a quarter
    of the client's CPU. For ListObjectsV2 only, the same two checks are made on the bytes: an
    `<Error>` root, or a body that does not close its `ListBucketResult`. Every other operation
    keeps botocore's own check. Without that private handler (another botocore), nothing changes."""
    from botocore import handlers

    original = getattr(handlers, "_handle_200_error", None)
    if original is None:
        return

    def check(operation_model, response_dict, **kwargs):
        if operation_model.name != "ListObjectsV2" or not response_dict:
            return original(operation_model=operation_model, response_dict=response_dict, **kwargs)
        body = response_dict.get("body") or b""
        if response_dict.get("status_code") == 200 and (
                b"<Error>" in body[:512] or not body.rstrip().endswith(b"</ListBucketResult>")):
            response_dict["status_code"] = 500
        return None

    client.meta.events.unregister("before-parse.s3.*", original)
    client.meta.events.register_first("before-parse.s3.*", check)


@contextlib.contextmanager
def _missing_as_file_not_found(uri: str) -> Iterator[None]:
    """Both backends say "no such object" the same way: FileNotFoundError naming the URI."""
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise FileNotFoundError(uri) from None
        raise


def from_env(env: dict[str, str] | None = None, *, max_connections: int = 10) -> Storage:
    """The storage a stage should use, from its environment (see steps/README.md).
    `max_connections`: the HTTP pool size, one per thread that uses the storage at once."""
    env = os.environ if env is None else env
    root = env.get(S3_ROOT_ENV)
    if root:
        return LocalStorage(root)
    return S3Storage(kms_key_id=env.get(KMS_ENV) or None, max_connections=max_connections)
