"""Find WFDB records under a folder by reading their headers, never by splitting file names.

Layouts met in practice (all may sit anywhere under the input):

- MIMIC-III WDB: `<group>/<record>/` holds the master `<record>.hea` (multi-segment), a
  `<record>_layout.hea` (no samples), segments `<record>_NNNN.{hea,dat}` and the numerics
  record `<record>n.{hea,dat}`.
- Matched subsets: masters renamed `pXXNNNN-YYYY-MM-DD-hh-mm[n].hea` (MIMIC-II: `sNNNNN-...`),
  while segment and data files keep their 7-digit names, so a numerics master's data file is
  `<7-digit>n.dat` with no header of that name.
- Plain single-segment records (`100.hea` + `100.dat`).

Only the text of the headers is read here (cheap, in the parent process); the workers parse
them properly with wfdb and report what does not parse.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Mapping

from steps.featurize.limits import MAX_HEADER_BYTES
from steps.featurize.records import RecordRef

SEGMENT_NAME = re.compile(r"^(?P<prefix>.+)_(?P<number>\d{4,})$")
MIMIC3_RECORD = re.compile(r"^3\d{6}$")
MATCHED_SUBJECT = re.compile(r"^p\d{6}$")
NUMERICS_NAME = re.compile(r"^(\d{7}|[ps]\d{5,6}-\d{4}(-\d\d){4})n$")


def _record_line(text: str) -> list[str]:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.split()
    return []


def body_lines(text: str) -> list[list[str]]:
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln.split() for ln in lines if ln and not ln.startswith("#")]
    return lines[1:]


def read_text(path: Path) -> str:
    """A header's text, or "" for one that is not a regular file or is over the size limit
    (never read whole, never blocking on a FIFO): the worker refuses it with an error row."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return ""
        with open(path, "rb") as fh:
            raw = fh.read(MAX_HEADER_BYTES + 1)
    except (OSError, ValueError):
        return ""
    # latin-1 never fails to decode: a binary or corrupt header still yields a record,
    # and the worker's parse turns it into an error row.
    return raw.decode("latin-1") if len(raw) <= MAX_HEADER_BYTES else ""


def group_of(rel_dir: PurePosixPath | Path, shard: str) -> str:
    """The MIMIC group of a record folder: `30` for `30/3000003`, `p00` for `p00/p000878`; the
    parent folder's name otherwise, and the macroshard's name for a folder at the top.
    The step that plans the work computes it too (a folder's cache key covers its group)."""
    name = rel_dir.name
    if MIMIC3_RECORD.match(name):
        return name[:2]
    if MATCHED_SUBJECT.match(name):
        return name[:3]
    if len(rel_dir.parts) >= 2:
        return rel_dir.parts[-2]
    return shard


# Bytes per sample of the common formats: the work of a record is its sample count (every
# sample is histogrammed once), which bytes alone misjudge across formats 80, 212 and 16.
# FLAC (508/516/524) is compressed: about one sample per byte, the default.
SAMPLE_BYTES = {"8": 1.0, "80": 1.0, "16": 2.0, "61": 2.0, "160": 2.0, "212": 1.5, "24": 3.0, "32": 4.0,
                "310": 4 / 3, "311": 4 / 3}


def _data_size(directory: Path, texts: dict[str, str], name: str) -> tuple[int, int]:
    """(bytes, estimated samples) of the data files a header names."""
    files: dict[str, str] = {}
    for tokens in body_lines(texts.get(name, "")):
        if len(tokens) > 1 and tokens[0] != "~":
            files.setdefault(tokens[0], re.split(r"[x:+]", tokens[1])[0])
    size = samples = 0
    for file_name, fmt in files.items():
        if not _plain_name(file_name):
            continue  # never looked for outside the folder: the worker refuses the header
        try:
            nbytes = (directory / file_name).stat().st_size
        except (OSError, ValueError):
            continue
        size += nbytes
        samples += int(nbytes / SAMPLE_BYTES.get(fmt, 1.0))
    return size, samples


def _sizes(directory: Path, texts: dict[str, str], names) -> tuple[int, int]:
    pairs = [_data_size(directory, texts, n) for n in names if n in texts]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\x00" not in name and name not in (".", "..")


def _is_layout(tokens: list[str]) -> bool:
    # Layout headers describe a record's signals and hold no samples (length 0); a header
    # named `_layout` that declares samples is read like any other.
    return len(tokens) > 3 and tokens[3] == "0"


def _directory_records(root: Path, directory: Path, names: list[str], shard: str, found: Discovery,
                       shards: Mapping[str, str] | None = None) -> None:
    texts = {name: read_text(directory / f"{name}.hea") for name in names}
    rel_dir = directory.relative_to(root)
    group = group_of(rel_dir, shards.get(rel_dir.as_posix(), shard) if shards else shard)
    masters: dict[str, list[str]] = {}
    for name in names:
        tokens = _record_line(texts[name])
        if tokens and "/" in tokens[0]:
            masters[name] = [t[0] for t in body_lines(texts[name])]
    # A segment named by a path that leads back into this folder (`../3000003/3000003_0002`) is
    # still the master's: claimed here, it is that master's error row, not a record of its own.
    # A master is never claimed: one naming itself, another master or each other is still a
    # record (its error rows say why), not a silent loss.
    claimed: dict[str, list[str]] = {}
    for master, segs in masters.items():
        for seg in segs:
            claimed.setdefault(_local_name(directory, seg), []).append(master)
    orphans: dict[str, list[str]] = {}

    def rel(name: str) -> str:
        return (rel_dir / f"{name}.hea").as_posix()

    def add(record: RecordRef) -> None:
        found.records.append(record)
        found.owners.setdefault(record.header, []).append(record.header)

    for name in names:
        if name in masters:
            segs = [s for s in masters[name] if s != "~" and not s.endswith("_layout")]
            size, work = _sizes(directory, texts, segs)
            add(RecordRef(str(root), rel(name), group, name, "multi", name.endswith("n"), (), size, work))
        elif name.endswith("_layout") and _is_layout(_record_line(texts[name])):
            found.layouts.append(rel(name))
        elif name in claimed:
            for master in claimed[name]:
                found.owners.setdefault(rel(name), []).append(rel(master))
        elif match := SEGMENT_NAME.match(name):
            orphans.setdefault(match.group("prefix"), []).append(name)
        else:
            numerics = bool(NUMERICS_NAME.match(name)) or (name.endswith("n") and name[:-1] in texts)
            size, work = _sizes(directory, texts, [name])
            add(RecordRef(str(root), rel(name), group, name, "single", numerics, (), size, work))
    for prefix, segs in orphans.items():
        # Segments without their master (a partial copy of a record folder): one record named
        # after the master they belong to, so group/record/segment read as in the full database.
        segs = sorted(segs)
        size, work = _sizes(directory, texts, segs)
        add(RecordRef(str(root), rel(segs[0]), group, prefix, "segments", False, tuple(segs), size, work))
        for seg in segs[1:]:
            found.owners.setdefault(rel(seg), []).append(rel(segs[0]))


def _local_name(directory: Path, segment: str) -> str:
    target = Path(os.path.normpath(directory / segment))
    return target.name if target.parent == directory else segment


@dataclass
class Discovery:
    """The records under a folder, and what became of every header file there: each one is a
    record's own header, read by records (`owners`: header -> the headers of the records that
    read it, itself for a record's own), or a layout (no samples). `excluded`: numerics
    records left out by the settings."""

    records: list[RecordRef] = field(default_factory=list)
    owners: dict[str, list[str]] = field(default_factory=dict)
    layouts: list[str] = field(default_factory=list)
    excluded: list[RecordRef] = field(default_factory=list)

    @property
    def headers(self) -> int:
        return len(self.owners) + len(self.layouts)


def discover(root: str | Path, shard: str = "", include_numerics: bool = True,
             shards: Mapping[str, str] | None = None) -> Discovery:
    """Every record under `root`, in a deterministic order (group, record, header path), and
    the role of every header file (`Discovery`). `shards`: folder (relative to `root`) -> the
    macroshard it belongs to, where a work shard gathers folders of several (`shard` otherwise)."""
    root = Path(root).resolve()
    found = Discovery()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        names = sorted(f[: -len(".hea")] for f in filenames if f.endswith(".hea") and not f.startswith("."))
        if names:
            _directory_records(root, Path(dirpath), names, shard, found, shards)
    if not include_numerics:
        found.excluded = [r for r in found.records if r.is_numerics]
        found.records = [r for r in found.records if not r.is_numerics]
    found.records.sort(key=lambda r: r.sort_key)
    return found


def discover_records(root: str | Path, shard: str = "", include_numerics: bool = True) -> list[RecordRef]:
    """Every record under `root`, in a deterministic order (group, record, header path)."""
    return discover(root, shard, include_numerics).records
