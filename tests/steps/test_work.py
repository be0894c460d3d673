"""Tonight's work (steps/work.py): folders keyed from the listing alone, looked up in the
record cache, the missing ones packed by bytes into work shards (never a folder split), or one
work shard per macroshard; published at content addresses, an empty `work-none` when nothing
is missing."""

from __future__ import annotations

import json
import random
from pathlib import PurePosixPath

import pytest

from steps.contract import MANIFEST_FILE, SHARD_FILE, TABLE_FILE, WORK_NONE
from steps.featurize.cache.packs import PackFolder, store_pack
from steps.io import storage as st
from steps.work import folder_key, folders_of, pack_by_bytes, plan_work, publish_work, work_shards

PREFIX = "s3://raw/mimic3wdb/"
EXPERIMENT = "s3://research/experiments/e1"
CACHE = "s3://research/record-cache/k"


def obj(key: str, size: int, etag: str = "") -> st.ObjectInfo:
    return st.ObjectInfo(f"{PREFIX}{key}", size, etag or f"etag-{key}-{size}")


def record_folder(folder: str, sizes: list[int]) -> dict[str, st.ObjectInfo]:
    """A record folder's files: a header and one data file per size."""
    name = PurePosixPath(folder).name or "top"
    base = f"{folder}/" if folder else ""
    files = {f"{base}{name}.hea": obj(f"{base}{name}.hea", 50)}
    for i, size in enumerate(sizes):
        files[f"{base}{name}_{i:04d}.dat"] = obj(f"{base}{name}_{i:04d}.dat", size)
    return files


def shard_of(name: str, folders: dict[str, list[int]]) -> tuple[str, str, dict[str, st.ObjectInfo]]:
    files: dict[str, st.ObjectInfo] = {}
    for folder, sizes in folders.items():
        files.update(record_folder(folder, sizes))
    return name, PREFIX, dict(sorted(files.items()))


@pytest.fixture
def storage(tmp_path) -> st.LocalStorage:
    return st.LocalStorage(tmp_path / "s3")


def cache_folders(storage: st.Storage, folders) -> None:
    """Index `folders` in the record cache as a job that featurized them would (the planner only
    lists packs: their bytes here are any)."""
    packed = [PackFolder(f.path, f.key, f.shard, i, 1, 0, 0, 1, 0) for i, f in enumerate(folders)]
    store_pack(storage, CACHE, b"a pack's bytes " + json.dumps([f.key for f in folders]).encode(), packed)


class TestPackByBytes:
    @pytest.mark.parametrize("seed", range(5))
    def test_at_most_bytes_over_target_plus_one_shards_and_no_folder_split(self, seed):
        rng = random.Random(seed)
        layout = {f"3{g}/3{g}{r:05d}": [rng.randint(1, 5000) for _ in range(rng.randint(1, 4))]
                  for g in range(3) for r in range(rng.randint(1, 12))}
        folders = folders_of([shard_of("shard-0001", layout)])
        total = sum(f.bytes for f in folders)
        for target in (1, 100, 3000, 7000, total // 3 + 1, total, total * 2):
            work = pack_by_bytes(folders, target)
            assert 1 <= len(work) <= total // target + 1, target
            assert [f for members in work for f in members] == folders  # every folder once, in order
            assert all(sum(f.bytes for f in members) >= target for members in work[:-1])
            # Published, each work shard holds each of its folders' files, all of them.
            plan = plan_work(st.LocalStorage("/nonexistent"), [shard_of("shard-0001", layout)], None, target)
            holders: dict[str, set[str]] = {}
            for name, _, files, body in work_shards(plan):
                assert set(files) == {k for f in plan.folders if f.path in body["folders"] for k in f.files}
                for key in files:
                    holders.setdefault(PurePosixPath(key).parent.as_posix(), set()).add(name)
            assert set(holders) == {f.path for f in folders}
            assert all(len(names) == 1 for names in holders.values())

    def test_a_folder_bigger_than_the_target_is_a_shard_of_its_own(self):
        folders = folders_of([shard_of("s", {"30/3000001": [10], "30/3000002": [900], "30/3000003": [10]})])
        assert [[f.path for f in members] for members in pack_by_bytes(folders, 100)] == \
            [["30/3000001", "30/3000002"], ["30/3000003"]]


class TestFolderKey:
    FILES = record_folder("30/3000003", [1000, 2000])

    def key(self, files=None, path="30/3000003", group="30") -> str:
        return folder_key(path, group, self.FILES if files is None else files)

    def test_a_file_size_etag_or_name_changes_the_key(self):
        base = self.key()
        assert self.key(dict(self.FILES)) == base  # deterministic
        key, info = "30/3000003/3000003_0000.dat", self.FILES["30/3000003/3000003_0000.dat"]
        resized = {**self.FILES, key: st.ObjectInfo(info.uri, info.size + 1, info.etag)}
        retagged = {**self.FILES, key: st.ObjectInfo(info.uri, info.size, info.etag + "x")}
        renamed = {("30/3000003/3000003_0009.dat" if k == key else k): o for k, o in self.FILES.items()}
        added = {**self.FILES, "30/3000003/3000003n.hea": obj("30/3000003/3000003n.hea", 10)}
        keys = {base, self.key(resized), self.key(retagged), self.key(renamed), self.key(added),
                self.key(path="31/3000003"), self.key(group="31")}
        assert len(keys) == 7

    def test_a_top_level_folder_is_keyed_by_its_group_the_macroshard(self):
        files = record_folder("", [100])
        [a] = folders_of([("shard-0001", PREFIX, files)])
        [b] = folders_of([("shard-0002", PREFIX, files)])
        assert a.path == b.path == "."
        assert a.key != b.key
        assert a.key == folder_key(".", "shard-0001", files)

    def test_a_mimic_folder_keeps_its_key_in_another_macroshard(self):
        [a] = folders_of([("shard-0001", PREFIX, self.FILES)])
        [b] = folders_of([("shard-0007", PREFIX, self.FILES)])
        assert (a.shard, b.shard) == ("shard-0001", "shard-0007")
        assert a.key == b.key == folder_key("30/3000003", "30", self.FILES)


class TestPlanWork:
    SHARDS = [shard_of("shard-0002", {"30/3000001": [100], "30/3000002": [200]}),
              shard_of("shard-0001", {"31/3100001": [300]}),
              shard_of("shard-0003", {"32/3200001": [400], "32/3200002": [500]})]

    def test_without_target_one_work_shard_per_macroshard_in_order_an_untouched_one_empty(self, storage):
        folders = folders_of(self.SHARDS)
        cache_folders(storage, [f for f in folders if f.shard == "shard-0001"]
                      + [f for f in folders if f.path == "32/3200002"])
        plan = plan_work(storage, self.SHARDS, CACHE, None)
        assert [(name, [f.path for f in members]) for name, members in plan.work] == [
            ("shard-0002", ["30/3000001", "30/3000002"]), ("shard-0001", []), ("shard-0003", ["32/3200001"])]
        report = plan.report()
        assert (report["folders_total"], report["folders_cached"], report["folders_todo"]) == (5, 2, 3)
        assert report["bytes_todo"] == sum(f.bytes for f in plan.missing) and report["record_cache_rejected"] == []
        published = publish_work(storage, EXPERIMENT, plan, storage.root / "out", CACHE)
        assert [s.name for s in published] == ["shard-0002", "shard-0001", "shard-0003"]
        empty = published[1]
        assert (empty.files, empty.bytes) == (0, 0)
        manifest = json.loads(storage.read_bytes(f"{empty.uri}/{MANIFEST_FILE}"))
        assert manifest == [{"prefix": empty.uri + "/"}, SHARD_FILE]

    def test_without_cache_everything_is_work(self, storage):
        plan = plan_work(storage, self.SHARDS, None, 600)
        assert [[f.path for f in members] for _, members in plan.work] == \
            [["30/3000001", "30/3000002", "31/3100001"], ["32/3200001", "32/3200002"]]
        assert [name for name, _ in plan.work] == ["work-0001", "work-0002"]


class TestPublishWork:
    SHARDS = TestPlanWork.SHARDS

    def test_nothing_missing_publishes_one_empty_work_none_shard(self, storage):
        cache_folders(storage, folders_of(self.SHARDS))
        plan = plan_work(storage, self.SHARDS, CACHE, 600)
        assert plan.work == [] and plan.missing == []
        out = storage.root / "out"
        [published] = publish_work(storage, EXPERIMENT, plan, out, CACHE)
        assert (published.name, published.files, published.bytes) == (WORK_NONE, 0, 0)
        manifest = json.loads(storage.read_bytes(f"{published.uri}/{MANIFEST_FILE}"))
        assert manifest == [{"prefix": published.uri + "/"}, SHARD_FILE]
        # What the manifest names exists: a job staging it gets an input holding an object.
        staged = manifest[0]["prefix"] + manifest[1]
        assert json.loads(storage.read_bytes(staged)) == {"shard": WORK_NONE, "folders": {}}
        table = json.loads((out / TABLE_FILE).read_text())
        assert table["record_cache"] == CACHE
        assert [(r["folder"], "pack" in r, "work" in r) for r in table["folders"]] == \
            [(f.path, True, False) for f in folders_of(self.SHARDS)]

    def test_missing_folders_are_published_with_their_keys_and_macroshards(self, storage):
        folders = folders_of(self.SHARDS)
        plan = plan_work(storage, self.SHARDS, CACHE, 10**9)
        [published] = publish_work(storage, EXPERIMENT, plan, storage.root / "out", CACHE)
        assert published.name == "work-0001" and published.bytes == sum(f.bytes for f in folders)
        body = json.loads(storage.read_bytes(f"{published.uri}/{SHARD_FILE}"))
        assert body == {"shard": "work-0001", "folders": {f.path: {"key": f.key, "shard": f.shard} for f in folders}}
        manifest = json.loads(storage.read_bytes(f"{published.uri}/{MANIFEST_FILE}"))
        assert manifest == [{"prefix": PREFIX}, *sorted(k for f in folders for k in f.files)]
