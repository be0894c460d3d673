"""Which macroshard a unit of work (an artifact, or a folder of raw files) belongs to, and how
many macroshards `macroshards: auto` makes: shared by Reconcile and the listing stage."""

from __future__ import annotations

import hashlib


def stable_index(artifact_id: str, n: int) -> int:
    """The shard an artifact belongs to, from its id alone: adding, changing or removing other
    artifacts never moves it (a greedy balance by bytes would reshuffle every shard)."""
    return int.from_bytes(hashlib.sha256(artifact_id.encode()).digest()[:8], "big") % n


def auto_shard_count(total_bytes: int, target_bytes: int, artifacts: int) -> int:
    """How many macroshards `macroshards: auto` makes: the bytes over the target, rounded up to
    a power of two, and no more than there are artifacts.

    Why a power of two: the count changes only when the data doubles (or halves), not each
    time it crosses a multiple of the target. A new count changes every shard (`stable_index`
    is a hash modulo the count: on doubling, half of each shard's artifacts move to a new one),
    so every Featurize step runs again, though the record cache spares the compute of every
    record whose group its folder names (the record cache is not keyed by shard). With counts 2^k the shards average between
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
