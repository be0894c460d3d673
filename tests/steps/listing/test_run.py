"""The listing stage: one shard per prefix, or (`macroshards: auto`) what it lists split by bytes
into shards of whole folders; on local storage (the listing itself is tested in tests/steps/io/test_prefix_listing.py)."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from steps.io import storage as st
from steps.entry import StageFailed
from steps.listing.__main__ import main
from steps.listing.run import run_listing, split_by_bytes
from steps.listing.settings import ListingSettings

SOURCE = "s3://raw/mimic3wdb"
EXPERIMENT = "s3://research/experiments/e1"


@pytest.fixture
def local(tmp_path, monkeypatch):
    monkeypatch.setenv(st.S3_ROOT_ENV, str(tmp_path / "s3"))
    storage = st.from_env()
    for group in ("30", "31"):
        for record in range(6):
            folder = f"{group}/{group}0000{record}"
            storage.write_bytes(f"{SOURCE}/{folder}/{group}0000{record}.hea", b"h" * 10)
            for segment in range(3):
                storage.write_bytes(f"{SOURCE}/{folder}/{group}0000{record}_000{segment}.dat", b"d" * (100 + record))
    return storage


def folders_of(report: dict, storage: st.Storage) -> list[set[str]]:
    """Each work shard's record folders, from the index it published."""
    out = []
    for shard in report["work"]:
        index = json.loads(storage.read_bytes(f"{shard['uri']}/index.json"))
        out.append({PurePosixPath(k).parent.as_posix() for k in index})
    return out


class TestValidAuto:
    def test_the_whole_source_split_by_bytes_into_whole_folders(self, tmp_path, local):
        report = run_listing(ListingSettings(), SOURCE, EXPERIMENT, [], tmp_path / "out", local,
                             target_shard_bytes=500)
        total = 12 * 10 + sum(3 * (100 + r) for r in range(6)) * 2  # 3,930 bytes
        assert report["macroshards"] == 8 and report["target_shard_bytes"] == 500  # ceil(7.9) -> 8
        assert sum(s["bytes"] for s in report["shards"]) == total and report["objects_listed"] == 48
        folders = folders_of(report, local)
        assert sum(len(f) for f in folders) == 12 and set().union(*folders) == {
            f"{g}/{g}0000{r}" for g in ("30", "31") for r in range(6)}  # every folder once, whole
        # Nothing cached: every folder is work, packed by bytes (at most floor(3930/500) + 1 shards).
        assert report["folders_todo"] == 12 and report["bytes_todo"] == total and len(report["work"]) <= 8
        items = json.loads(report["shard_items"])  # plain strings: each work shard's place
        assert items == [s["uri"] for s in report["work"]]
        for shard in report["work"]:  # the name and its folders, for a job given only the place
            body = json.loads(local.read_bytes(f"{shard['uri']}/shard.json"))
            assert body["shard"] == shard["name"] and len(body["folders"]) == shard["folders"]

    def test_a_changed_file_changes_its_shard_only(self, tmp_path, local):
        first = run_listing(ListingSettings(), SOURCE, EXPERIMENT, [], tmp_path / "a", local, target_shard_bytes=500)
        local.write_bytes(f"{SOURCE}/31/3100003/3100003_0001.dat", b"x" * 103)  # same size, new content
        again = run_listing(ListingSettings(), SOURCE, EXPERIMENT, [], tmp_path / "b", local, target_shard_bytes=500)
        changed = [a["name"] for a, b in zip(first["shards"], again["shards"]) if a["uri"] != b["uri"]]
        assert len(changed) == 1  # the macroshards' addresses (no record cache here: every folder is work)

    def test_prefixes_are_listed_then_split(self, tmp_path, local):
        report = run_listing(ListingSettings(), SOURCE, EXPERIMENT, [("g30", "30")], tmp_path / "out", local,
                             target_shard_bytes=10**9)
        assert report["macroshards"] == 1 and report["objects_listed"] == 24

    def test_split_keeps_keys_relative_to_the_source(self):
        objects = {k: st.ObjectInfo(f"{SOURCE}/{k}", 5, "e") for k in ("30/a/a.hea", "30/a/a.dat", "31/b/b.hea")}
        [(name, folder, files)] = split_by_bytes(SOURCE, [("", objects)], 10**6)
        assert (name, folder, sorted(files)) == ("shard-0001", SOURCE + "/", ["30/a/a.dat", "30/a/a.hea", "31/b/b.hea"])


class TestInvalidAuto:
    def test_nothing_to_list(self, tmp_path, local):
        with pytest.raises(StageFailed, match="no object under s3://raw/elsewhere: nothing to featurize"):
            run_listing(ListingSettings(), "s3://raw/elsewhere", EXPERIMENT, [], tmp_path / "out", local,
                        target_shard_bytes=500)

    def test_neither_prefixes_nor_a_target_exits_2(self, tmp_path, local, capsys):
        settings = tmp_path / "listing.json"
        from steps.settings_file import write_settings

        write_settings(settings, "listing", ListingSettings())
        code = main(["--source-uri", SOURCE, "--experiment-uri", EXPERIMENT, "--output", str(tmp_path / "o"),
                     "--settings", str(settings)])
        assert code == 2
        assert capsys.readouterr().err == "listing: give --prefix NAME=PREFIX ..., or --target-shard-bytes\n"


class TestInvalidKeys:
    def test_a_source_key_with_dot_dot_is_refused_and_reported_not_published(self, tmp_path, aws):
        """Hostile: S3 keeps `a/../b` literally; the listing leaves it out of every manifest and
        index (it would be staged or fetched outside the shard's folder) and says so."""
        import boto3

        client = boto3.client("s3")
        for bucket in ("raw", "research"):
            client.create_bucket(Bucket=bucket)
        for key in ("mimic3wdb/30/r1/r1.hea", "mimic3wdb/30/r1/../../../../evil.hea", "mimic3wdb/30/r2/r2.hea"):
            client.put_object(Bucket="raw", Key=key, Body=b"h")
        storage = st.S3Storage(client)
        report = run_listing(ListingSettings(), SOURCE, EXPERIMENT, [], tmp_path / "out", storage,
                             target_shard_bytes=10)
        assert report["keys_unsafe"] == 1 and report["keys_unsafe_sample"] == ["30/r1/../../../../evil.hea"]
        assert set().union(*folders_of(report, storage)) == {"30/r1", "30/r2"}
