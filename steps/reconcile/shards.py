"""Artifacts to macroshards, balanced by bytes, and one S3 ManifestFile per shard."""

from __future__ import annotations

import heapq
import json
import os
from pathlib import Path

from steps.contract import MANIFEST_SUFFIX, shard_name


def assign_shards(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Greedy largest-first onto the lightest shard (ties: the lower shard index, the smaller
    id), so the result is deterministic and within one artifact of balanced."""
    if n < 1:
        raise ValueError(f"macroshards must be at least 1, got {n}")
    heap = [(0, i) for i in range(n)]
    out: dict[str, int] = {}
    for aid in sorted(sizes, key=lambda a: (-sizes[a], a)):
        load, index = heapq.heappop(heap)
        out[aid] = index
        heapq.heappush(heap, (load + sizes[aid], index))
    return out


def manifest(prefix: str, keys: list[str]) -> list:
    """S3 ManifestFile: `[{"prefix": "s3://bucket/root/"}, "rel/key", ...]`."""
    return [{"prefix": prefix.rstrip("/") + "/"}, *keys]


def write_manifests(folder: Path, prefix: str, keys_by_shard: list[list[str]]) -> list[Path]:
    """One `shard-NNNN.manifest` per shard (written atomically), even for an empty shard."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, keys in enumerate(keys_by_shard):
        path = folder / (shard_name(index) + MANIFEST_SUFFIX)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest(prefix, sorted(keys)), indent=0))
        os.replace(tmp, path)
        paths.append(path)
    return paths
