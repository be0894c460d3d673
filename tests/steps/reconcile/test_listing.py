"""How Reconcile lists its source: one paginator, concurrent key ranges, or an S3 Inventory
report (CSV or Parquet) all give byte-identical outputs; a bad report fails before any copy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from steps.io import storage as st
from steps.reconcile.run import BadInput, reconcile
from steps.reconcile.settings import ReconcileSettings
from tests.steps.io.inventory_reports import rows_of, write_report
from tests.steps.reconcile.fixtures import make_sqlite, record_files

SOURCE = "s3://prod-bucket/mimic3wdb"
EXPERIMENT = "s3://research-bucket/experiments/exp1"
INVENTORY = "s3://inventory-bucket/reports"
PATTERN = "{group}/{artifact_id}/{file}"
IDS = [f"{g}{r:05d}" for g in (30, 31, 32) for r in range(20)]


@pytest.fixture
def s3(aws, monkeypatch):
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "20")  # several pages and ranges from 120 keys
    client = boto3.client("s3")
    for bucket in ("prod-bucket", "research-bucket", "inventory-bucket"):
        client.create_bucket(Bucket=bucket)
    storage = st.S3Storage(max_connections=40)
    for aid in IDS:
        for name, data in record_files(aid).items():
            storage.write_bytes(f"{SOURCE}/{aid[:2]}/{aid}/{name}", data)
    storage.write_bytes(f"{SOURCE}/30/RECORDS", b"\n".join(a.encode() for a in IDS))  # matches no artifact
    return storage


def run(tmp_path: Path, storage, name: str, **listing) -> tuple[dict, dict[str, bytes]]:
    db = tmp_path / "labels.sqlite"
    if not db.exists():
        make_sqlite(db, [(a, "AF" if i % 3 else "N", "exp1") for i, a in enumerate(IDS)])
    settings = ReconcileSettings.model_validate({"labels": {"sqlite_uri": str(db)}, "key_pattern": PATTERN,
                                                 "listing": listing, "featurize_reads": "production"})
    out = tmp_path / name
    report = reconcile(settings, SOURCE, EXPERIMENT, out, macroshards=3, storage=storage)
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
             if p.is_file() and p.name != "report.json"}
    return report, files


def live_objects(storage) -> list[tuple[str, int, str]]:
    return [(o.uri.removeprefix("s3://prod-bucket/"), o.size, o.etag) for o in storage.list("s3://prod-bucket/")]


SAME = ("shards", "labels_uri", "s3_objects_listed", "s3_artifacts", "s3_keys_not_matching_pattern_sample")


class TestValidListingPaths:
    def test_sequential_concurrent_and_inventories_give_identical_outputs(self, tmp_path, s3):
        base, base_files = run(tmp_path, s3, "sequential", threads=1)
        assert base["listing"] == "ListObjectsV2" and base["s3_artifacts"] == len(IDS)
        rows = rows_of("prod-bucket", live_objects(s3))
        runs = {"concurrent": {"threads": 8}, "shallow": {"threads": 8, "depth": 1}}
        for fmt in ("CSV", "Parquet"):
            runs[fmt] = {"inventory": write_report(s3, rows, source_bucket="prod-bucket",
                                                   destination=f"{INVENTORY}/{fmt}", fmt=fmt)}
        for name, listing in runs.items():
            report, files = run(tmp_path, s3, name, **listing)
            assert files == base_files, name  # labels, unique labels, manifests: byte for byte
            assert {k: report[k] for k in SAME} == {k: base[k] for k in SAME}, name
        assert report["listing"] == "S3 Inventory" and report["inventory_format"] == "Parquet"
        assert report["inventory_manifest"] == runs["Parquet"]["inventory"]
        assert report["inventory_created"].startswith(datetime.now(timezone.utc).strftime("%Y-%m-%d")[:4])

    def test_inventory_is_read_as_it_is_not_as_the_bucket_is_now(self, tmp_path, s3):
        # A report lists what was there when it was made: the missing record is not reconciled.
        objects = [o for o in live_objects(s3) if "3000001" not in o[0]]
        manifest = write_report(s3, rows_of("prod-bucket", objects), source_bucket="prod-bucket",
                                destination=INVENTORY, fmt="CSV")
        report, _ = run(tmp_path, s3, "inv", inventory=manifest)
        assert report["s3_artifacts"] == len(IDS) - 1 and report["only_in_db_sample"] == ["3000001"]


class TestInvalidInventory:
    def report(self, s3, **kw) -> str:
        kw.setdefault("source_bucket", "prod-bucket")
        return write_report(s3, rows_of(kw["source_bucket"], live_objects(s3)), destination=INVENTORY, **kw)

    def test_too_old_is_refused_naming_its_date(self, tmp_path, s3):
        old = datetime.now(timezone.utc) - timedelta(hours=50)
        manifest = self.report(s3, created=old)
        with pytest.raises(BadInput, match=r"created .* 50\.\d h ago, more than inventory_max_age_hours \(48\)"):
            run(tmp_path, s3, "old", inventory=manifest)
        report, _ = run(tmp_path, s3, "allowed", inventory=manifest, inventory_max_age_hours=72)
        assert report["inventory_age_hours"] > 49

    def test_other_bucket_missing_and_corrupt_reports(self, tmp_path, s3):
        s3.client.create_bucket(Bucket="other-bucket")
        with pytest.raises(BadInput, match="is of bucket 'other-bucket', not of the input's bucket 'prod-bucket'"):
            run(tmp_path, s3, "a", inventory=self.report(s3, source_bucket="other-bucket"))
        with pytest.raises(BadInput, match=f"inventory manifest {INVENTORY}/nope/manifest.json not found"):
            run(tmp_path, s3, "b", inventory=f"{INVENTORY}/nope/manifest.json")
        manifest = self.report(s3, fmt="Parquet")
        s3.write_bytes(f"{INVENTORY}/prod-bucket/all/data/part-1.parquet", b"replaced")
        with pytest.raises(BadInput, match=r"data file s3://inventory-bucket/reports/prod-bucket/all/data/"
                                           r"part-1.parquet does not match its MD5checksum"):
            run(tmp_path, s3, "c", inventory=manifest)
        assert not (tmp_path / "c" / "labels.parquet").exists()
