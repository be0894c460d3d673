"""The record cache under attack and decay (steps/featurize/cache/__init__.py): real objects
planted, edited, cut, deleted in the local storage root and on the moto server, then Featurize
run again. Whatever is stored, a run's outputs are those of a run without the cache, no stored
byte runs code, and the report names every object it refused."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from steps.featurize.cache import RecordCache
from steps.featurize.cache.entries import entry_bytes, read_entry
from steps.featurize.cache.segments import INDEX_FOLDER, OBJECTS_FOLDER, object_uri, write_segment
from steps.featurize.discovery import discover_records
from steps.featurize.run import featurize
from steps.featurize.settings import FeaturizeSettings
from tests.steps.featurize import data as gen
from tests.steps.featurize.cache.conftest import CACHE

MARKER_NAME = "unpickled-marker"


class Boom:
    """A pickle that, if ever loaded, writes a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def typed_rows(record):
    """A user feature function whose rows hold what the cache must give back exactly."""
    n = len(record.record)
    return [{"record": record.record, "n": n, "ratio": n / 3, "nan": math.nan, "none": None,
             "f32": np.float32(n / 7), "i16": np.int16(n), "u64": np.uint64(2**64 - n), "flag": np.bool_(n % 2),
             "when": pd.Timestamp("2020-01-01 00:00:00.000000001", tz="Europe/Paris") + pd.Timedelta(n, "s"),
             "naive": dt.datetime(2020, 1, 1, 0, 0, n), "day": dt.date(2020, 1, n),
             # An int column in some records and None in others: pandas makes it float over the shard.
             "sometimes": n if record.record.endswith("n") else None}]


def listed_rows(record):
    """A user feature function whose values no entry holds (lists)."""
    return [{"record": record.record, "values": [1, 2, 3]}]


TYPED = FeaturizeSettings(feature_function=f"{__name__}:typed_rows")
LISTED = FeaturizeSettings(feature_function=f"{__name__}:listed_rows")


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> Path:
    """Three artifact folders: two MIMIC-style (multi-segment, numerics), one plain record."""
    root = tmp_path_factory.mktemp("shard")
    gen.write_mimic3_record(root / "30" / "3000003", "3000003", seed=1)
    gen.write_mimic3_record(root / "31" / "3100011", "3100011", seed=2)
    gen.write_record(root / "plain0", "r0", gen.signals(4000, 3, "16", seed=10, nan_runs=2), "16")
    return root


@pytest.fixture(scope="module")
def uncached(shard, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """Outputs without any record cache, per settings: what every run must write."""
    out = {}
    for name, settings in (("builtin", FeaturizeSettings()), ("typed", TYPED), ("listed", LISTED)):
        folder = tmp_path_factory.mktemp(name)
        featurize(shard, folder, settings, jobs=1, shard="s")
        out[name] = outputs(folder)
    return out


def outputs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("features.parquet", "errors.parquet")}


class Runs:
    """Featurize over the shard, again and again, on one storage and one record cache."""

    def __init__(self, shard: Path, storage, tmp_path: Path) -> None:
        self.shard, self.storage, self.tmp = shard, storage, tmp_path
        self.count = 0

    def __call__(self, settings: FeaturizeSettings = FeaturizeSettings(), root: Path | None = None) -> tuple[dict, Path]:
        self.count += 1
        out = self.tmp / f"run{self.count}"
        report = featurize(root or self.shard, out, settings, jobs=1, shard="s", record_cache=CACHE,
                           storage=self.storage)
        return report, out

    def objects(self) -> list[str]:
        return sorted(o.uri for o in self.storage.list(f"{CACHE}/{OBJECTS_FOLDER}/"))

    def segments(self) -> list[str]:
        return sorted(o.uri for o in self.storage.list(f"{CACHE}/{INDEX_FOLDER}/"))

    def folder_keys(self, root: Path | None = None) -> dict[str, str]:
        """folder -> its key, as the job computes it."""
        records = discover_records(root or self.shard, shard="s")
        cache = RecordCache(CACHE, self.storage, root or self.shard, "s", {})
        cache.split(records)
        return dict(cache.digests)

    def entry_of(self, folder: str) -> str:
        """The object holding `folder`'s rows (the only entry written for that folder key)."""
        key = self.folder_keys()[folder]
        holders = [uri for uri in self.objects() if read_key(self.storage.read_bytes(uri)) == key]
        assert len(holders) == 1, holders
        return holders[0]


def entry_meta(data: bytes) -> dict:
    return json.loads(pq.read_schema(io.BytesIO(data)).metadata[b"wavepipe.record_cache"])


def read_key(data: bytes) -> str:
    return entry_meta(data)["key"]


def read_headers(data: bytes) -> list[str]:
    return [h for h, _, _ in entry_meta(data)["records"]]


@pytest.fixture
def runs(shard, storage, tmp_path) -> Runs:
    return Runs(shard, storage, tmp_path)


def assert_fully_reused(report: dict) -> None:
    assert report["records_featurized"] == 0 and report["record_cache_rejected"] == []


class TestValidRecordCache:
    def test_a_cached_run_writes_the_bytes_of_an_uncached_one(self, runs, uncached):
        first, out1 = runs()
        assert first["record_cache_written"] == 3 and len(runs.objects()) == 3 and len(runs.segments()) == 1
        second, out2 = runs()
        assert_fully_reused(second)
        assert second["artifacts_reused"] == 3
        assert outputs(out1) == outputs(out2) == uncached["builtin"]

    def test_every_kind_of_value_comes_back_exactly(self, runs, uncached):
        """numpy scalars, NaN, ints and floats, timestamps with zones, None, strings: the features
        of a run served from the cache are byte for byte those of a run without it."""
        runs(TYPED)
        report, out = runs(TYPED)
        assert_fully_reused(report)
        assert report["record_cache_unstorable"] == 0
        assert outputs(out) == uncached["typed"]
        table = pq.read_table(out / "features.parquet")
        assert str(table.schema.field("sometimes").type) == "double"  # inferred over cached records too
        assert str(table.schema.field("when").type) == "timestamp[ns, tz=Europe/Paris]"

    def test_rows_no_entry_can_hold_are_featurized_every_run(self, runs, uncached):
        first, _ = runs(LISTED)
        assert first["record_cache_written"] == 0 and first["record_cache_unstorable"] == 3
        assert "column values" in first["record_cache_unstorable_folders"][0]["reason"]
        second, out = runs(LISTED)
        assert second["records_featurized"] == second["records_total"] and outputs(out) == uncached["listed"]
        assert runs.objects() == [] and runs.segments() == []


class TestInvalidRecordCache:
    def test_a_crafted_pickle_is_never_unpickled(self, runs, uncached, tmp_path):
        """A pickle whose loading writes a file, planted where format-1 entries lived, over every
        entry object, and indexed by its true digest and size (a forged, consistent segment)."""
        marker = tmp_path / MARKER_NAME
        payload = pickle.dumps(Boom(marker), protocol=4)
        pickle.loads(payload)  # the payload works: loading it does run code
        assert marker.read_text() == "code ran"
        marker.unlink()

        runs()
        keys = runs.folder_keys()
        for key in keys.values():
            runs.storage.write_bytes(f"{CACHE}/{key}.pkl", payload)  # format 1's place
        for uri in runs.objects():
            runs.storage.write_bytes(uri, payload)
        forged = hashlib.sha256(payload).hexdigest()
        runs.storage.write_bytes(object_uri(CACHE, forged), payload)
        write_segment(runs.storage, CACHE, [(key, forged, len(payload)) for key in keys.values()])

        report, out = runs()
        assert not marker.exists()
        assert report["records_featurized"] == report["records_total"]
        reasons = {(r["key"], r["reason"]) for r in report["record_cache_rejected"]}
        assert {(object_uri(CACHE, forged), "unreadable")} < reasons
        assert {reason for _, reason in reasons} == {"unreadable", "truncated"}  # the pickle is shorter
        assert outputs(out) == uncached["builtin"]
        third, out = runs()  # the recomputed entries replaced the planted bytes
        assert third["records_featurized"] == 0 and outputs(out) == uncached["builtin"]
        # The forged entry stays indexed (for gc): tried before a folder's real one when its
        # digest sorts first, and refused again.
        assert {(r["key"], r["reason"]) for r in third["record_cache_rejected"]} <= \
            {(object_uri(CACHE, forged), "unreadable")}
        assert not marker.exists()

    def test_an_edited_value_is_rejected_and_recomputed(self, runs, uncached):
        """The 999.0 of the issue: a well-formed entry for the right folder, one mean changed.
        Read on its own it would serve 999.0; the index's digest refuses it."""
        runs()
        uri = runs.entry_of("30/3000003")
        key = runs.folder_keys()["30/3000003"]
        data = runs.storage.read_bytes(uri)
        stored = read_entry(data, key, set(read_headers(data)))
        header = next(h for h in stored if stored[h].rows)
        stored[header].rows[0]["mean"] = 999.0
        edited = entry_bytes(key, stored)
        assert read_entry(edited, key, set(stored))[header].rows[0]["mean"] == 999.0
        runs.storage.write_bytes(uri, edited)

        report, out = runs()
        [rejected] = report["record_cache_rejected"]
        assert (rejected["key"], rejected["folder"]) == (uri, "30/3000003")
        assert rejected["reason"] in ("digest_mismatch", "size_mismatch", "truncated")
        assert (report["artifacts_featurized"], report["artifacts_reused"]) == (1, 2)
        assert outputs(out) == uncached["builtin"]
        assert 999.0 not in set(pd.read_parquet(out / "features.parquet")["mean"])
        assert hashlib.sha256(runs.storage.read_bytes(uri)).hexdigest() in uri  # overwritten by the recomputation
        assert_fully_reused(runs()[0])

    def test_a_flipped_byte_is_a_digest_mismatch(self, runs, uncached):
        runs()
        uri = runs.entry_of("plain0")
        data = bytearray(runs.storage.read_bytes(uri))
        data[len(data) // 2] ^= 0xFF  # same size: only the digest can tell
        runs.storage.write_bytes(uri, bytes(data))
        report, out = runs()
        assert [(r["key"], r["reason"]) for r in report["record_cache_rejected"]] == [(uri, "digest_mismatch")]
        assert outputs(out) == uncached["builtin"]
        assert_fully_reused(runs()[0])

    def test_a_truncated_entry_is_a_miss_not_a_failed_shard(self, runs, uncached):
        runs()
        uri = runs.entry_of("31/3100011")
        runs.storage.write_bytes(uri, runs.storage.read_bytes(uri)[:100])
        report, out = runs()
        assert report["status"] == "ok"
        assert [(r["key"], r["folder"], r["reason"]) for r in report["record_cache_rejected"]] == \
            [(uri, "31/3100011", "truncated")]
        assert outputs(out) == uncached["builtin"]
        assert_fully_reused(runs()[0])

    def test_a_deleted_entry_is_recomputed_and_written_again(self, runs, uncached):
        runs()
        uri = runs.entry_of("30/3000003")
        runs.storage.delete(uri)
        report, out = runs()
        assert [(r["key"], r["reason"]) for r in report["record_cache_rejected"]] == [(uri, "missing")]
        assert report["artifacts_featurized"] == 1 and outputs(out) == uncached["builtin"]
        assert uri in runs.objects()
        assert_fully_reused(runs()[0])

    def test_a_foreign_entry_is_refused(self, runs, uncached):
        """Another folder's genuine entry, indexed (consistently) under this folder's key."""
        runs()
        keys = runs.folder_keys()
        other = runs.entry_of("plain0")
        data = runs.storage.read_bytes(other)
        write_segment(runs.storage, CACHE, [(keys["30/3000003"], hashlib.sha256(data).hexdigest(), len(data))])
        # And an object nobody indexed: never even read.
        runs.storage.write_bytes(object_uri(CACHE, "0" * 64), b"not indexed")
        report, out = runs()
        rejected = [(r["key"], r["folder"], r["reason"]) for r in report["record_cache_rejected"]]
        assert rejected == [(other, "30/3000003", "wrong_key")]
        # The folder's own entry is still indexed and valid: it is served, after the foreign one failed.
        assert report["records_featurized"] == 0 and outputs(out) == uncached["builtin"]

    def test_a_corrupt_index_segment_is_skipped_and_reported(self, runs, uncached):
        runs()
        [segment] = runs.segments()
        data = bytearray(runs.storage.read_bytes(segment))
        data[10] ^= 0x01
        runs.storage.write_bytes(segment, bytes(data))
        report, out = runs()
        assert [(r["key"], r["reason"]) for r in report["record_cache_rejected"]] == [(segment, "digest_mismatch")]
        assert report["records_featurized"] == report["records_total"]  # its entries are misses
        assert outputs(out) == uncached["builtin"]
        # The same entries again make the same segment, under the same name: the damaged one is replaced.
        assert runs.segments() == [segment]
        assert_fully_reused(runs()[0])

    def test_two_executions_at_once_share_the_cache_safely(self, runs, uncached, tmp_path):
        """Two jobs over different folders write entries and segments at the same time; a third
        over all of them finds every entry."""
        halves = {}
        for name, folders in (("a", ["30", "plain0"]), ("b", ["31"])):
            halves[name] = tmp_path / name
            for folder in folders:
                shutil.copytree(runs.shard / folder, halves[name] / folder)
        reports, barrier = {}, threading.Barrier(2)

        def go(name: str) -> None:
            barrier.wait()
            reports[name] = featurize(halves[name], tmp_path / f"out-{name}", jobs=1, shard="s", record_cache=CACHE,
                                      storage=runs.storage)

        threads = [threading.Thread(target=go, args=(n,)) for n in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert reports["a"]["record_cache_written"] == 2 and reports["b"]["record_cache_written"] == 1
        assert len(runs.segments()) == 2
        report, out = runs()
        assert_fully_reused(report)
        assert outputs(out) == uncached["builtin"]
