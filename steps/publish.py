"""Publishing a work shard at a content address, for Reconcile and the listing stage
(`steps/work.py` decides what a work shard holds: the folders the record cache lacks).

A shard's place is `<experiment>/shards/<digest>/`, the digest covering the shard's name, the
prefix its manifest is relative to, every file's key, size and ETag, and what its
`shard.json` says (a work shard's folders: their keys and macroshards), and nothing else.
The place holds `shard.manifest` (an S3 ManifestFile, what Featurize downloads),
`index.json` (each file's size and ETag, which streaming jobs check every fetch against) and
`shard.json`. Their names are fixed, so the place alone (a ForEach item, a plain string) names
all three. Featurize writes its features under the place, so:

- the same work: same place, same step arguments, a cache hit;
- other work: a new place; features computed from other data never share a place, so nothing
  is overwritten.

Two executions publishing the same shard write byte-identical objects to the same keys.
An object already at its place is verified before it is trusted (`put_verified`): one that is
not byte for byte what its address says (truncated, edited, replaced) is rewritten and named.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Mapping

from steps.io import storage as st
from steps.contract import INDEX_FILE, MANIFEST_FILE, SHARD_FILE, SHARD_FILE_KEY, SHARDS_FOLDER

log = logging.getLogger("steps.publish")


@dataclass(frozen=True)
class PublishedShard:
    name: str
    uri: str  # the shard's place, no trailing slash
    digest: str
    files: int
    bytes: int
    repaired: tuple[str, ...] = field(default=(), compare=False)  # objects found damaged and rewritten

    def as_report(self) -> dict:
        report = {"name": self.name, "uri": self.uri, "digest": self.digest, "files": self.files, "bytes": self.bytes}
        return report | ({"repaired": list(self.repaired)} if self.repaired else {})


def shard_items(shards: list[PublishedShard]) -> str:
    """The ForEach items of `shards`, in shard order: a JSON list string of plain strings, each
    a shard's place (no object items, no field access: the most conservative form the service
    documents). A Featurize iteration needs nothing else: the place's files have fixed names,
    and the job reads the shard's name from its `shard.json`."""
    return json.dumps([s.uri for s in shards], separators=(",", ":"))


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def shard_digest(name: str, prefix: str, files: Mapping[str, st.ObjectInfo], shard_json: dict | None = None) -> str:
    content = {"shard": name, "prefix": prefix.rstrip("/") + "/",
               "files": [[key, files[key].size, files[key].etag] for key in sorted(files)]}
    if shard_json is not None:  # a work shard's: its folders' keys and macroshards are part of it
        content["shard.json"] = shard_json
    return hashlib.sha256(canonical(content)).hexdigest()[:20]


def shard_place(experiment_uri: str, name: str, prefix: str, files: Mapping[str, st.ObjectInfo],
                shard_json: dict | None = None) -> tuple[str, str]:
    """(digest, place) of a shard: what `publish_shard` writes to, and `deploy.py plan` predicts."""
    digest = shard_digest(name, prefix, files, shard_json)
    return digest, st.join_uri(experiment_uri, SHARDS_FOLDER, digest)


def manifest(prefix: str, keys: list[str]) -> list:
    """S3 ManifestFile: `[{"prefix": "s3://bucket/root/"}, "rel/key", ...]`."""
    return [{"prefix": prefix.rstrip("/") + "/"}, *keys]


def manifest_body(prefix: str, keys: list[str]) -> bytes:
    return json.dumps(manifest(prefix, sorted(keys)), indent=0).encode()


def shard_body(name: str, shard_json: dict | None = None) -> bytes:
    return json.dumps(shard_json if shard_json is not None else {SHARD_FILE_KEY: name}, sort_keys=True).encode()


def index_body(files: Mapping[str, st.ObjectInfo]) -> bytes:
    return json.dumps({key: {"size": files[key].size, "etag": files[key].etag} for key in sorted(files)},
                      indent=0, sort_keys=True).encode()


def put_verified(storage: st.Storage, uri: str, body: bytes, present: Mapping[str, st.ObjectInfo]) -> str:
    """Make the object at `uri` be `body`: "unchanged" when it already is (size and an ETag that
    is the MD5 of `body` from the listing; when the ETag is no MD5, as under SSE-KMS, the bytes
    decide), "written" when there was none, "repaired" when there was another one (rewritten)."""
    found = present.get(uri)
    if found is None:
        storage.write_bytes(uri, body)
        return "written"
    if found.size == len(body) and (found.etag == hashlib.md5(body).hexdigest() or storage.read_bytes(uri) == body):
        return "unchanged"
    log.warning("%s is not what its content address holds (%d bytes, expected %d): rewritten", uri, found.size, len(body))
    storage.write_bytes(uri, body)
    return "repaired"


def publish_shard(storage: st.Storage, experiment_uri: str, name: str, prefix: str,
                  files: Mapping[str, st.ObjectInfo], shard_json: dict | None = None) -> PublishedShard:
    """Write the shard's manifest and index at its content address; an object already there is
    kept when it is what the address says, rewritten (and named in `repaired`) when it is not.

    `files`: key relative to `prefix` -> its object (size and ETag from the listing).
    `shard_json`: what its `shard.json` holds (a work shard's folders), else `{"shard": name}`.
    An empty shard's manifest names its own `shard.json`: a job's input must hold an object."""
    digest, place = shard_place(experiment_uri, name, prefix, files, shard_json)
    present = {o.uri: o for o in storage.list(place + "/")}
    repaired = []
    manifest_of = manifest_body(prefix, list(files)) if files else manifest_body(place + "/", [SHARD_FILE])
    for file_name, body in ((MANIFEST_FILE, manifest_of),
                            (INDEX_FILE, index_body(files)), (SHARD_FILE, shard_body(name, shard_json))):
        uri = st.join_uri(place, file_name)
        if put_verified(storage, uri, body, present) == "repaired":
            repaired.append(uri)
    return PublishedShard(name, place, digest, len(files), sum(o.size for o in files.values()), tuple(repaired))


def set_digest(shards: list[PublishedShard]) -> str:
    """One digest over every shard's: what a stage reading all shards (Encode's labels) is keyed by."""
    return hashlib.sha256(canonical([[s.name, s.digest] for s in shards])).hexdigest()[:20]
