"""The current table, assembled: every current artifact folder's rows exactly once, in
(macroshard, folder) order, taken from where the plan says they are (`table.json`, written by
the step that listed the data: `steps/work.py`):

- tonight's work shards' outputs (features.parquet is a pack: its metadata says which rows are
  each folder's), fetched with the other work outputs;
- the record cache's packs, for every folder featurized before: each pack read once, whatever
  the number of its folders, and checked (size, sha256) before a byte is used.

A folder in no current listing is in no table: deleted records vanish. Each night adds a few
packs and changes a few folders, so the packs a table needs grow in number and hold fewer of
its folders each; once Combine reads more than `COMPACT_AFTER` of them it writes one pack of
every clean current folder (and its index segment): the next plan takes each folder from the
pack holding most of them, so the next Combine reads that one and tonight's. Rows are sliced from
typed Parquet, never rebuilt from Python values, so an unchanged record's rows are the bytes
they were. A pack that is not what the index says is refused, never served: Combine deletes
it (its name promises other bytes), reports it, and fails, so the next run featurizes its
folders again.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.parquet as pq

from steps.io import storage as st
from steps.featurize.cache.packs import PackFolder, pack_metadata, read_pack, store_pack
from steps.featurize.cache.segments import Located, Refused, object_uri

log = logging.getLogger("steps.combine")
COMPACT_AFTER = 32  # packs read by one Combine before it writes one pack of the whole current table


@dataclass
class Assembled:
    features: pa.Table | None
    errors: pa.Table | None
    shards: list[str]  # each feature row's macroshard
    error_shards: list[str]
    records_total: int = 0
    records_failed: int = 0
    folders: int = 0
    folders_from_cache: int = 0
    packs_read: int = 0
    refused: list[dict] = field(default_factory=list)  # packs not served: [{key, reason, detail}]
    lacking: list[str] = field(default_factory=list)  # folders whose rows were found nowhere
    compacted: str | None = None  # the pack of the whole current table this Combine wrote, if any


def _read_packs(storage: st.Storage, cache_uri: str, wanted: dict[str, Located],
                threads: int) -> tuple[dict[str, tuple[pa.Table, dict[str, PackFolder]]], list[dict]]:
    def read(where: Located):
        try:
            return read_pack(storage, cache_uri, where)
        except FileNotFoundError:
            return Refused("missing", "indexed, not found")
        except Refused as err:
            return err

    packs, refused = {}, []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for sha, got in zip(wanted, pool.map(read, wanted.values())):
            if isinstance(got, Refused):
                uri = object_uri(cache_uri, sha)
                refused.append({"key": uri, "reason": got.reason, "detail": got.detail})
                if got.reason != "missing":
                    log.warning("record cache: %s refused (%s: %s): deleted, its folders are featurized again on "
                                "the next run", uri, got.reason, got.detail)
                    storage.delete(uri)
            else:
                packs[sha] = got
    return packs, refused


def _plain(table: pa.Table) -> pa.Table:
    # Packs of other runs carry other pandas and pack metadata: the concatenation carries none.
    return table.replace_schema_metadata(None)


def assemble(table: dict, work: dict[str, tuple[pa.Table, pa.Table, list[PackFolder]]], storage: st.Storage | None,
             threads: int = 16, compact_after: int | None = None) -> Assembled:
    """The rows of every folder `table` lists; `work`: tonight's usable work outputs by work
    shard name, (features, errors, their folders)."""
    rows = sorted(table["folders"], key=lambda r: (r["shard"], r["folder"]))
    wanted = {r["pack"]: Located(r["pack"], r["size"], r["etag"], 0, 0, 0) for r in rows if "pack" in r}
    cache_uri = table.get("record_cache")
    packs, refused = _read_packs(storage, cache_uri, wanted, threads) if wanted else ({}, [])
    in_work = {name: {f.key: f for f in folders} for name, (_, _, folders) in work.items()}
    out = Assembled(None, None, [], [], folders=len(rows), packs_read=len(packs), refused=refused)
    features, errors = [], []
    clean: list[tuple[pa.Table, PackFolder]] = []  # every folder without a failed record, for compaction
    for row in rows:
        if "pack" in row:
            pack = packs.get(row["pack"])
            found = pack[1].get(row["key"]) if pack else None
            if found is None or (found.offset, found.rows) != (row["offset"], row["rows"]):
                out.lacking.append(row["folder"])
                continue
            features.append(pack[0].slice(found.offset, found.rows))
            clean.append((features[-1], replace(found, shard=row["shard"])))
            out.shards += [row["shard"]] * found.rows
            out.folders_from_cache += 1
        else:
            found = in_work.get(row["work"], {}).get(row["key"])
            if found is None:
                out.lacking.append(row["folder"])
                continue
            feats, errs, _ = work[row["work"]]
            features.append(feats.slice(found.offset, found.rows))
            errors.append(errs.slice(found.error_offset, found.errors))
            if not found.failed:
                clean.append((features[-1], found))
            out.shards += [row["shard"]] * found.rows
            out.error_shards += [row["shard"]] * found.errors
            out.records_failed += found.failed
        out.records_total += found.records
    if features:
        out.features = pa.concat_tables([_plain(t) for t in features], promote_options="permissive")
    if errors:
        out.errors = pa.concat_tables([_plain(t) for t in errors], promote_options="permissive")
    compact_after = COMPACT_AFTER if compact_after is None else compact_after
    if cache_uri and storage is not None and len(packs) + len(work) > compact_after and clean:
        out.compacted = compact(storage, cache_uri, clean)
    return out


def compact(storage: st.Storage, cache_uri: str, clean: list[tuple[pa.Table, PackFolder]]) -> str | None:
    """One pack of `clean` (each folder's rows and place), kept and indexed in the cache."""
    folders, offset = [], 0
    for rows, where in clean:
        folders.append(replace(where, offset=offset, error_offset=0, errors=0, failed=0))
        offset += rows.num_rows
    table = pa.concat_tables([_plain(t) for t, _ in clean], promote_options="permissive")
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(pack_metadata(folders)), sink, compression="snappy")
    uri, _ = store_pack(storage, cache_uri, sink.getvalue().to_pybytes(), folders)
    log.info("record cache: %d folders compacted into %s", len(folders), uri)
    return uri
