"""Artifacts to macroshards, balanced by bytes, and one S3 ManifestFile per shard."""

from __future__ import annotations

import hashlib
import heapq
import os
from pathlib import Path

from steps.contract import MANIFEST_SUFFIX, shard_name
from steps.publish import manifest, manifest_body  # noqa: F401 - manifest: this module's API


def stable_index(artifact_id: str, n: int) -> int:
    """The shard an artifact belongs to, from its id alone: adding, changing or removing other
    artifacts never moves it (a greedy balance by bytes would reshuffle every shard)."""
    return int.from_bytes(hashlib.sha256(artifact_id.encode()).digest()[:8], "big") % n


def auto_shard_count(total_bytes: int, target_bytes: int, artifacts: int) -> int:
    """How many macroshards `macroshards: auto` makes: the bytes over the target, rounded up to
    a power of two, and no more than there are artifacts.

    Why a power of two: the count changes only when the data doubles (or halves), not each
    time it crosses a multiple of the target. A new count moves almost every artifact
    (`stable_index` is a hash modulo the count), so every Featurize step runs again, though
    the record cache spares the records' compute. With counts 2^k the shards average between
    half the target and the target."""
    if target_bytes < 1:
        raise ValueError(f"target shard size must be at least 1 byte, got {target_bytes}")
    if artifacts < 1:
        raise ValueError("no artifact to shard")
    wanted = max(1, -(-total_bytes // target_bytes))
    return min(1 << (wanted - 1).bit_length(), artifacts)


def assign_shards(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Artifact id -> shard index, by `stable_index`.

    A shard that hashing leaves empty (rare once there are a few artifacts per shard) gets
    the smallest-hash artifact of the fullest shard: every Featurize step needs an input.
    Only that case depends on the other artifacts. The price of stability is balance: shards
    differ in count by about sqrt(count) and in bytes by the records' own spread
    (`benchmarks/incremental_bench.py` prints it next to the greedy balance)."""
    if n < 1:
        raise ValueError(f"macroshards must be at least 1, got {n}")
    if len(sizes) < n:
        raise ValueError(f"{len(sizes)} artifacts for {n} macroshards")
    out = {aid: stable_index(aid, n) for aid in sizes}
    members: list[list[str]] = [[] for _ in range(n)]
    for aid in sorted(out):
        members[out[aid]].append(aid)
    for index in range(n):
        if not members[index]:
            donor = max(range(n), key=lambda i: (len(members[i]), -i))
            moved = min(members[donor], key=lambda a: hashlib.sha256(a.encode()).digest())
            members[donor].remove(moved)
            members[index].append(moved)
            out[moved] = index
    return out


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
