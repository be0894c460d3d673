"""What one WFDB header may ask of a worker, and its text read without trusting it.

Standard library only: discovery (in the parent) and the reader use it without wfdb.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from steps.featurize.records import RecordError

# Bounds on what one header may ask of a worker. Real headers are far below them (a MIMIC
# master of a week lists a few hundred segments in ~10 KB; records rarely have 100 signals).
MAX_HEADER_BYTES = 4 << 20
MAX_SIGNALS = 1 << 14  # each signal gets histogram bins of its own
MAX_SEGMENTS = 1 << 16
MAX_SAMPLES = 1 << 62  # a declared length past it overflows the byte arithmetic's int64

DIGITS = re.compile(r"[0-9]{1,18}")


def plain_int(token: str) -> int | None:
    """A non-negative integer of at most 18 ASCII digits, else None (`str.isdigit` accepts `²`,
    which `int` rejects, and `int` refuses more than 4,300 digits)."""
    return int(token) if DIGITS.fullmatch(token) else None


def contained(path: Path, root: Path | None) -> None:
    """Refuse a file (typically a symlink) that resolves outside the input folder `root`."""
    if root is None:
        return
    real, top = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, top]) != top:
        raise RecordError("unsafe_path", f"{path.name} resolves to {real}, outside the input folder",
                          file=path.name)


def header_text(path: Path, root: Path | None = None) -> str:
    """The text of a header file, refusing what no WFDB header is: not a regular file (a FIFO
    would block the reader), a symlink out of `root`, more than MAX_HEADER_BYTES, a NUL byte,
    non-ASCII bytes outside comment lines. Raises RecordError naming the file and the line."""
    name = path.name
    try:
        info = os.stat(path)
    except (OSError, ValueError) as err:
        raise RecordError("missing_header", f"header {name} cannot be opened: {err}", file=name) from err
    if not stat.S_ISREG(info.st_mode):
        raise RecordError("header_parse_error", f"header {name} is not a regular file", file=name)
    contained(path, root)
    with open(path, "rb") as fh:
        raw = fh.read(MAX_HEADER_BYTES + 1)  # never more, whatever st_size says (/proc files say 0)
    if len(raw) > MAX_HEADER_BYTES:
        raise RecordError("limit_exceeded", f"header {name} holds more than {MAX_HEADER_BYTES} bytes", file=name)
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise RecordError("header_parse_error", f"header {name}: NUL byte on line {line}", file=name)
    text = raw.decode("latin-1")
    if not text.isascii():
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.isascii() and not line.strip().startswith("#"):
                raise RecordError("header_parse_error", f"header {name}: non-ASCII byte(s) on line {number} "
                                  f"(WFDB headers are ASCII; wfdb would drop them): {line.strip()[:80]!r}", file=name)
    return text
