"""Artifacts to macroshards (steps/sharding.py), and one S3 ManifestFile per shard."""

from __future__ import annotations

import os
from pathlib import Path

from steps.contract import MANIFEST_SUFFIX, shard_name
from steps.publish import manifest, manifest_body  # noqa: F401 - manifest: this module's API
# The assignment is shared with the listing stage's `macroshards: auto`: this module's API too.
from steps.sharding import assign_shards, auto_shard_count, stable_index  # noqa: F401


def write_manifests(folder: Path, prefix: str, keys_by_shard: list[list[str]]) -> list[Path]:
    """One `shard-NNNN.manifest` per shard (written atomically), even for an empty shard."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, keys in enumerate(keys_by_shard):
        path = folder / (shard_name(index) + MANIFEST_SUFFIX)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(manifest_body(prefix, keys))  # byte for byte the published one
        os.replace(tmp, path)
        paths.append(path)
    return paths
