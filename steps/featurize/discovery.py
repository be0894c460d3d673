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
from pathlib import Path

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
    try:
        # latin-1 never fails to decode: a binary or corrupt header still yields a record,
        # and the worker's wfdb parse turns it into an error row.
        return path.read_text(encoding="latin-1")
    except OSError:
        return ""


def _group(rel_dir: Path, shard: str) -> str:
    """The MIMIC group of a record folder: `30` for `30/3000003`, `p00` for `p00/p000878`."""
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
        try:
            nbytes = (directory / file_name).stat().st_size
        except OSError:
            continue
        size += nbytes
        samples += int(nbytes / SAMPLE_BYTES.get(fmt, 1.0))
    return size, samples


def _sizes(directory: Path, texts: dict[str, str], names) -> tuple[int, int]:
    pairs = [_data_size(directory, texts, n) for n in names if n in texts]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def _directory_records(root: Path, directory: Path, names: list[str], shard: str) -> list[RecordRef]:
    texts = {name: read_text(directory / f"{name}.hea") for name in names}
    rel_dir = directory.relative_to(root)
    group = _group(rel_dir, shard)
    masters: dict[str, list[tuple[str, int]]] = {}
    for name in names:
        tokens = _record_line(texts[name])
        if tokens and "/" in tokens[0]:
            entries = [(t[0], int(t[1]) if len(t) > 1 and t[1].isdigit() else -1) for t in body_lines(texts[name])]
            masters[name] = entries
    # A segment named by a path that leads back into this folder (`../3000003/3000003_0002`) is
    # still the master's: claimed here, it is that master's error row, not a record of its own.
    claimed = {_local_name(directory, seg) for entries in masters.values() for seg, _ in entries}
    records: list[RecordRef] = []
    orphans: dict[str, list[str]] = {}

    def rel(name: str) -> str:
        return (rel_dir / f"{name}.hea").as_posix()

    for name in names:
        if name.endswith("_layout") or name in claimed:
            continue  # layout headers describe signals but hold no samples
        if name in masters:
            segs = [s for s, _ in masters[name] if s != "~" and not s.endswith("_layout")]
            size, work = _sizes(directory, texts, segs)
            records.append(RecordRef(str(root), rel(name), group, name, "multi", name.endswith("n"), (), size, work))
            continue
        match = SEGMENT_NAME.match(name)
        if match:
            orphans.setdefault(match.group("prefix"), []).append(name)
            continue
        numerics = bool(NUMERICS_NAME.match(name)) or (name.endswith("n") and name[:-1] in texts)
        size, work = _sizes(directory, texts, [name])
        records.append(RecordRef(str(root), rel(name), group, name, "single", numerics, (), size, work))
    for prefix, segs in orphans.items():
        # Segments without their master (a partial copy of a record folder): one record named
        # after the master they belong to, so group/record/segment read as in the full database.
        segs = sorted(segs)
        size, work = _sizes(directory, texts, segs)
        records.append(RecordRef(str(root), rel(segs[0]), group, prefix, "segments", False, tuple(segs), size, work))
    return records


def _local_name(directory: Path, segment: str) -> str:
    target = Path(os.path.normpath(directory / segment))
    return target.name if target.parent == directory else segment


def discover_records(root: str | Path, shard: str = "", include_numerics: bool = True) -> list[RecordRef]:
    """Every record under `root`, in a deterministic order (group, record, header path)."""
    root = Path(root).resolve()
    records: list[RecordRef] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        names = sorted(f[: -len(".hea")] for f in filenames if f.endswith(".hea") and not f.startswith("."))
        if names:
            records.extend(_directory_records(root, Path(dirpath), names, shard))
    if not include_numerics:
        records = [r for r in records if not r.is_numerics]
    return sorted(records, key=lambda r: r.sort_key)
