"""Listing a large prefix fast, in key order, in bounded memory.

One ListObjectsV2 paginator is a chain of requests, each waiting for the last (1,000 keys a
round trip): a million keys are a thousand round trips in a row. Here the key space under the
prefix is cut into contiguous key ranges that are listed at once:

1. The first page is listed as one paginator would. If it is the whole listing (up to 1,000
   keys), that is all: a small prefix costs one request, as before.
2. Discovery: `Delimiter='/'` listings walk the folders `depth` levels down (the MIMIC layout:
   group folders, then record folders), one level at a time, every folder of a level at once.
3. The folders past the first page are cut into ranges `[start, stop)` of about
   `KEYS_PER_RANGE` keys each, estimated from the first page's keys per folder.
4. Each range is one paginator without delimiter (`StartAfter` just below `start`, stopping at
   the first key at or past `stop`), so pages stay full and the request count stays close to a
   single paginator's (discovery, plus one partial page per range).
5. Ranges are listed by a bounded thread pool and yielded in range order, so the stream is in
   key order, exactly as one paginator's, and at most `2 * workers` ranges (about
   `2 * workers * KEYS_PER_RANGE` objects) are held at once.

Discovery only chooses where to cut: every key under the prefix lies in exactly one range
whatever folders were found, so the result never depends on it being complete.
"""

from __future__ import annotations

import gc
import math
import os
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Keys a range should hold: four full pages. Longer ranges make fewer partial pages (requests
# beyond one paginator's) but hold more memory in the window and balance worse across workers.
KEYS_PER_RANGE = 4000


@dataclass(frozen=True)
class KeyRange:
    """Keys `start <= key < stop` under the listed prefix; None: open on that side."""

    start: str | None
    stop: str | None


def ordered_map(fn: Callable[[T], R], items: Iterable[T], pool: ThreadPoolExecutor, window: int) -> Iterator[R]:
    """`map(fn, items)` on the pool, in order, with at most `window` results pending or held."""
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        # A consumer that stops early (or an error) must not leave requests running.
        for future in pending:
            future.cancel()


def discover(children: Callable[[str], list[str]], root: str, depth: int, pool: ThreadPoolExecutor) -> list[str]:
    """Sorted folder prefixes `depth` levels below `root` (shallower where the tree ends)."""
    level, found = [root], []
    for _ in range(depth):
        level = [p for kids in pool.map(children, level) for p in kids]
        if not level:
            break  # the tree ends here: cut at the deepest folders found
        # Folders without subfolders drop out of the next level; their keys still lie in
        # whichever range covers them.
        found = level
    return sorted(found)


def split_ranges(after: str, folders: list[str], folders_per_range: int) -> list[KeyRange]:
    """Contiguous ranges covering every key past `after` (the first page's last key), cut at
    folder boundaries, `folders_per_range` folders each."""
    cuts = [f for f in folders if f > after]
    count = max(1, math.ceil(len(cuts) / max(1, folders_per_range)))
    bounds = [after, *sorted({cuts[(i * len(cuts)) // count] for i in range(1, count)}), None]
    # The first range starts right after the first page: StartAfter=`after` exactly.
    return [KeyRange(a, b) for a, b in zip(bounds, bounds[1:])]


def folders_in(keys: list[str], prefix: str, depth: int) -> int:
    """How many folders `depth` levels below `prefix` the keys fall in (at least 1)."""
    found = {"/".join(parts[:depth]) for parts in (k[len(prefix):].split("/") for k in keys) if len(parts) > depth}
    return max(1, len(found))


def window_for(workers: int) -> int:
    return 2 * workers


# --- S3 ---------------------------------------------------------------------------------------

def s3_children(client, bucket: str) -> Callable[[str], list[str]]:
    def children(prefix: str) -> list[str]:
        paginator = client.get_paginator("list_objects_v2")
        return [p["Prefix"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
                for p in page.get("CommonPrefixes", [])]

    return children


def s3_range(client, bucket: str, prefix: str, make: Callable[[dict], T],
             first_after: str | None = None) -> Callable[[KeyRange], list[T]]:
    """One range's objects, as `make(content_entry)`, in key order. A range starting at
    `first_after` starts right after that key (the first page's last)."""

    def listed(rng: KeyRange) -> list[T]:
        kwargs = {"Bucket": bucket, "Prefix": prefix}
        if rng.start is not None and rng.start == first_after:
            kwargs["StartAfter"] = rng.start
            rng = KeyRange(None, rng.stop)
        elif rng.start is not None:
            # StartAfter is exclusive and S3 has no inclusive start: start after a string just
            # below `start` (itself without its last character) and drop the few keys between.
            kwargs["StartAfter"] = rng.start[:-1]
        out: list[T] = []
        for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
            for entry in page.get("Contents", []):
                key = entry["Key"]
                if rng.stop is not None and key >= rng.stop:
                    return out
                if rng.start is None or key >= rng.start:
                    out.append(make(entry))
        return out

    return listed


@contextmanager
def fewer_collections() -> Iterator[None]:
    """A listing allocates a few dicts per key and keeps most of them (the objects, and what the
    caller builds from them): Python's cyclic collector, run every 700 allocations by default,
    rescans them over and over, about a third of the client's CPU. Meanwhile it runs every
    50,000: reference counting still frees everything at once; only garbage cycles (a listing
    makes none) wait longer."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def list_s3(client, bucket: str, prefix: str, make: Callable[[dict], T], *, depth: int, workers: int) -> Iterator[T]:
    """Every object under `prefix`, in key order: one paginator when `depth` is 0 or `workers`
    is 1, else the first page, then concurrent key ranges cut at the folders `depth` levels down."""
    with fewer_collections():
        yield from _list_s3(client, bucket, prefix, make, depth=depth, workers=workers)


def _list_s3(client, bucket: str, prefix: str, make: Callable[[dict], T], *, depth: int, workers: int) -> Iterator[T]:
    if depth <= 0 or workers <= 1:
        yield from s3_range(client, bucket, prefix, make)(KeyRange(None, None))
        return
    first = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    entries = first.get("Contents", [])
    yield from (make(e) for e in entries)
    if not first.get("IsTruncated") or not entries:
        return
    keys = [e["Key"] for e in entries]
    per_folder = len(keys) / folders_in(keys, prefix, depth)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3list") as pool:
        folders = discover(s3_children(client, bucket), prefix, depth, pool)
        ranges = split_ranges(keys[-1], folders, round(KEYS_PER_RANGE / per_folder))
        listed = s3_range(client, bucket, prefix, make, first_after=keys[-1])
        for chunk in ordered_map(listed, ranges, pool, window_for(workers)):
            yield from chunk


# --- local folders ----------------------------------------------------------------------------

def walk_in_key_order(base: Path, folder: Path, skip: Callable[[str], bool]) -> Iterator[tuple[str, Path]]:
    """(key relative to `base`, path) of every file under `folder`, in S3 key order.

    Not os.walk's order: a folder `a/b/` sorts as the string `a/b/`, so its files come before a
    file `a/b0` and after `a/b.txt`, as S3 lists them."""
    entries = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                entries.append((entry.name + "/", Path(entry.path), True))
            elif entry.is_file() and not skip(entry.name):
                entries.append((entry.name, Path(entry.path), False))
    for name, path, is_dir in sorted(entries):
        if is_dir:
            yield from walk_in_key_order(base, path, skip)
        else:
            yield path.relative_to(base).as_posix(), path


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
