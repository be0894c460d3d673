"""The production side: the listing (steps/listing/source.py), keys parsed into artifacts, files selected,
then matched against the labels and deduplicated."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from steps.io import storage as st
from steps.reconcile.settings import PLACEHOLDER, DedupSettings


# slots: one per listed key, held for the whole run (a million keys at MIMIC scale).
@dataclass(frozen=True, slots=True)
class SourceFile:
    file: str  # path inside the artifact, as the key pattern's {file}
    key: str  # path relative to the source prefix
    size: int
    etag: str


@dataclass
class Artifact:
    artifact_id: str
    fields: dict[str, str] = field(default_factory=dict)  # other placeholders, e.g. {group}
    files: dict[str, SourceFile] = field(default_factory=dict)  # selected by files_from_prod
    all_files: dict[str, SourceFile] = field(default_factory=dict)  # every file listed

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files.values())


@dataclass
class Inventory:
    artifacts: dict[str, Artifact]
    objects_listed: int = 0
    unmatched_keys: list[str] = field(default_factory=list)
    conflicting_keys: list[str] = field(default_factory=list)
    # Keys whose artifact id or file name would lead a copy, a manifest entry or a staged file
    # out of its folder (`..`, absolute, NUL, backslash): refused and reported, never copied.
    unsafe_keys: list[str] = field(default_factory=list)


def compile_key_pattern(pattern: str) -> re.Pattern[str]:
    """`{group}/{artifact_id}/{file}` -> a regex with one named group per placeholder.
    Placeholders match one path segment, except a trailing `{file}`, which may hold folders."""
    out, pos = [], 0
    for match in PLACEHOLDER.finditer(pattern):
        out.append(re.escape(pattern[pos : match.start()]))
        name = match.group(1)
        last = match.end() == len(pattern)
        out.append(f"(?P<{name}>[^/].*)" if name == "file" and last else f"(?P<{name}>[^/]+)")
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + r"\Z")


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def prefix_of(uri: str) -> str:
    """The listing prefix of a folder URI: always ends with '/' so `a/1` never matches `a/10`."""
    return uri.rstrip("/") + "/"


def build_inventory(objects: Iterable[st.ObjectInfo], source_uri: str, pattern: str,
                    files_from_prod: Iterable[str]) -> Inventory:
    """Group listed objects into artifacts by the key pattern, keeping the selected files."""
    regex = compile_key_pattern(pattern)
    wanted = tuple(files_from_prod)
    base = prefix_of(source_uri)
    inv = Inventory(artifacts={})
    for obj in objects:
        inv.objects_listed += 1
        rel = obj.uri[len(base):] if obj.uri.startswith(base) else obj.uri
        match = regex.match(rel)
        if not match:
            inv.unmatched_keys.append(rel)
            continue
        parts = match.groupdict()
        aid, name = parts.pop("artifact_id"), parts.pop("file")
        if st.key_problem(rel) or any(st.key_problem(v) for v in (aid, name, *parts.values())):
            inv.unsafe_keys.append(rel)
            continue
        art = inv.artifacts.setdefault(aid, Artifact(aid, fields=parts))
        if parts != art.fields or name in art.all_files:
            # The same id under two groups: keep the first (listing order is key order).
            inv.conflicting_keys.append(rel)
            continue
        item = SourceFile(file=name, key=rel, size=obj.size, etag=obj.etag)
        art.all_files[name] = item
        if matches_any(name, wanted):
            art.files[name] = item
    # An artifact with none of the wanted files is not an artifact of this dataset.
    inv.artifacts = {k: v for k, v in sorted(inv.artifacts.items()) if v.files}
    return inv


def sample(ids: Iterable[str], n: int) -> list[str]:
    return sorted(ids)[:n]


@dataclass
class Duplicates:
    dropped: dict[str, str]  # dropped id -> surviving id
    label_conflicts: int


def dedup_files(art: Artifact, dedup: DedupSettings) -> list[SourceFile]:
    """The files whose content identifies `art` (all of them when no file is configured)."""
    chosen = [f for f in art.files.values() if dedup.file is None or fnmatch.fnmatchcase(f.file, dedup.file)]
    return sorted(chosen, key=lambda f: f.file)


def content_keys(artifacts: dict[str, Artifact], dedup: DedupSettings,
                 digest: Callable[[SourceFile], str]) -> dict[str, str]:
    """One content key per artifact that has the configured file(s); others are never duplicates."""
    out = {}
    for aid, art in artifacts.items():
        chosen = dedup_files(art, dedup)
        if not chosen:
            continue
        # File names only count when hashing every file: two records with other names but
        # the same bytes in the configured file are still the same content.
        text = "\n".join(
            (f"{f.file}:" if dedup.file is None else "") + digest(f) for f in chosen
        )
        out[aid] = hashlib.sha256(text.encode()).hexdigest()
    return out


def find_duplicates(keys: dict[str, str], labels: dict[str, object]) -> Duplicates:
    """Among artifacts with equal content keys, the smallest id survives (deterministic)."""
    survivor: dict[str, str] = {}
    dropped: dict[str, str] = {}
    conflicts = 0
    for aid in sorted(keys):
        kept = survivor.setdefault(keys[aid], aid)
        if kept != aid:
            dropped[aid] = kept
            conflicts += labels.get(aid) != labels.get(kept)
    return Duplicates(dropped=dropped, label_conflicts=int(conflicts))


def etag_digest(f: SourceFile) -> str:
    return f"{f.size}:{f.etag}"


def sha256_digest(storage: st.Storage, source_uri: str, tmpdir: Path) -> Callable[[SourceFile], str]:
    """Hash an object's bytes, streaming through a temporary file (objects can be large)."""

    def digest(f: SourceFile) -> str:
        import threading

        path = tmpdir / f"{threading.get_ident()}.bin"
        storage.download(st.join_uri(source_uri, f.key), path)
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(8 << 20):
                h.update(block)
        path.unlink(missing_ok=True)
        return h.hexdigest()

    return digest
