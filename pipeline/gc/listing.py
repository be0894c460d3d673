"""Objects under a prefix with their age: what `gc` decides on.

The containers' storage (`steps/io/storage.py`) lists keys, sizes and ETags, never times; `gc`
needs when each object was last written, so it lists here: S3's `LastModified`, or a local
file's modification time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from steps.io.storage import TEMP_PREFIX, LocalStorage, split_uri


@dataclass(frozen=True)
class Aged:
    uri: str
    size: int
    modified: datetime


def aged(storage, prefix_uri: str) -> Iterator[Aged]:
    """Every object under `prefix_uri` (a folder: ends with /), with its last write."""
    bucket, key = split_uri(prefix_uri)
    if isinstance(storage, LocalStorage):
        base = storage.root / bucket
        top = base / key
        if not top.is_dir():
            return
        for folder, _dirs, files in os.walk(top):
            for name in sorted(files):
                if name.startswith(TEMP_PREFIX):
                    continue  # a write in progress (LocalStorage writes through a temporary name)
                path = os.path.join(folder, name)
                stat = os.stat(path)
                rel = os.path.relpath(path, base).replace(os.sep, "/")
                yield Aged(f"s3://{bucket}/{rel}", stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc))
        return
    for page in storage.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for obj in page.get("Contents", []):
            yield Aged(f"s3://{bucket}/{obj['Key']}", int(obj["Size"]), obj["LastModified"].astimezone(timezone.utc))
