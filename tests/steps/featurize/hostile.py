"""Hostile WFDB records: each case writes one record folder and says what must come of it.

Data files are written by `wfdb.wrsamp`; the headers are then edited by hand into what a
corrupt copy, a careless writer or an attacker would leave. A case either survives (rows, as
WFDB defines the header) or is refused: error rows naming the record and the reason, never a
failed shard and never a record without rows or error rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.steps.featurize import data as gen


@dataclass(frozen=True)
class Expect:
    """What a case must yield: error rows of `kind` for `record` whose message holds `reason`
    (kind None: rows and no error row)."""

    record: str
    kind: str | None
    reason: str = ""


def good(folder: Path, name: str = "rec", n: int = 400, n_sig: int = 2) -> Path:
    """A valid format-16 record written by wfdb; returns its header."""
    return gen.write_record(folder, name, gen.signals(n, n_sig, "16", seed=3), "16")


def edit(header: Path, old: bytes, new: bytes, count: int = 1) -> None:
    raw = header.read_bytes()
    assert old in raw, (old, raw)
    header.write_bytes(raw.replace(old, new, count))


def record_line(header: Path, line: bytes) -> None:
    """Replace the record line (the first line) of a header."""
    lines = header.read_bytes().split(b"\n")
    header.write_bytes(b"\n".join([line, *lines[1:]]))


def signal_field(header: Path, index: int, value: bytes, line: int = 1) -> None:
    """Replace field `index` (0-based, whitespace-separated) of signal line `line`."""
    lines = header.read_bytes().split(b"\n")
    tokens = lines[line].split(b" ")
    tokens[index] = value
    lines[line] = b" ".join(tokens)
    header.write_bytes(b"\n".join(lines))


CASES: dict[str, Callable[[Path], Expect]] = {}


def case(fn: Callable[[Path], Expect]) -> Callable[[Path], Expect]:
    CASES[fn.__name__] = fn
    return fn


# --- bytes that are not a header's text -------------------------------------------------------

@case
def nul_in_data_file_name(d: Path) -> Expect:
    edit(good(d), b"rec.dat", b"rec\x00.dat")
    return Expect("rec", "header_parse_error", "NUL")


@case
def nul_in_record_line(d: Path) -> Expect:
    record_line(good(d), b"rec 2 125\x00 400")
    return Expect("rec", "header_parse_error", "NUL")


@case
def non_ascii_in_data_file_name(d: Path) -> Expect:
    # wfdb reads headers as ASCII ignoring other bytes: `rec\xff.dat` would become `rec.dat`.
    good(d)
    (d / "rec.dat").rename(d / "rec\xff.dat".encode("latin-1").decode("utf-8", "surrogateescape"))
    edit(d / "rec.hea", b"rec.dat", b"rec\xff.dat")
    return Expect("rec", "header_parse_error", "non-ASCII")


@case
def non_ascii_units(d: Path) -> Expect:
    # `\xb5V` (latin-1 micro) would silently read as `V`: a unit off by 10**6.
    edit(good(d), b"/mV", b"/\xb5V")
    return Expect("rec", "header_parse_error", "non-ASCII")


@case
def non_ascii_in_comment_is_fine(d: Path) -> Expect:
    header = good(d)
    header.write_bytes(header.read_bytes() + "# patient: M\u00fcller \xff\n".encode("latin-1"))
    return Expect("rec", None)


@case
def binary_garbage(d: Path) -> Expect:
    (d / "rec.hea").write_bytes(bytes(range(256)) * 4)
    return Expect("rec", "header_parse_error")


@case
def empty_header(d: Path) -> Expect:
    d.mkdir(parents=True, exist_ok=True)
    (d / "rec.hea").write_bytes(b"")
    return Expect("rec", "header_parse_error", "no record line")


@case
def comments_only(d: Path) -> Expect:
    d.mkdir(parents=True, exist_ok=True)
    (d / "rec.hea").write_bytes(b"# nothing here\n#\n")
    return Expect("rec", "header_parse_error", "no record line")


@case
def huge_header(d: Path) -> Expect:
    header = good(d)
    with open(header, "ab") as fh:  # 9 MB of comments: never read whole
        fh.write((b"#" + b"x" * 1023 + b"\n") * 9 * 1024)
    return Expect("rec", "limit_exceeded", "bytes")


# --- record line ----------------------------------------------------------------------------

@case
def negative_sampling_frequency(d: Path) -> Expect:
    # wfdb's regular expression reads `-125` as a counter frequency and fs as its default 250.
    record_line(good(d), b"rec 2 -125 400")
    return Expect("rec", "header_parse_error", "sampling frequency")


@case
def zero_sampling_frequency(d: Path) -> Expect:
    record_line(good(d), b"rec 2 0 400")
    return Expect("rec", "header_parse_error", "sampling frequency")


@case
def infinite_sampling_frequency(d: Path) -> Expect:
    record_line(good(d), b"rec 2 " + b"9" * 400 + b" 400")
    return Expect("rec", "header_parse_error", "sampling frequency")


@case
def exponent_sampling_frequency(d: Path) -> Expect:
    # `1e3` is no WFDB frequency: wfdb would read fs 1, then drop the length silently.
    record_line(good(d), b"rec 2 1e3 400")
    return Expect("rec", "header_parse_error", "record line")


@case
def signal_count_absurd(d: Path) -> Expect:
    record_line(good(d), b"rec 99999999999999999999 125 400")
    return Expect("rec", "limit_exceeded", "signals")


@case
def signal_count_over_limit(d: Path) -> Expect:
    # 20,000 real signal lines (each with its own histogram): refused before any is counted.
    lines = [b"rec 20000 125 1"] + [b"rec.dat 16 200/mV 16 0 0 0 0 S%d" % i for i in range(20000)]
    d.mkdir(parents=True, exist_ok=True)
    (d / "rec.hea").write_bytes(b"\n".join(lines) + b"\n")
    (d / "rec.dat").write_bytes(bytes(40000))
    return Expect("rec", "limit_exceeded", "signals")


@case
def length_absurd(d: Path) -> Expect:
    record_line(good(d), b"rec 2 125 999999999999999999")
    return Expect("rec", "truncated_data_file")


@case
def length_beyond_int64(d: Path) -> Expect:
    record_line(good(d), b"rec 2 125 " + b"9" * 40)
    return Expect("rec", "limit_exceeded", "samples")


@case
def digits_beyond_python_limit(d: Path) -> Expect:
    record_line(good(d), b"rec 2 125 " + b"9" * 5000)
    return Expect("rec", "limit_exceeded", "samples")


# --- signal lines ---------------------------------------------------------------------------

@case
def nan_gain(d: Path) -> Expect:
    # wfdb would take `nan` for units and the gain for its default 200.
    signal_field(good(d), 2, b"nan/mV")
    return Expect("rec", "header_parse_error", "gain")


@case
def infinite_gain(d: Path) -> Expect:
    signal_field(good(d), 2, b"1e999/mV")
    return Expect("rec", "header_parse_error", "gain")


@case
def zero_gain_means_200(d: Path) -> Expect:
    signal_field(good(d), 2, b"0/mV")  # WFDB: a zero gain is the default, 200
    return Expect("rec", None)


@case
def format_with_trailing_garbage(d: Path) -> Expect:
    signal_field(good(d), 1, b"16abc")
    return Expect("rec", "header_parse_error", "format")


@case
def unknown_format(d: Path) -> Expect:
    signal_field(good(d), 1, b"999")
    return Expect("rec", "unknown_format")


@case
def samples_per_frame_absurd(d: Path) -> Expect:
    signal_field(good(d), 1, b"16x999999999")
    return Expect("rec", "limit_exceeded", "samples per frame")


@case
def byte_offset_absurd(d: Path) -> Expect:
    signal_field(good(d), 1, b"16+99999999999999")
    return Expect("rec", "truncated_data_file")


@case
def skew_past_the_end(d: Path) -> Expect:
    # Valid WFDB: every sample of the skewed signal lies past the end (all invalid).
    signal_field(good(d), 1, b"16:99999999999")
    return Expect("rec", None)


@case
def initial_value_beyond_int64(d: Path) -> Expect:
    signal_field(good(d), 5, b"9" * 30)
    return Expect("rec", "header_parse_error", "does not fit")


@case
def data_file_outside_folder(d: Path) -> Expect:
    good(d)
    edit(d / "rec.hea", b"rec.dat", b"../rec.dat", 2)
    return Expect("rec", "header_parse_error")


@case
def data_file_symlink_outside_root(d: Path) -> Expect:
    good(d)
    outside = d.parent.parent.parent / "outside-secret.dat"
    outside.write_bytes((d / "rec.dat").read_bytes())
    (d / "rec.dat").unlink()
    (d / "rec.dat").symlink_to(outside)
    return Expect("rec", "unsafe_path", "outside")


@case
def header_symlink_outside_root(d: Path) -> Expect:
    good(d)
    outside = d.parent.parent.parent / "outside-secret.hea"
    outside.write_bytes((d / "rec.hea").read_bytes())
    (d / "rec.hea").unlink()
    (d / "rec.hea").symlink_to(outside)
    return Expect("rec", "unsafe_path", "outside")


@case
def header_is_a_fifo(d: Path) -> Expect:
    d.mkdir(parents=True, exist_ok=True)
    os.mkfifo(d / "rec.hea")  # reading it would block forever
    return Expect("rec", "header_parse_error", "regular file")


@case
def data_file_is_a_fifo(d: Path) -> Expect:
    good(d)
    (d / "rec.dat").unlink()
    os.mkfifo(d / "rec.dat")
    return Expect("rec", "missing_data_file", "regular file")


@case
def missing_data_file(d: Path) -> Expect:
    good(d)
    (d / "rec.dat").unlink()
    return Expect("rec", "missing_data_file")


@case
def empty_data_file(d: Path) -> Expect:
    good(d)
    (d / "rec.dat").write_bytes(b"")
    return Expect("rec", "truncated_data_file")


@case
def layout_name_with_samples(d: Path) -> Expect:
    # A record named like a layout still holds samples: read, not skipped as a layout.
    good(d, "rec_layout")
    return Expect("rec_layout", None)


# --- multi-segment masters ------------------------------------------------------------------

@case
def master_lists_itself(d: Path) -> Expect:
    good(d, "rec_0001")
    gen.write_master(d, "rec", 125, 2, [("rec_0001", 400), ("rec", 400)])
    return Expect("rec", "header_parse_error", "multi-segment")


@case
def masters_name_each_other(d: Path) -> Expect:
    d.mkdir(parents=True, exist_ok=True)
    gen.write_master(d, "reca", 125, 2, [("recb", 400)])
    gen.write_master(d, "recb", 125, 2, [("reca", 400)])
    return Expect("reca", "header_parse_error", "multi-segment")


@case
def nested_master(d: Path) -> Expect:
    # A master naming another master: nested layouts are not WFDB. The inner master is still
    # its own record (its segment reads); the outer one gets the error row.
    good(d, "inner_0001")
    gen.write_master(d, "inner", 125, 2, [("inner_0001", 400)])
    gen.write_master(d, "outer", 125, 2, [("inner", 400)])
    return Expect("outer", "header_parse_error", "multi-segment")


@case
def duplicated_segment(d: Path) -> Expect:
    good(d, "rec_0001")
    gen.write_master(d, "rec", 125, 2, [("rec_0001", 400), ("rec_0001", 400)])
    return Expect("rec", "header_parse_error", "listed twice")


@case
def segment_escaping_folder(d: Path) -> Expect:
    good(d, "rec_0001")
    gen.write_master(d, "rec", 125, 2, [("rec_0001", 400), ("../../etc/passwd", 400)])
    return Expect("rec", "header_parse_error", "path")


@case
def segment_length_unicode_digit(d: Path) -> Expect:
    # `\xb2` (superscript two) is a digit to str.isdigit but not to int().
    good(d, "rec_0001")
    master = gen.write_master(d, "rec", 125, 2, [("rec_0001", 400), ("rec_0002", 9)])
    edit(master, b"rec_0002 9", b"rec_0002 \xb2")
    return Expect("rec", "header_parse_error", "rec_0002")


@case
def segment_length_huge_digits(d: Path) -> Expect:
    good(d, "rec_0001")
    master = gen.write_master(d, "rec", 125, 2, [("rec_0001", 400), ("rec_0002", 9)])
    edit(master, b"rec_0002 9", b"rec_0002 " + b"9" * 5000)
    return Expect("rec", "header_parse_error", "rec_0002")


@case
def segment_with_nul(d: Path) -> Expect:
    good(d, "rec_0001")
    master = gen.write_master(d, "rec", 125, 2, [("rec_0001", 400), ("rec_0002", 9)])
    edit(master, b"rec_0002 9", b"rec\x00_0002 9")
    return Expect("rec", "header_parse_error", "NUL")


@case
def segments_over_limit(d: Path) -> Expect:
    d.mkdir(parents=True, exist_ok=True)
    gen.write_master(d, "rec", 125, 2, [(f"rec_{i:06d}", 1) for i in range(70000)])
    return Expect("rec", "limit_exceeded", "segments")


@case
def segment_with_negative_frequency(d: Path) -> Expect:
    seg = good(d, "rec_0001")
    record_line(seg, b"rec_0001 2 -125 400")
    gen.write_master(d, "rec", 125, 2, [("rec_0001", 400)])
    return Expect("rec", "header_parse_error", "sampling frequency")
