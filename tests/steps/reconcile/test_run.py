"""The reconcile stage end to end, on local storage and on the moto S3 server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import boto3
import pandas as pd
import pytest

from steps.io import storage as st
from steps.reconcile.__main__ import main
from steps.reconcile.copying import SOURCE_ETAG_META, is_identical
from steps.reconcile.production import SourceFile
from steps.reconcile.run import BadInput, StageFailed, reconcile
from steps.reconcile.settings import ReconcileSettings
from steps.settings_file import write_settings
from tests.steps.reconcile.fixtures import (
    FAIL_IDS_ENV, RequestCounter, listing, make_sqlite, put_tree, record_files,
)

SOURCE = "s3://prod-bucket/waveforms"
EXPERIMENT = "s3://research-bucket/experiments/exp1"
ARTIFACTS = EXPERIMENT + "/data/reconciled_artifacts"
GROUND_TRUTH = "tests.steps.reconcile.fixtures:write_ground_truth"


def ids(n, start=0):
    return [f"r{i:04d}" for i in range(start, start + n)]


def settings(db: Path, **kw) -> ReconcileSettings:
    data = {"labels": {"sqlite_uri": str(db), "query": "SELECT * FROM labels WHERE experiment = :experiment_name"}}
    data.update(kw)
    return ReconcileSettings.model_validate(data)


def labels_db(tmp_path, artifact_ids, experiment="exp1"):
    rows = [(a, "AF" if int(a[1:]) % 3 == 0 else "N", experiment) for a in artifact_ids]
    return make_sqlite(tmp_path / "labels.sqlite", rows)


@pytest.fixture
def local(tmp_path, monkeypatch):
    monkeypatch.setenv(st.S3_ROOT_ENV, str(tmp_path / "s3"))
    return st.from_env()


@pytest.fixture
def s3(aws):
    client = boto3.client("s3")
    for bucket in ("prod-bucket", "research-bucket"):
        client.create_bucket(Bucket=bucket)
    return st.S3Storage(max_connections=40)


def run(s, db, out, storage, **kw):
    options = {k: kw.pop(k) for k in ("macroshards", "reload", "target_shard_bytes") if k in kw}
    return reconcile(settings(db, **kw), SOURCE, EXPERIMENT, out, sql_params={"experiment_name": "exp1"},
                     storage=storage, **options)


class TestValidLocal:
    def test_matching_dedup_copy_manifests(self, tmp_path, local):
        tree = {a: record_files(a) for a in ids(30)}
        tree["r0031"] = tree["r0005"] = record_files("r0004")  # same bytes and names as r0004
        tree["r0040"] = record_files("r0040")  # only on S3
        put_tree(local, SOURCE, tree)
        local.write_bytes(SOURCE + "/README.txt", b"not an artifact")
        db = labels_db(tmp_path, ids(30) + ["r0031", "r0090", "r0091"])
        report = run(None, db, tmp_path / "out", local, macroshards=4)

        assert report["status"] == "succeeded"
        assert (report["matched"], report["only_in_db"], report["only_on_s3"]) == (31, 2, 1)
        assert report["only_in_db_sample"] == ["r0090", "r0091"] and report["only_on_s3_sample"] == ["r0040"]
        assert report["duplicates_dropped"] == 2 and {d["kept"] for d in report["duplicates_sample"]} == {"r0004"}
        assert report["s3_keys_not_matching_pattern"] == 1
        assert report["kept"] == 29 and report["copied"] == 58 and report["skipped_identical"] == 0
        copied = listing(local, ARTIFACTS)
        assert len(copied) == 58 and "r0005/r0004.hea" not in copied

        table = pd.read_parquet(tmp_path / "out" / "labels.parquet")
        assert list(table.columns) == ["artifact_id", "label", "experiment", "n_files", "bytes", "shard"]
        assert table["artifact_id"].is_unique and len(table) == 29 and (table["n_files"] == 2).all()
        counts = json.loads((tmp_path / "out" / "unique_labels_and_counts.json").read_text())
        assert counts == table["label"].value_counts().to_dict()

        entries = {}
        for index in range(4):
            data = json.loads((tmp_path / "out" / "manifests" / f"shard-{index + 1:04d}.manifest").read_text())
            assert data[0] == {"prefix": ARTIFACTS + "/"}
            for key in data[1:]:
                entries.setdefault(key.split("/")[0], set()).add(f"shard-{index + 1:04d}")
        assert all(len(shards) == 1 for shards in entries.values())  # an artifact never spans shards
        assert dict(zip(table["artifact_id"], table["shard"])) == {a: s.pop() for a, s in entries.items()}
        assert sorted(report) and json.loads((tmp_path / "out" / "report.json").read_text())["kept"] == 29

    def test_auto_decides_the_count_from_the_bytes_and_lists_the_items(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(30)})
        db = labels_db(tmp_path, ids(30))
        total = sum(len(d) for a in ids(30) for d in record_files(a).values())
        auto = run(None, db, tmp_path / "auto", local, target_shard_bytes=total // 5)
        assert auto["macroshards"] == 8 and auto["target_shard_bytes"] == total // 5  # ceil(5.x) = 6 -> 8
        # Nothing cached: every artifact is work, packed by bytes into at most floor(5.x) + 1 work shards.
        items = json.loads(auto["shard_items"])  # plain strings: each work shard's place
        assert items == [s["uri"] for s in auto["work"]] and all(isinstance(i, str) for i in items)
        assert [json.loads(local.read_bytes(f"{i}/shard.json"))["shard"] for i in items] == \
            [f"work-{n:04d}" for n in range(1, len(items) + 1)] and len(items) <= 6
        assert auto["folders_todo"] == 30 and auto["bytes_todo"] == total
        # The same shards, at the same content addresses, as a count of 8 given in the config.
        counted = run(None, db, tmp_path / "counted", local, macroshards=8)
        assert counted["shards"] == auto["shards"]

    def test_rerun_skips_and_reload_copies_again(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(10)})
        db = labels_db(tmp_path, ids(10))
        run(None, db, tmp_path / "a", local)
        again = run(None, db, tmp_path / "b", local)
        assert (again["copied"], again["skipped_identical"]) == (0, 20)
        local.write_bytes(SOURCE + "/r0003/r0003.dat", b"changed upstream")
        changed = run(None, db, tmp_path / "c", local)
        assert (changed["copied"], changed["skipped_identical"]) == (1, 19)
        assert local.read_bytes(ARTIFACTS + "/r0003/r0003.dat") == b"changed upstream"
        reloaded = run(None, db, tmp_path / "d", local, reload=True)
        assert (reloaded["copied"], reloaded["skipped_identical"]) == (20, 0)

    def test_mimic_layout_and_file_selection(self, tmp_path, local):
        put_tree(local, SOURCE, {a: {**record_files(a), "notes.txt": b"x"} for a in ids(6)},
                 pattern="{group}/{artifact_id}/{file}", group_of=lambda a: "3" + a[-1:])
        db = labels_db(tmp_path, ids(6))
        report = run(None, db, tmp_path / "out", local, key_pattern="{group}/{artifact_id}/{file}",
                     files_from_prod=["*.hea", "*.dat"])
        assert report["copied"] == 12 and not any(k.endswith("notes.txt") for k in listing(local, ARTIFACTS))
        table = pd.read_parquet(tmp_path / "out" / "labels.parquet")
        assert table.set_index("artifact_id")["group"].to_dict()["r0003"] == "33"

    def test_featurize_reads_production_copies_nothing(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(5)})
        report = run(None, labels_db(tmp_path, ids(5)), tmp_path / "out", local, featurize_reads="production",
                     macroshards=2)
        assert report["copied"] == 0 and listing(local, ARTIFACTS) == {}
        first = json.loads((tmp_path / "out" / "manifests" / "shard-0001.manifest").read_text())
        second = json.loads((tmp_path / "out" / "manifests" / "shard-0002.manifest").read_text())
        assert first[0] == {"prefix": SOURCE + "/"} and len(first) + len(second) - 2 == 10
        assert all(local.head(SOURCE + "/" + key) for key in first[1:] + second[1:])

    def test_process_func_and_required_files(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(8)})
        db = labels_db(tmp_path, ids(8))
        kw = dict(process_func=GROUND_TRUTH, files_on_research=["*.hea", "*.dat", "ground_truth_label.json"])
        report = run(None, db, tmp_path / "out", local, **kw)
        assert report["process_ran"] == 8 and report["failed"] == 0
        truth = json.loads(local.read_bytes(ARTIFACTS + "/r0003/ground_truth_label.json"))
        assert truth == {"artifact_id": "r0003", "label": "AF", "n_files": 2}
        assert pd.read_parquet(tmp_path / "out" / "labels.parquet")["n_files"].eq(3).all()

        # Lost outputs: a production file is copied again, a process_func file regenerated.
        local.delete(ARTIFACTS + "/r0002/ground_truth_label.json")
        local.delete(ARTIFACTS + "/r0005/r0005.hea")
        again = run(None, db, tmp_path / "again", local, **kw)
        assert again["copied"] == 1 and again["regenerated"] == 1 and again["failed"] == 0
        assert local.head(ARTIFACTS + "/r0002/ground_truth_label.json")

    def test_required_production_file_outside_the_selection_is_repaired(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(4)})
        report = run(None, labels_db(tmp_path, ids(4)), tmp_path / "out", local,
                     files_from_prod=["*.dat"], files_on_research=["*.hea"])
        assert report["missing_before_repair"] == 4 and report["repaired_files"] == 4 and report["failed"] == 0
        assert len(listing(local, ARTIFACTS)) == 8

    def test_process_failures_within_the_maximum_drop_the_artifact(self, tmp_path, local, monkeypatch):
        monkeypatch.setenv(FAIL_IDS_ENV, "r0001,r0004")
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(6)})
        report = run(None, labels_db(tmp_path, ids(6)), tmp_path / "out", local,
                     process_func=GROUND_TRUTH, max_process_failures=2)
        assert report["process_failed"] == 2 and report["kept"] == 4
        assert "cannot process r0001" in report["process_failed_sample"][0]["error"]
        assert set(pd.read_parquet(tmp_path / "out" / "labels.parquet")["artifact_id"]) == {"r0000", "r0002", "r0003", "r0005"}


class TestValidLeftovers:
    def test_temp_files_of_a_killed_copy_are_removed_and_never_data(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(4)})
        db = labels_db(tmp_path, ids(4))
        run(None, db, tmp_path / "first", local)
        folder = local.path(ARTIFACTS) / "r0001"
        # What `_atomic_write` leaves when killed between mkstemp and the rename: a killed copy's
        # (untouched for an hour), one a concurrent run is writing now, and names not ours.
        killed = folder / f"{st.TEMP_PREFIX}killed"
        killed.write_bytes(b"half a record")
        os.utime(killed, (time.time() - 3600, time.time() - 3600))
        nested = local.path(EXPERIMENT) / "data" / f"{st.TEMP_PREFIX}labels"
        nested.write_bytes(b"{")
        os.utime(nested, (time.time() - 3600, time.time() - 3600))
        live = folder / f"{st.TEMP_PREFIX}live"
        live.write_bytes(b"being written")
        theirs = [folder / "wavepipe-tmp-not-hidden", folder / f"r0001{st.TEMP_PREFIX}x"]
        for path in theirs:
            path.write_bytes(b"user data")
            os.utime(path, (time.time() - 3600, time.time() - 3600))
        link = folder / f"{st.TEMP_PREFIX}link"
        link.symlink_to(folder / "r0001.hea")
        os.utime(link, (time.time() - 3600, time.time() - 3600), follow_symlinks=False)

        report = run(None, db, tmp_path / "second", local)
        assert report["temp_files_removed"] == 2
        assert not killed.exists() and not nested.exists()
        assert live.exists() and all(p.exists() for p in theirs) and link.is_symlink()
        # Never data: not in the experiment listing, nor copied, validated or put in a shard.
        assert not any(key.split("/")[-1].startswith(st.TEMP_PREFIX) for key in listing(local, ARTIFACTS))
        assert report["kept"] == 4 and report["copied"] == 0 and report["missing_before_repair"] == 0
        manifest = (tmp_path / "second" / "manifests" / "shard-0001.manifest").read_text()
        assert f"/{st.TEMP_PREFIX}" not in manifest
        assert "r0001/wavepipe-tmp-not-hidden" in manifest  # files of the folder not named by us stay data


class TestInvalidLocal:
    def test_unrepairable_files_fail_with_first_50_and_full_list(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(60)})
        with pytest.raises(StageFailed) as err:
            run(None, labels_db(tmp_path, ids(60)), tmp_path / "out", local, files_on_research=["*.hea", "*.atr"])
        message = str(err.value)
        assert "60 artifacts still miss required files" in message and "r0049: *.atr" in message
        assert "r0050" not in message and "10 more" in message
        full = json.loads((tmp_path / "out" / "missing_files.json").read_text())
        assert len(full) == 60 and full[59] == {"artifact_id": "r0059", "missing": ["*.atr"]}
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert report["status"] == "failed" and report["failed"] == 60

    def test_too_many_process_failures(self, tmp_path, local, monkeypatch):
        monkeypatch.setenv(FAIL_IDS_ENV, "r0001,r0004")
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(6)})
        with pytest.raises(StageFailed, match="process_func failed on 2 artifacts"):
            run(None, labels_db(tmp_path, ids(6)), tmp_path / "out", local,
                process_func=GROUND_TRUTH, max_process_failures=1)

    def test_nothing_in_common(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(3)})
        with pytest.raises(StageFailed, match="no artifact is both"):
            run(None, labels_db(tmp_path, ids(3, start=10)), tmp_path / "out", local)

    def test_empty_source(self, tmp_path, local):
        with pytest.raises(BadInput, match="no object under --source-uri"):
            run(None, labels_db(tmp_path, ids(3)), tmp_path / "out", local)

    def test_unknown_process_func_fails_before_copying(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(3)})
        with pytest.raises(BadInput, match="cannot import"):
            run(None, labels_db(tmp_path, ids(3)), tmp_path / "out", local, process_func="no_such_module:f")
        assert listing(local, ARTIFACTS) == {}


class TestValidEntry:
    def test_exit_zero_and_outputs(self, tmp_path, local):
        put_tree(local, SOURCE, {a: record_files(a) for a in ids(4)})
        cfg = tmp_path / "settings.json"
        write_settings(cfg, "reconcile", settings(labels_db(tmp_path, ids(4))))
        out = tmp_path / "out"
        code = main(["--source-uri", SOURCE, "--experiment-uri", EXPERIMENT, "--output", str(out),
                     "--macroshards", "2", "--reload", "false", "--sql-param", "experiment_name=exp1",
                     "--settings", str(cfg)])
        assert code == 0
        assert {p.name for p in out.iterdir()} == {"report.json", "labels.parquet", "unique_labels_and_counts.json",
                                                   "manifests", "table.json"}
        assert sorted(p.name for p in (out / "manifests").iterdir()) == ["shard-0001.manifest", "shard-0002.manifest"]

    def test_help(self, capsys):
        assert main(["--help"]) == 0
        text = capsys.readouterr().out
        for arg in ("--source-uri", "--experiment-uri", "--output", "--macroshards", "--reload", "--sql-param", "--settings"):
            assert arg in text


    def test_fewer_artifacts_than_macroshards_fails_with_the_fix(self, tmp_path, local):
        """An empty shard would fail its Featurize step far from the cause; say it here."""
        artifact_ids = ids(3)
        put_tree(local, SOURCE, {a: record_files(a) for a in artifact_ids})
        db = labels_db(tmp_path, artifact_ids)
        with pytest.raises(StageFailed, match="3 artifacts kept for 5 macroshards.*at most 3"):
            run(None, db, tmp_path / "out", local, macroshards=5)
        assert json.loads((tmp_path / "out" / "report.json").read_text())["status"] == "failed"


class TestInvalidEntry:
    def test_bad_arguments_settings_and_inputs_exit_2(self, tmp_path, local, capsys):
        base = ["--source-uri", SOURCE, "--experiment-uri", EXPERIMENT, "--output", str(tmp_path / "out")]
        bad = write_settings(tmp_path / "bad.json", "reconcile", {"labels": {"url": "postgresql://u:pw@h/db"}})
        missing_db = write_settings(tmp_path / "missing.json", "reconcile",
                                    {"labels": {"sqlite_uri": str(tmp_path / "none.sqlite")}})
        assert main(base[:2]) == 2
        assert main(base + ["--reload", "maybe"]) == 2
        assert main(base + ["--sql-param", "oops"]) == 2
        capsys.readouterr()
        assert main(base + ["--settings", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err == (f"reconcile: invalid settings in {bad}:\n  labels.url: Value error, url must not contain a password; "
                       "put credentials in secret_arn\n")
        assert "pw@" not in err
        assert main(base + ["--settings", str(missing_db)]) == 2
        assert "none.sqlite: no such file" in capsys.readouterr().err
        assert main(base + ["--macroshards", "0"]) == 2
        assert capsys.readouterr().err == "reconcile: --macroshards must be at least 1, got 0\n"


class TestValidS3:
    def test_pagination_server_side_copy_and_a_rerun_without_copies(self, tmp_path, s3):
        artifact_ids = ids(520)  # 1,040 source keys: more than one listing page on both sides
        put_tree(s3, SOURCE, {a: record_files(a) for a in artifact_ids})
        db = labels_db(tmp_path, artifact_ids)
        counter = RequestCounter(s3.client)
        first = run(None, db, tmp_path / "a", s3, macroshards=3)
        assert first["s3_objects_listed"] == 1040 and first["copied"] == 1040
        assert counter.calls["CopyObject"] == 1040 and "GetObject" not in counter.calls
        # No artifact data passes through the container: the only writes are each shard's
        # manifest, index and name (shard.json), and the labels (labels.parquet, unique_labels_and_counts.json).
        assert counter.calls["PutObject"] == 3 * 3 + 2
        assert [s["uri"].rsplit("/", 1)[0] for s in first["shards"]] == [f"{EXPERIMENT}/shards"] * 3
        assert first["labels_uri"].startswith(f"{EXPERIMENT}/labels/")
        assert listing(s3, ARTIFACTS) == listing(s3, SOURCE)  # same keys, sizes, ETags

        counter.calls.clear()
        again = run(None, db, tmp_path / "b", s3, macroshards=3)
        assert (again["copied"], again["skipped_identical"]) == (0, 1040)
        # Source (2 pages and the one delimiter listing that finds where to cut the concurrent
        # listing), experiment (2 pages), each published shard and the labels: lists only, writes nothing.
        assert set(counter.calls) == {"ListObjectsV2"} and counter.calls["ListObjectsV2"] == 5 + 3 + 1
        assert again["shards"] == first["shards"]  # same files, same content addresses
        assert again["labels_uri"] == first["labels_uri"]
        first_manifests, rerun_manifests = (
            sorted(p.read_text() for p in (tmp_path / n / "manifests").glob("*.manifest")) for n in "ab"
        )
        assert len(first_manifests) == 3 and first_manifests == rerun_manifests

    def test_kms_key_on_every_copy(self, tmp_path, s3, monkeypatch):
        key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
        storage = st.S3Storage(kms_key_id=key_id)
        put_tree(s3, SOURCE, {a: record_files(a) for a in ids(3)})
        run(None, labels_db(tmp_path, ids(3)), tmp_path / "out", storage)
        head = s3.client.head_object(Bucket="research-bucket", Key="experiments/exp1/data/reconciled_artifacts/r0001/r0001.dat")
        assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]
        assert head["Metadata"][SOURCE_ETAG_META]

    def test_copy_with_other_etag_is_recognised_by_its_recorded_source_etag(self, s3):
        s3.write_bytes(SOURCE + "/a/x", b"12345")
        src = s3.head(SOURCE + "/a/x")
        s3.copy(src.uri, ARTIFACTS + "/a/x", size=5, metadata={SOURCE_ETAG_META: "multipart-etag-2"})
        dst = s3.head(ARTIFACTS + "/a/x")
        other = SourceFile(file="x", key="a/x", size=5, etag="multipart-etag-2")
        assert is_identical(other, dst, dst.uri, s3)  # ETags differ, recorded source ETag matches
        assert not is_identical(SourceFile("x", "a/x", 5, "other"), dst, dst.uri, s3)
        assert not is_identical(SourceFile("x", "a/x", 6, src.etag), dst, dst.uri, s3)

    def test_sha256_dedup_reads_content(self, tmp_path, s3):
        tree = {a: record_files(a) for a in ids(4)}
        tree["r0009"] = {"r0009.hea": b"h", "r0009.dat": tree["r0002"]["r0002.dat"]}
        put_tree(s3, SOURCE, tree)
        report = run(None, labels_db(tmp_path, ids(4) + ["r0009"]), tmp_path / "out", s3,
                     dedup={"file": "*.dat", "hash": "sha256"})
        assert report["duplicates_sample"] == [{"dropped": "r0009", "kept": "r0002"}]
