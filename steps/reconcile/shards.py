"""Artifacts to macroshards (steps/sharding.py), the greedy balance it is compared with, and one
S3 ManifestFile per shard."""

from __future__ import annotations

import heapq
import os
from pathlib import Path

from steps.contract import MANIFEST_SUFFIX, shard_name
from steps.publish import manifest, manifest_body  # noqa: F401 - manifest: this module's API
# The assignment is shared with the listing stage's `macroshards: auto`: this module's API too.
from steps.sharding import assign_shards, auto_shard_count, stable_index  # noqa: F401


def greedy_assign(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Largest first onto the lightest shard: the best balance by bytes, but not stable (kept
    for the benchmark's comparison)."""
    heap = [(0, i) for i in range(n)]
    out: dict[str, int] = {}
    for aid in sorted(sizes, key=lambda a: (-sizes[a], a)):
        load, index = heapq.heappop(heap)
        out[aid] = index
        heapq.heappush(heap, (load + sizes[aid], index))
    return out


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
