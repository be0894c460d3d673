"""S3 Inventory reports as S3 writes them (manifest.json and gzip CSV or Parquet data files),
for tests and benchmarks/reconcile_bench.py."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import urllib.parse
from datetime import datetime, timezone

from steps.io import storage as st

CSV_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
PARQUET_SCHEMA = ("message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
                  "optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; "
                  "optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); "
                  "optional binary e_tag (UTF8); optional binary storage_class (UTF8);}")


def rows_of(bucket: str, objects, *, noncurrent: bool = True) -> list[dict]:
    """One row per (key, size, etag), plus, when `noncurrent`, an older version and a delete
    marker of keys that are not current (which a reader must skip)."""
    rows = [{"bucket": bucket, "key": k, "version_id": "v2", "is_latest": True, "is_delete_marker": False,
             "size": size, "e_tag": etag} for k, size, etag in objects]
    if noncurrent:
        rows += [{"bucket": bucket, "key": "gone/deleted.dat", "version_id": "v2", "is_latest": True,
                  "is_delete_marker": True, "size": None, "e_tag": None},
                 {"bucket": bucket, "key": "gone/deleted.dat", "version_id": "v1", "is_latest": False,
                  "is_delete_marker": False, "size": 3, "e_tag": "abc"}]
        if objects:
            k, _, _ = objects[0]
            rows.append({"bucket": bucket, "key": k, "version_id": "v1", "is_latest": False,
                         "is_delete_marker": False, "size": 1, "e_tag": "0" * 32})
    return rows


def _csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for r in rows:
        writer.writerow([r["bucket"], urllib.parse.quote_plus(r["key"], safe="/"), r["version_id"],
                         str(r["is_latest"]).lower(), str(r["is_delete_marker"]).lower(),
                         "" if r["size"] is None else r["size"], "2026-11-30T00:00:00.000Z", r["e_tag"] or "",
                         "STANDARD"])
    return gzip.compress(out.getvalue().encode(), compresslevel=1)


def _parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "bucket": pa.array([r["bucket"] for r in rows], pa.string()),
        "key": pa.array([r["key"] for r in rows], pa.string()),
        "version_id": pa.array([r["version_id"] for r in rows], pa.string()),
        "is_latest": pa.array([r["is_latest"] for r in rows], pa.bool_()),
        "is_delete_marker": pa.array([r["is_delete_marker"] for r in rows], pa.bool_()),
        "size": pa.array([r["size"] for r in rows], pa.int64()),
        "last_modified_date": pa.array([1764460800000] * len(rows), pa.timestamp("ms")),
        "e_tag": pa.array([r["e_tag"] for r in rows], pa.string()),
        "storage_class": pa.array(["STANDARD"] * len(rows), pa.string()),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_report(storage: st.Storage, rows: list[dict], *, source_bucket: str, destination: str,
                 fmt: str = "CSV", created: datetime | None = None, files: int = 2) -> str:
    """Write the report's data files (rows spread over `files`, shuffled as S3's are not
    sorted) and manifest.json under `destination` (s3://bucket/prefix); returns the manifest URI."""
    created = created or datetime.now(timezone.utc)
    dest_bucket, dest_prefix = st.split_uri(destination)
    stamp = created.strftime("%Y-%m-%dT%H-%MZ")
    base = f"{dest_prefix.strip('/')}/{source_bucket}/all"
    entries = []
    for i in range(files):
        part = rows[i::files][::-1]
        body = _csv(part) if fmt == "CSV" else _parquet(part)
        key = f"{base}/data/part-{i}.{'csv.gz' if fmt == 'CSV' else 'parquet'}"
        storage.write_bytes(f"s3://{dest_bucket}/{key}", body)
        entries.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = {"sourceBucket": source_bucket, "destinationBucket": f"arn:aws:s3:::{dest_bucket}",
                "version": "2016-11-30", "creationTimestamp": str(int(created.timestamp() * 1000)),
                "fileFormat": fmt, "fileSchema": CSV_SCHEMA if fmt == "CSV" else PARQUET_SCHEMA, "files": entries}
    uri = f"s3://{dest_bucket}/{base}/{stamp}/manifest.json"
    storage.write_bytes(uri, json.dumps(manifest).encode())
    return uri
