"""Shard outputs named by URI (`--shard-outputs NAME=URI ...`), fetched into one local folder.

Over raw prefixes the pipeline hands Combine each Featurize step's output location by property
reference, because a cached shard's outputs stay where an earlier execution wrote them (see
pipeline/stages/featurize.py). A shard whose location holds nothing (its step failed) is simply
absent from the folder; Combine then reports it as missing."""

from __future__ import annotations

from pathlib import Path

from steps.storage import Storage, from_env


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, uri = pair.partition("=")
        if not sep or not name or not uri.startswith("s3://"):
            raise ValueError(f"--shard-outputs expects NAME=s3://..., got {pair!r}")
        if name in out:
            raise ValueError(f"--shard-outputs names shard {name!r} twice")
        out[name] = uri
    return out


def fetch_shard_outputs(shards: dict[str, str], dest: Path, storage: Storage | None = None) -> Path:
    """Download every object under each shard's URI into `dest/<name>/`; returns `dest`."""
    storage = storage or from_env()
    for name, uri in sorted(shards.items()):
        prefix = uri.rstrip("/") + "/"
        for obj in storage.list(prefix):
            storage.download(obj.uri, dest / name / obj.uri[len(prefix):])
    dest.mkdir(parents=True, exist_ok=True)
    return dest
