"""The record cache over whole cycles (listing, Featurize of every work shard, Combine), on the
local storage root and on the moto server: only what changed is featurized, Combine assembles
the rest from the packs, and whatever the cache holds (a pickle, an edited, cut or deleted pack,
a corrupt segment, a pack altered after the plan), the table served is that of a run without
the cache, or none: no stored byte runs code, and every refused object is reported by key."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from steps.combine.published import combine_published
from steps.combine.settings import CombineSettings
from steps.contract import (ENV_S3_ROOT, FEATURES_FOLDER, MANIFEST_FILE, REPORT_FILE, SHARD_FILE, SUMMARY_FILE,
                            TABLE_FILE, WORK_NONE)
from steps.featurize.cache.packs import pack_folders
from steps.featurize.cache.segments import INDEX_FOLDER, OBJECTS_FOLDER, Located, object_uri, write_segment
from steps.featurize.run import featurize
from steps.featurize.settings import FeaturizeSettings
from steps.io import storage as st
from steps.listing.run import run_listing
from steps.listing.settings import ListingSettings
from tests.steps.featurize import data as gen
from tests.steps.featurize.cache.conftest import BUCKET, CACHE

SOURCE = f"s3://{BUCKET}/raw"
EXPERIMENT = f"s3://{BUCKET}/experiments/e"
UNCACHED = f"s3://{BUCKET}/experiments/uncached"  # the reference: the same cycle without a record cache
FEATURIZE_KEY = "fk"
TARGET = 2600  # bytes per work shard: a record is ~1.3 kB, so about two folders each
SAMPLES = 300
# (group, record) -> seed of its samples: two MIMIC-style groups of three record folders.
RECORDS = {("30", f"300000{i}"): i for i in (1, 2, 3)} | {("31", f"310000{i}"): 10 + i for i in (1, 2, 3)}
# A record the tests add: it leaves every other folder in its macroshard (with this few folders
# another one could fill a macroshard hashing left empty, and move the folder given it before).
ADDED = "3000004"


class Boom:
    """A pickle that, if ever loaded, writes a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


class Counting:
    """A storage that counts the reads of each object (GETs, downloads)."""

    def __init__(self, storage: st.Storage) -> None:
        self.storage = storage
        self.reads: dict[str, int] = {}
        self.lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.storage, name)

    def _count(self, uri: str) -> None:
        with self.lock:
            self.reads[uri] = self.reads.get(uri, 0) + 1

    def read_bytes(self, uri: str) -> bytes:
        self._count(uri)
        return self.storage.read_bytes(uri)

    def download(self, uri: str, path: Path) -> None:
        self._count(uri)
        self.storage.download(uri, path)


@dataclass
class Cycle:
    listing: dict
    table: dict
    featurized: dict[str, dict]  # work shard name -> its Featurize report
    combined: dict
    summary: bytes  # Combine's waveform_summary.parquet

    @property
    def frame(self) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.summary))

    def folder_key(self, folder: str) -> str:
        [key] = [r["key"] for r in self.table["folders"] if r["folder"] == folder]
        return key


class Cycles:
    """The data under `raw/<group>/<record>/`, and the real cycle over it on one storage, as the
    pipeline runs it: the listing step plans against the record cache and publishes the work;
    each work shard's Featurize job gets the files its manifest names, staged, and its folders
    from its `shard.json`, and its outputs go to `<place>/features/<key>/`; Combine assembles."""

    def __init__(self, storage: st.Storage, tmp: Path) -> None:
        self.storage, self.tmp = storage, tmp
        self.count = 0
        self.target = TARGET
        self.settings = FeaturizeSettings(jobs=1)
        self.env = {ENV_S3_ROOT: str(storage.root)} if isinstance(storage, st.LocalStorage) else {}

    def put(self, group: str, record: str, seed: int) -> None:
        """Write (or rewrite) a record with wfdb and upload its folder."""
        local = self.tmp / "wfdb" / f"{group}-{record}-{seed}"
        gen.write_record(local, record, gen.signals(SAMPLES, 2, "16", seed=seed), "16")
        for path in sorted(local.iterdir()):
            self.storage.upload(path, f"{SOURCE}/{group}/{record}/{path.name}")

    def drop(self, group: str, record: str) -> None:
        for info in list(self.storage.list(f"{SOURCE}/{group}/{record}/")):
            self.storage.delete(info.uri)

    def folder_bytes(self, group: str, record: str) -> int:
        return sum(o.size for o in self.storage.list(f"{SOURCE}/{group}/{record}/"))

    def objects(self, folder: str = OBJECTS_FOLDER) -> list[str]:
        return sorted(o.uri for o in self.storage.list(f"{CACHE}/{folder}/"))

    def __call__(self, cache: str | None = CACHE, experiment: str = EXPERIMENT, before_combine=None) -> Cycle:
        self.count += 1
        run = self.tmp / f"cycle{self.count}"
        listing = run_listing(ListingSettings(), SOURCE, experiment, [], run / "listing", storage=self.storage,
                              target_shard_bytes=self.target, record_cache=cache)
        featurized = {}
        for work in listing["work"]:
            place = work["uri"]
            body = json.loads(self.storage.read_bytes(f"{place}/{SHARD_FILE}"))
            [head, *keys] = json.loads(self.storage.read_bytes(f"{place}/{MANIFEST_FILE}"))
            staged, out = run / "staged" / work["name"], run / "featurized" / work["name"]
            staged.mkdir(parents=True)
            for key in keys:
                self.storage.download(head["prefix"] + key, staged / key)
            featurized[work["name"]] = featurize(staged, out, self.settings, shard=body["shard"],
                                                 work=body["folders"], record_cache=cache, storage=self.storage)
            for path in sorted(out.iterdir()):
                self.storage.upload(path, f"{place}/{FEATURES_FOLDER}/{FEATURIZE_KEY}/{path.name}")
        if before_combine is not None:
            before_combine()
        combined_dir = run / "combined"
        combined = combine_published(run / "listing" / REPORT_FILE, FEATURIZE_KEY, experiment, "ck", combined_dir,
                                     CombineSettings(require_all_shards=True), storage=self.storage, env=self.env)
        table = json.loads((run / "listing" / TABLE_FILE).read_text())
        return Cycle(listing, table, featurized, combined, (combined_dir / SUMMARY_FILE).read_bytes())


def fill(cycles: Cycles) -> None:
    for (group, record), seed in RECORDS.items():
        cycles.put(group, record, seed)


def assert_complete(cycle: Cycle) -> None:
    assert cycle.combined["status"] == "ok" and cycle.combined["complete"], cycle.combined
    assert cycle.combined["record_cache_refused"] == [] and cycle.combined["folders_lacking"] == 0


def assert_no_work(cycle: Cycle) -> None:
    assert cycle.listing["folders_todo"] == 0 and cycle.listing["record_cache_rejected"] == []
    assert [(w["name"], w["files"], w["folders"]) for w in cycle.listing["work"]] == [(WORK_NONE, 0, 0)]


def rows_of(frame: pd.DataFrame, records: set[str], keep: bool = True) -> pd.DataFrame:
    return frame[frame["record"].isin(records) == keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> tuple[Path, Cycle, Cycle]:
    """A local storage root after one cycle with the record cache (it holds every folder) and
    one without: (its root, the cached cycle, the uncached one). Each test works on a copy."""
    tmp = tmp_path_factory.mktemp("warm")
    cycles = Cycles(st.LocalStorage(tmp / "s3"), tmp)
    fill(cycles)
    first = cycles()
    assert_complete(first)
    assert first.listing["folders_todo"] == len(RECORDS) and len(first.listing["work"]) == 3
    assert first.combined["records_failed"] == 0 and first.combined["error_rows"] == 0
    assert len(cycles.objects()) == 3 and len(cycles.objects(INDEX_FOLDER)) == 3
    uncached = cycles(cache=None, experiment=UNCACHED)
    assert_complete(uncached)
    return tmp / "s3", first, uncached


@pytest.fixture
def local(warm, tmp_path) -> Cycles:
    """Cycles on a copy of the warm storage root."""
    shutil.copytree(warm[0], tmp_path / "s3")
    return Cycles(st.LocalStorage(tmp_path / "s3"), tmp_path)


def pack_of(cycles: Cycles, cycle: Cycle, folder: str) -> str:
    """The pack a cycle wrote for `folder` (its work shard's)."""
    [name] = [r["work"] for r in cycle.table["folders"] if r["folder"] == folder]
    return cycle.featurized[name]["record_cache_pack"]


def folders_in(cycles: Cycles, pack: str) -> set[str]:
    return {f.path for f in pack_folders(pq.read_schema(io.BytesIO(cycles.storage.read_bytes(pack))))}


class TestIncremental:
    def test_unchanged_data_is_no_work_and_the_same_table(self, storage, tmp_path):
        """Every storage: the first cycle fills the cache, the second has nothing to do (one
        empty work shard) and serves every row from the packs, byte for byte."""
        cycles = Cycles(storage, tmp_path)
        fill(cycles)
        first = cycles()
        assert_complete(first)
        assert first.listing["folders_todo"] == len(RECORDS)
        assert sum(r["record_cache_written"] for r in first.featurized.values()) == len(RECORDS)
        packs = cycles.objects()
        cycles.storage = counting = Counting(storage)
        second = cycles()
        cycles.storage = storage
        assert_no_work(second)
        assert_complete(second)
        assert second.combined["folders_from_cache"] == len(RECORDS) and second.combined["record_cache_packs_read"] == 3
        assert len(packs) == 3 and {uri: counting.reads.get(uri) for uri in packs} == {uri: 1 for uri in packs}
        assert second.featurized[WORK_NONE]["records_total"] == 0
        uncached = cycles(cache=None, experiment=UNCACHED)
        assert_complete(uncached)
        assert len(first.frame) > 0
        assert second.summary == first.summary == uncached.summary

    def test_an_added_and_a_changed_record_are_the_only_work(self, local, warm):
        _, before, _ = warm
        local.put("30", ADDED, 4)
        local.put("31", "3100002", 99)  # the same record, other samples: its data is rewritten
        changed = {ADDED, "3100002"}
        after = local()
        assert after.listing["macroshards"] == before.listing["macroshards"]  # rows keep their `shard`
        assert after.listing["folders_todo"] == 2 and after.listing["folders_cached"] == len(RECORDS) - 1
        todo = local.folder_bytes("30", ADDED) + local.folder_bytes("31", "3100002")
        assert after.listing["bytes_todo"] == todo == sum(w["bytes"] for w in after.listing["work"])
        assert sum(w["folders"] for w in after.listing["work"]) == 2
        assert_complete(after)
        assert after.combined["folders_from_cache"] == len(RECORDS) - 1
        old, new = before.frame, after.frame
        pd.testing.assert_frame_equal(rows_of(new, changed, keep=False), rows_of(old, changed, keep=False))
        assert len(rows_of(new, {ADDED})) > 0
        old_changed, new_changed = rows_of(old, {"3100002"}), rows_of(new, {"3100002"})
        assert len(new_changed) == len(old_changed) > 0
        assert not (new_changed["mean"].to_numpy() == old_changed["mean"].to_numpy()).any()
        uncached = local(cache=None, experiment=UNCACHED)
        assert after.summary == uncached.summary

    def test_a_deleted_record_vanishes_from_the_table(self, local, warm):
        _, before, _ = warm
        local.drop("31", "3100003")
        after = local()
        assert after.listing["macroshards"] == before.listing["macroshards"]
        assert_no_work(after)
        assert_complete(after)
        assert after.listing["folders_total"] == len(RECORDS) - 1
        assert "3100003" not in set(after.frame["record"]) and "3100003" in set(before.frame["record"])
        pd.testing.assert_frame_equal(after.frame, rows_of(before.frame, {"3100003"}, keep=False))
        assert after.summary == local(cache=None, experiment=UNCACHED).summary

    def test_folders_moved_to_other_macroshards_keep_their_rows(self, local, warm):
        """Another macroshard count (the data doubled, or another target): every folder is
        found again, its rows served under its new macroshard."""
        _, before, _ = warm
        local.target = TARGET // 3
        moved = local()
        assert moved.listing["macroshards"] != before.listing["macroshards"]
        assert_no_work(moved)
        assert_complete(moved)
        assert list(moved.frame["shard"]) != list(before.frame["shard"])  # rows moved to other macroshards
        columns = [c for c in before.frame.columns if c != "shard"]
        order = ["group", "record", "segment", "signal_index"]
        pd.testing.assert_frame_equal(moved.frame[columns].sort_values(order).reset_index(drop=True),
                                      before.frame[columns].sort_values(order).reset_index(drop=True))
        assert moved.summary == local(cache=None, experiment=UNCACHED).summary

    def test_a_folder_with_a_failed_record_is_never_cached(self, local, warm):
        """A failure may be transient: its folder is featurized again on every run, the others
        are not."""
        _, before, _ = warm
        local.settings = FeaturizeSettings(jobs=1, max_error_fraction=1.0)
        local.put("30", ADDED, 5)
        local.storage.delete(f"{SOURCE}/30/{ADDED}/{ADDED}.dat")  # its header names data that is not there
        for _ in range(2):
            cycle = local()
            assert cycle.listing["folders_todo"] == 1 and cycle.listing["folders_cached"] == len(RECORDS)
            [report] = cycle.featurized.values()
            assert report["records_failed"] == 1 and report["record_cache_uncached"] == [f"30/{ADDED}"]
            assert report["record_cache_written"] == 0 and report["record_cache_pack"] is None
            assert_complete(cycle)
            assert cycle.combined["records_failed"] == 1 and cycle.combined["error_rows"] >= 1
            assert ADDED not in set(cycle.frame["record"])
            pd.testing.assert_frame_equal(cycle.frame, before.frame)


class TestHostileCache:
    def test_a_pickle_indexed_as_a_pack_is_never_unpickled(self, storage, tmp_path):
        """A pickle whose loading writes a file, planted as a pack with a consistent, forged
        segment (its true sha256, size and ETag) naming every folder: the planner takes it (it
        lists as indexed), Combine refuses it as no Parquet, deletes it and serves nothing."""
        marker = tmp_path / "unpickled-marker"
        payload = pickle.dumps(Boom(marker), protocol=4)
        pickle.loads(payload)  # the payload works: loading it does run code
        assert marker.read_text() == "code ran"
        marker.unlink()

        cycles = Cycles(storage, tmp_path)
        fill(cycles)
        first = cycles()
        sha = hashlib.sha256(payload).hexdigest()
        uri = object_uri(CACHE, sha)
        storage.write_bytes(uri, payload)
        etag = storage.head(uri).etag
        write_segment(storage, CACHE, [(row["key"], Located(sha, len(payload), etag, 0, 1, 1))
                                       for row in first.table["folders"]])

        hostile = cycles()
        assert not marker.exists()
        assert hostile.listing["folders_todo"] == 0
        assert {r["pack"] for r in hostile.table["folders"]} == {sha}  # the planner chose it: it lists right
        assert [(r["key"], r["reason"]) for r in hostile.combined["record_cache_refused"]] == [(uri, "unreadable")]
        assert hostile.combined["status"] == "failed" and not hostile.combined["complete"]
        assert hostile.combined["folders_lacking"] == len(RECORDS) and len(hostile.frame) == 0
        assert storage.head(uri) is None  # deleted: its name promised other bytes

        healed = cycles()  # the real packs serve again; the forged one is reported missing
        assert not marker.exists()
        assert [(r["key"], r["reason"]) for r in healed.listing["record_cache_rejected"]] == [(uri, "missing")]
        assert healed.listing["folders_todo"] == 0
        assert_complete(healed)
        assert healed.summary == first.summary

    @pytest.mark.parametrize("damage", ["edited", "truncated", "deleted"])
    def test_a_damaged_pack_is_a_miss_and_recomputed(self, local, warm, damage):
        _, first, uncached = warm
        pack = pack_of(local, first, "31/3100002")
        folders = folders_in(local, pack)
        data = local.storage.read_bytes(pack)
        if damage == "edited":  # a well-formed pack for the right folders, one mean changed
            table = pq.read_table(io.BytesIO(data))
            frame = table.to_pandas()
            frame.loc[0, "mean"] = 999.0
            buffer = io.BytesIO()
            pq.write_table(table.from_pandas(frame, schema=table.schema, preserve_index=False), buffer)
            assert buffer.getvalue() != data
            local.storage.write_bytes(pack, buffer.getvalue())
            reasons = {"etag_mismatch", "size_mismatch", "truncated"}
        elif damage == "truncated":
            local.storage.write_bytes(pack, data[:100])
            reasons = {"truncated"}
        else:
            local.storage.delete(pack)
            reasons = {"missing"}

        again = local()
        [rejected] = again.listing["record_cache_rejected"]
        assert rejected["key"] == pack and rejected["reason"] in reasons
        assert rejected["folders"] == str(len(folders))
        assert again.listing["folders_todo"] == len(folders)
        assert {r["folder"] for r in again.table["folders"] if "work" in r} == folders
        assert_complete(again)
        assert again.summary == uncached.summary and 999.0 not in set(again.frame["mean"])
        # Recomputed and written again: the same folders make the same pack, under its name.
        assert local.storage.read_bytes(pack) == data
        assert_no_work(local())

    def test_a_corrupt_segment_is_skipped_and_reported(self, local, warm):
        _, first, uncached = warm
        segments = local.objects(INDEX_FOLDER)
        segment = segments[0]
        data = bytearray(local.storage.read_bytes(segment))
        data[10] ^= 0x01
        local.storage.write_bytes(segment, bytes(data))
        again = local()
        assert [(r["key"], r["reason"]) for r in again.listing["record_cache_rejected"]] == \
            [(segment, "digest_mismatch")]
        assert 0 < again.listing["folders_todo"] < len(RECORDS)  # that segment's folders only
        assert_complete(again)
        assert again.summary == uncached.summary == first.summary
        assert local.objects(INDEX_FOLDER) == segments  # the same entries again: the same name, repaired
        assert_no_work(local())

    def test_a_pack_altered_after_the_plan_is_refused_by_combine(self, local, warm):
        """Between the plan and Combine a pack's bytes change (same size: its listing would not
        tell): Combine checks the sha256, refuses it, deletes it and is not complete; the next
        cycle featurizes its folders again and is complete."""
        _, first, uncached = warm
        pack = pack_of(local, first, "30/3000001")
        folders = folders_in(local, pack)
        data = local.storage.read_bytes(pack)

        def flip() -> None:
            altered = bytearray(data)
            altered[len(altered) // 2] ^= 0xFF
            local.storage.write_bytes(pack, bytes(altered))

        altered = local(before_combine=flip)
        assert_no_work(altered)  # planned before the change: every folder from the packs
        assert [(r["key"], r["reason"]) for r in altered.combined["record_cache_refused"]] == \
            [(pack, "digest_mismatch")]
        assert not altered.combined["complete"] and altered.combined["status"] == "failed"
        assert altered.combined["folders_lacking"] == len(folders)
        assert local.storage.head(pack) is None

        healed = local()
        assert [(r["key"], r["reason"]) for r in healed.listing["record_cache_rejected"]] == [(pack, "missing")]
        assert healed.listing["folders_todo"] == len(folders)
        assert_complete(healed)
        assert healed.summary == uncached.summary == first.summary
        assert local.storage.read_bytes(pack) == data


class TestConcurrentCycles:
    def test_two_cycles_sharing_one_cache_at_once(self, storage, tmp_path):
        """Two executions (a schedule and a manual start) over the same data, one record cache:
        both plan everything, write the same packs and segments, and serve the same table."""
        setup = Cycles(storage, tmp_path / "setup")
        fill(setup)
        results: dict[str, Cycle] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def go(name: str) -> None:
            try:
                cycles = Cycles(storage, tmp_path / name)
                barrier.wait()
                results[name] = cycles(experiment=f"{EXPERIMENT}-{name}")
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=go, args=(name,)) for name in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for cycle in results.values():
            assert_complete(cycle)
        assert results["a"].summary == results["b"].summary
        assert len(results["a"].frame) > 0
        third = setup()
        assert_no_work(third)
        assert_complete(third)
        assert third.summary == results["a"].summary
