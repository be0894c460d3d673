"""Reading an S3 Inventory report instead of listing a bucket.

For buckets of hundreds of millions of keys, S3 Inventory writes the bucket's listing once a
day (or week) as CSV, Parquet or ORC files under a destination bucket, described by a
`manifest.json`:

    {"sourceBucket": "prod", "destinationBucket": "arn:aws:s3:::inventory",
     "creationTimestamp": "1733011200000", "fileFormat": "CSV",
     "fileSchema": "Bucket, Key, Size, ETag, IsLatest, IsDeleteMarker",
     "files": [{"key": "inv/prod/all/data/1.csv.gz", "size": 123, "MD5checksum": "..."}]}

The report is as old as its `creationTimestamp`: objects written since are missing and deleted
ones still listed, so a report older than the allowed age is refused (`InventoryError`), never
read. What is read comes out as one listing's would: `ObjectInfo` under the prefix, in key order,
current versions only (no delete markers, no older versions).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from steps.io import storage as st

FORMATS = ("CSV", "Parquet")
MANIFEST = "manifest.json"
# S3 writes each report's manifest at `<destination prefix>/<source bucket>/<config id>/<stamp>/`.
STAMPED = re.compile(r"(?:^|/)(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z)/manifest\.json$")
# Columns this reads, by their Parquet names (CSV's `ETag` is `e_tag` once in snake case).
COLUMNS = ("bucket", "key", "size", "e_tag", "is_latest", "is_delete_marker")
REQUIRED = ("bucket", "key", "size", "e_tag")
BATCH = 65_536


class InventoryError(ValueError):
    """A missing, malformed, stale or foreign inventory report; the message names the manifest."""


@dataclass(frozen=True)
class ReportFile:
    key: str
    size: int
    md5: str


@dataclass(frozen=True)
class Manifest:
    uri: str
    source_bucket: str
    destination_bucket: str
    file_format: str
    columns: tuple[str, ...]  # snake_case, in file order
    files: tuple[ReportFile, ...]
    created: datetime

    def file_uri(self, f: ReportFile) -> str:
        return f"s3://{self.destination_bucket}/{f.key}"

    def facts(self) -> dict:
        """What a stage's report says about the inventory it read."""
        return {"inventory_manifest": self.uri, "inventory_created": self.created.isoformat(),
                "inventory_format": self.file_format, "inventory_files": len(self.files)}


def snake(name: str) -> str:
    """`IsDeleteMarker` -> `is_delete_marker`, `ETag` -> `e_tag`: CSV schema names as Parquet's."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.strip()).lower()


def parse_manifest(uri: str, body: bytes) -> Manifest:
    """The manifest's fields, or InventoryError naming `uri` and what is wrong."""
    try:
        doc = json.loads(body)
        fmt = doc["fileFormat"]
        schema = doc["fileSchema"]
        files = tuple(ReportFile(f["key"], int(f["size"]), f["MD5checksum"]) for f in doc["files"])
        created = datetime.fromtimestamp(int(doc["creationTimestamp"]) / 1000, tz=timezone.utc)
        source, destination = doc["sourceBucket"], doc["destinationBucket"]
    except (ValueError, KeyError, TypeError) as err:
        raise InventoryError(f"inventory manifest {uri} is not an S3 Inventory manifest.json: "
                             f"{type(err).__name__}: {err}") from None
    if fmt == "ORC":
        raise InventoryError(f"inventory manifest {uri}: fileFormat ORC is not supported; "
                             "configure the inventory report as CSV or Parquet")
    if fmt not in FORMATS:
        raise InventoryError(f"inventory manifest {uri}: unknown fileFormat {fmt!r} (CSV or Parquet)")
    if fmt == "CSV":
        columns = tuple(snake(c) for c in schema.split(","))
    else:
        # Parquet's schema is a Parquet message type; the files carry their own column names.
        columns = tuple(re.findall(r"\b(\w+)\s*(?:\([^)]*\))?\s*;", schema))
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InventoryError(f"inventory manifest {uri}: fileSchema lacks {missing} (the report needs the "
                             f"Size and ETag fields): {schema!r}")
    # destinationBucket is an ARN (`arn:aws:s3:::name`).
    return Manifest(uri, source, destination.rsplit(":", 1)[-1], fmt, columns, files, created)


def report_folder(uri: str) -> str:
    """The report configuration's folder (`.../<source bucket>/<config id>/`) of a manifest URI,
    or the URI itself when it is that folder: where every dated manifest and data file is."""
    if uri.endswith("/"):
        return uri
    match = STAMPED.search(uri)
    return uri[: match.start(1)] if match else uri.rsplit("/", 1)[0] + "/"


def resolve(storage: st.Storage, uri: str) -> str:
    """`uri` itself when it names a manifest.json; for a report configuration's folder, its
    newest dated manifest (so a scheduled run reads the latest report)."""
    if uri.endswith(MANIFEST):
        return uri
    folder = report_folder(uri)
    found = [o.uri for o in storage.list(folder) if STAMPED.fullmatch("/" + o.uri[len(folder):])]
    if not found:
        raise InventoryError(f"inventory {uri}: no <YYYY-MM-DDTHH-MMZ>/{MANIFEST} under it")
    return max(found, key=lambda u: STAMPED.search(u).group(1))


def read_manifest(storage: st.Storage, uri: str) -> Manifest:
    uri = resolve(storage, uri)
    try:
        body = storage.read_bytes(uri)
    except FileNotFoundError:
        raise InventoryError(f"inventory manifest {uri} not found") from None
    return parse_manifest(uri, body)


def check_usable(manifest: Manifest, source_uri: str, max_age_hours: float, now: datetime | None = None) -> float:
    """The report's age in hours; InventoryError when it is of another bucket or too old."""
    bucket, _ = st.split_uri(source_uri)
    if manifest.source_bucket != bucket:
        raise InventoryError(f"inventory manifest {manifest.uri} is of bucket {manifest.source_bucket!r}, "
                             f"not of the input's bucket {bucket!r} ({source_uri})")
    age = ((now or datetime.now(timezone.utc)) - manifest.created).total_seconds() / 3600
    if age > max_age_hours:
        raise InventoryError(
            f"inventory manifest {manifest.uri} was created {manifest.created.isoformat()}, {age:.1f} h ago, "
            f"more than inventory_max_age_hours ({max_age_hours:g}): objects written or deleted since are "
            "not in it. Use a newer report, raise the limit, or list instead (leave out inventory)")
    return age


def _table(manifest: Manifest, f: ReportFile, data: bytes):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if manifest.file_format == "CSV":
        # No header row; every column read as text, so keys such as `0001` stay keys.
        names = list(manifest.columns)
        table = pcsv.read_csv(
            io.BytesIO(gzip.decompress(data) if f.key.endswith(".gz") else data),
            read_options=pcsv.ReadOptions(column_names=names),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                include_columns=[n for n in names if n in COLUMNS]))
        # CSV reports URL-encode keys (form style, as ListObjectsV2's encoding-type=url).
        keys = [urllib.parse.unquote_plus(k) for k in table["key"].to_pylist()]
        return table.set_column(table.schema.get_field_index("key"), "key", pa.array(keys, pa.string()))
    table = pq.read_table(io.BytesIO(data))
    return table.select([c for c in table.column_names if c in COLUMNS])


def _current(table, bucket: str, prefix: str):
    """Rows of `bucket` under `prefix` that are current objects, as (key, size, e_tag)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keep = pc.and_(pc.equal(table["bucket"], bucket), pc.starts_with(table["key"], prefix))
    for name, drop_when in (("is_delete_marker", True), ("is_latest", False)):
        if name in table.column_names:
            flag = table[name]
            if not pa.types.is_boolean(flag.type):
                flag = pc.equal(pc.utf8_lower(flag), "true")
            keep = pc.and_(keep, pc.invert(flag) if drop_when else flag)
    rows = table.filter(pc.fill_null(keep, False))
    return pa.table({"key": rows["key"].cast(pa.string()), "size": rows["size"].cast(pa.int64()),
                     "e_tag": rows["e_tag"].cast(pa.string())})


def load_rows(storage: st.Storage, manifest: Manifest, prefix_uri: str):
    """The report's current objects under `prefix_uri` as an Arrow table (key, size, e_tag)
    sorted by key, each data file checked against the manifest's MD5 first."""
    import pyarrow as pa

    bucket, prefix = st.split_uri(prefix_uri)
    parts = []
    for f in manifest.files:
        uri = manifest.file_uri(f)
        try:
            data = storage.read_bytes(uri)
        except FileNotFoundError:
            raise InventoryError(f"inventory manifest {manifest.uri}: data file {uri} not found") from None
        if hashlib.md5(data).hexdigest() != f.md5:
            raise InventoryError(f"inventory manifest {manifest.uri}: data file {uri} does not match its "
                                 f"MD5checksum {f.md5} (incomplete or replaced)")
        try:
            parts.append(_current(_table(manifest, f, data), bucket, prefix))
        except (pa.ArrowException, OSError, KeyError, EOFError) as err:
            raise InventoryError(f"inventory manifest {manifest.uri}: data file {uri} is not a readable "
                                 f"{manifest.file_format} inventory file: {err}") from None
        del data
    # Only the rows under the prefix are kept, as three Arrow columns (compact, outside Python's
    # heap), sorted in Arrow: binary order of UTF-8, which is S3's key order.
    empty = pa.table({"key": pa.array([], pa.string()), "size": pa.array([], pa.int64()),
                      "e_tag": pa.array([], pa.string())})
    return pa.concat_tables([empty, *parts]).sort_by("key")


def iter_objects(rows, prefix_uri: str) -> Iterator[st.ObjectInfo]:
    """`load_rows`' objects under `prefix_uri` (the same prefix or a narrower one), a batch at a time."""
    import pyarrow.compute as pc

    bucket, prefix = st.split_uri(prefix_uri)
    rows = rows.filter(pc.starts_with(rows["key"], prefix)) if prefix else rows
    for batch in rows.to_batches(max_chunksize=BATCH):
        for key, size, etag in zip(*(batch.column(i).to_pylist() for i in range(3))):
            yield st.ObjectInfo(uri=f"s3://{bucket}/{key}", size=int(size), etag=etag.strip('"'))
