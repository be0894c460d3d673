"""Shard outputs named by URI, fetched into one local folder (`<dest>/<shard>/`).

A shard whose location holds nothing (its step failed) is simply absent from the folder;
Combine then reports it as missing."""

from __future__ import annotations

from pathlib import Path

from steps.io.storage import Storage, from_env


def fetch_shard_outputs(shards: dict[str, str], dest: Path, storage: Storage | None = None) -> Path:
    """Download every object under each shard's URI into `dest/<name>/`; returns `dest`."""
    storage = storage or from_env()
    for name, uri in sorted(shards.items()):
        prefix = uri.rstrip("/") + "/"
        for obj in storage.list(prefix):
            storage.download(obj.uri, dest / name / obj.uri[len(prefix):])
    dest.mkdir(parents=True, exist_ok=True)
    return dest
