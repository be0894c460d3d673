"""The record cache's append-only index (steps/featurize/cache/segments.py), on real storage."""

from __future__ import annotations

import hashlib
import json
import threading

from steps.featurize.cache.segments import INDEX_FOLDER, Located, read_segments, segment_bytes, write_segment
from tests.steps.featurize.cache.conftest import CACHE


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def loc(digest: str, size: int, offset: int = 0) -> Located:
    return Located(digest, size, f"etag-{size}", offset, 3, 1)


def entries(writer: int, n: int = 5) -> list[tuple[str, Located]]:
    return [(f"key-{writer}-{i}", loc(sha(f"{writer}/{i}"), 100 + i, i)) for i in range(n)]


def plant(storage, name: str, data: bytes) -> str:
    uri = f"{CACHE}/{INDEX_FOLDER}/{name}"
    storage.write_bytes(uri, data)
    return uri


class TestValidSegments:
    def test_concurrent_writers_each_add_a_segment_and_readers_see_all(self, storage):
        """Eight writers at the same instant (a barrier): no segment is lost, none overwritten."""
        writers = 8
        barrier = threading.Barrier(writers)
        errors = []

        def write(writer: int) -> None:
            try:
                barrier.wait()
                write_segment(storage, CACHE, entries(writer))
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        index, rejected = read_segments(storage, CACHE)
        assert rejected == [] and len(list(storage.list(f"{CACHE}/{INDEX_FOLDER}/"))) == writers
        assert index == {k: {where} for w in range(writers) for k, where in entries(w)}

    def test_one_key_in_several_segments_keeps_every_candidate(self, storage):
        write_segment(storage, CACHE, [("k", loc(sha("a"), 1))])
        write_segment(storage, CACHE, [("k", loc(sha("b"), 2)), ("k", loc(sha("a"), 1))])
        index, _ = read_segments(storage, CACHE)
        assert index == {"k": {loc(sha("a"), 1), loc(sha("b"), 2)}}

    def test_equal_content_is_one_object(self, storage):
        assert write_segment(storage, CACHE, entries(0)) == write_segment(storage, CACHE, list(reversed(entries(0))))
        assert len(list(storage.list(f"{CACHE}/{INDEX_FOLDER}/"))) == 1

    def test_no_segment_no_entry(self, storage):
        assert write_segment(storage, CACHE, []) is None
        assert read_segments(storage, CACHE) == ({}, [])


class TestInvalidSegments:
    def test_bad_segments_are_skipped_and_reported_the_good_ones_read(self, storage):
        good = write_segment(storage, CACHE, entries(1))
        flipped = bytearray(segment_bytes(entries(2)))
        flipped[40] ^= 0x01
        # Format 2 is the old one-object-per-folder cache: never read.
        wrong_format = json.dumps({"format": 2, "entries": []}).encode()
        bad_entry = json.dumps({"format": 3, "entries": [["k", "not-a-digest", 1, "e", 0, 1, 1]]}).encode()
        pickle_bytes = b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N."
        planted = {
            plant(storage, f"{sha(segment_bytes(entries(2)).decode())}.json", bytes(flipped)): "digest_mismatch",
            plant(storage, "extra.json", segment_bytes(entries(3))): "foreign",
            plant(storage, f"{hashlib.sha256(wrong_format).hexdigest()}.json", wrong_format): "wrong_format",
            plant(storage, f"{hashlib.sha256(bad_entry).hexdigest()}.json", bad_entry): "wrong_schema",
            # Named by its own digest, so only its content can refuse it: never unpickled, no JSON.
            plant(storage, f"{hashlib.sha256(pickle_bytes).hexdigest()}.json", pickle_bytes): "unreadable",
        }
        index, rejected = read_segments(storage, CACHE)
        assert {r["key"]: r["reason"] for r in rejected} == planted
        assert good not in {r["key"] for r in rejected}
        assert index == {k: {where} for k, where in entries(1)}
