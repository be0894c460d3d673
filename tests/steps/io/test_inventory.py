"""steps/io/inventory.py: manifest parsing and its errors (each names the manifest)."""

from __future__ import annotations

import json

import pytest

from steps.io import inventory as si
from tests.steps.io.inventory_reports import CSV_SCHEMA, PARQUET_SCHEMA

URI = "s3://inv/p/manifest.json"


def manifest(**kw) -> bytes:
    doc = {"sourceBucket": "prod", "destinationBucket": "arn:aws:s3:::inv", "creationTimestamp": "1764460800000",
           "fileFormat": "CSV", "fileSchema": CSV_SCHEMA, "files": [{"key": "d/1.csv.gz", "size": 3, "MD5checksum": "x"}]}
    doc.update(kw)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


class TestValidManifest:
    def test_csv_and_parquet_columns(self):
        csv = si.parse_manifest(URI, manifest())
        assert csv.columns[:3] == ("bucket", "key", "version_id") and "e_tag" in csv.columns
        assert csv.destination_bucket == "inv" and csv.created.isoformat() == "2025-11-30T00:00:00+00:00"
        parquet = si.parse_manifest(URI, manifest(fileFormat="Parquet", fileSchema=PARQUET_SCHEMA))
        assert parquet.columns == ("bucket", "key", "version_id", "is_latest", "is_delete_marker", "size",
                                   "last_modified_date", "e_tag", "storage_class")


    def test_the_newest_dated_manifest_of_a_report_folder(self, tmp_path):
        from steps.io.storage import LocalStorage

        storage = LocalStorage(tmp_path)
        folder = "s3://inv/reports/prod/all/"
        for stamp in ("2026-11-29T00-00Z", "2026-11-30T00-00Z", "2026-11-28T00-00Z"):
            storage.write_bytes(f"{folder}{stamp}/manifest.json", b"{}")
        storage.write_bytes(f"{folder}data/part-0.csv.gz", b"")
        assert si.resolve(storage, folder) == f"{folder}2026-11-30T00-00Z/manifest.json"
        assert si.report_folder(f"{folder}2026-11-30T00-00Z/manifest.json") == folder
        with pytest.raises(si.InventoryError, match="no <YYYY-MM-DDTHH-MMZ>/manifest.json under it"):
            si.resolve(storage, "s3://inv/empty/")


class TestInvalidManifest:
    @pytest.mark.parametrize("body,message", [
        (b"{not json", "is not an S3 Inventory manifest.json"),
        (manifest(files=None), "is not an S3 Inventory manifest.json: KeyError: 'files'"),
        (manifest(fileFormat="ORC"), "fileFormat ORC is not supported; configure the inventory report as CSV or Parquet"),
        (manifest(fileFormat="JSON"), "unknown fileFormat 'JSON'"),
        (manifest(fileSchema="Bucket, Key, StorageClass"), r"fileSchema lacks \['size', 'e_tag'\]"),
    ])
    def test_errors_name_the_manifest(self, body, message):
        with pytest.raises(si.InventoryError, match=f"inventory manifest {URI}.*{message}"):
            si.parse_manifest(URI, body)
