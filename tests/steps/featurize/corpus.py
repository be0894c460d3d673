"""A generated corpus of WFDB records in every storage format, and every breakage featurize meets.

`wfdb.wrsamp` writes formats 80, 16, 24, 32 and FLAC (508, 516, 524). It cannot write 8, 61,
160, 212, 310 or 311, nor skew or byte offsets, so `encode` below packs those by the rules of
signal(5), and `write_header` writes the header lines by hand; `check_round_trip` reads every
such record back with `wfdb.rdrecord` and compares with the digital values that were encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb

BITS = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12, "310": 10, "311": 10,
        "508": 8, "516": 16, "524": 24}


def nan_code(fmt: str) -> int | None:
    return None if fmt == "8" else -(1 << (BITS[fmt] - 1))


def digital(n: int, fmt: str, seed: int, nan_runs: int = 2) -> np.ndarray:
    """A signal within the format's range (a sine plus noise), with runs of the NaN code."""
    rng = np.random.default_rng(seed)
    top = (1 << (BITS[fmt] - 1)) - 1
    amp = 100 if fmt == "8" else top
    x = np.sin(np.arange(n) / (5.0 + seed % 7)) * amp * 0.6 + rng.integers(-amp // 5, amp // 5 + 1, n)
    x = np.clip(x.astype(np.int64), -top, top)
    if fmt == "8":  # first differences must fit in one signed byte
        x = np.clip(np.cumsum(np.clip(np.diff(x, prepend=0), -127, 127)), -(2**20), 2**20)
    code = nan_code(fmt)
    for _ in range(nan_runs if code is not None else 0):
        start = int(rng.integers(0, max(1, n - 10)))
        x[start : start + int(rng.integers(1, 10))] = code
    return x


# ------------------------------------------------------------------------------ encoders

def _pack(fmt: str, flat: np.ndarray) -> bytes:
    u = flat.astype(np.int64)
    if fmt == "80":
        return (u + 128).astype(np.uint8).tobytes()
    if fmt == "160":
        return (u + 32768).astype("<u2").tobytes()
    if fmt == "16":
        return u.astype("<i2").tobytes()
    if fmt == "61":
        return u.astype(">i2").tobytes()
    if fmt == "32":
        return u.astype("<i4").tobytes()
    if fmt == "24":
        return (u & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    if fmt == "8":
        return u.astype(np.int8).tobytes()
    bits = BITS[fmt]
    u = u & ((1 << bits) - 1)
    group = 2 if fmt == "212" else 3
    n = u.size
    u = np.concatenate([u, np.zeros((-n) % group, np.int64)]).reshape(-1, group)
    if fmt == "212":
        a, b = u[:, 0], u[:, 1]
        out = np.stack([a & 0xFF, ((a >> 8) & 0x0F) | ((b >> 8) << 4), b & 0xFF], axis=1)
        nbytes = -(-n * 3 // 2)
    elif fmt == "310":
        a, b, c = u[:, 0], u[:, 1], u[:, 2]
        w0, w1 = (a << 1) | ((c & 0x1F) << 11), (b << 1) | ((c >> 5) << 11)
        out = np.stack([w0 & 0xFF, w0 >> 8, w1 & 0xFF, w1 >> 8], axis=1)
        nbytes = (n // 3) * 4 + {0: 0, 1: 2, 2: 4}[n % 3]
    else:  # 311
        w = u[:, 0] | (u[:, 1] << 10) | (u[:, 2] << 20)
        out = np.stack([w & 0xFF, (w >> 8) & 0xFF, (w >> 16) & 0xFF, w >> 24], axis=1)
        nbytes = (n // 3) * 4 + {0: 0, 1: 2, 2: 3}[n % 3]
    return out.astype(np.uint8).reshape(-1)[:nbytes].tobytes()


def encode(fmt: str, signals: list[np.ndarray], spf: list[int], init: list[int] | None = None) -> bytes:
    """The bytes of one data file holding `signals` (signal c has spf[c] samples per frame)."""
    n_frames = len(signals[0]) // spf[0]
    columns = []
    for c, (x, k) in enumerate(zip(signals, spf)):
        x = np.asarray(x, np.int64)
        if fmt == "8":  # differences from the header's initial value
            x = np.diff(x, prepend=(init or [0] * len(signals))[c])
        columns.append(x.reshape(n_frames, k))
    return _pack(fmt, np.concatenate(columns, axis=1).reshape(-1))


# ------------------------------------------------------------------------------ headers

@dataclass
class Signal:
    name: str
    fmt: str
    d: np.ndarray  # digital samples, in time order (len = frames * spf)
    file: str = ""
    spf: int = 1
    skew: int = 0
    offset: int = 0
    gain: float = 200.0
    baseline: int = 0
    units: str = "mV"


@dataclass
class Case:
    """One generated record: its folder, name, and what reading it must give."""

    folder: Path
    name: str
    signals: list[Signal] = field(default_factory=list)
    kind: str = ""  # expected error kind of the segment, empty when it must read
    reference: str = ""  # record wfdb reads for the expected values (default: this one)


def signal_line(s: Signal, init: int, checksum: int) -> str:
    fmt = s.fmt + (f"x{s.spf}" if s.spf != 1 else "") + (f":{s.skew}" if s.skew else "") + (
        f"+{s.offset}" if s.offset else "")
    return f"{s.file} {fmt} {s.gain:g}({s.baseline})/{s.units} {BITS[s.fmt]} 0 {init} {checksum} 0 {s.name}"


def stored_checksum(d: np.ndarray) -> int:
    return int((int(np.asarray(d, np.int64).sum()) + 32768) % 65536 - 32768)


def write_record(folder: Path, name: str, signals: list[Signal], fs: float = 250.0, length: bool = True,
                 stored: dict[str, np.ndarray] | None = None, prefix: dict[str, bytes] | None = None) -> Case:
    """Data files and a hand-written header. Signals sharing `file` go in one file, in order.
    `stored` overrides a signal's column as stored (skew: the file holds the shifted column)."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = stored or {}
    files: dict[str, list[Signal]] = {}
    for s in signals:
        s.file = s.file or f"{name}.dat"
        files.setdefault(s.file, []).append(s)
    for file, group in files.items():
        cols = [stored.get(s.name, s.d) for s in group]
        init = [int(c[0]) for c in cols] if group[0].fmt == "8" else None
        data = encode(group[0].fmt, cols, [s.spf for s in group], init)
        (folder / file).write_bytes((prefix or {}).get(file, b"") + data)
    frames = len(signals[0].d) // signals[0].spf
    lines = [f"{name} {len(signals)} {fs:g}" + (f" {frames}" if length else "")]
    for s in signals:
        col = stored.get(s.name, s.d)
        lines.append(signal_line(s, int(col[0]), stored_checksum(col)))
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return Case(folder, name, signals)


def wrsamp_record(folder: Path, name: str, fmt: str, n: int, n_sig: int, seed: int) -> Case:
    folder.mkdir(parents=True, exist_ok=True)
    d = np.stack([digital(n, fmt, seed + c) for c in range(n_sig)], axis=1)
    gains = [100.0 + 13 * c for c in range(n_sig)]
    wfdb.wrsamp(name, fs=125, units=["mV"] * n_sig, sig_name=[f"S{c}" for c in range(n_sig)], d_signal=d,
                fmt=[fmt] * n_sig, adc_gain=gains, baseline=[5 * c for c in range(n_sig)], write_dir=str(folder))
    return Case(folder, name, [Signal(f"S{c}", fmt, d[:, c], gain=gains[c], baseline=5 * c) for c in range(n_sig)])


def expected_physical(s: Signal) -> np.ndarray:
    """The signal in physical units as wfdb converts it (NaN where the NaN code is stored)."""
    d = np.asarray(s.d, np.int64)
    p = (d.astype(np.float64) - s.baseline) / (s.gain or 200.0)
    code = nan_code(s.fmt)
    if code is not None:
        p[d == code] = np.nan
    return p


def check_round_trip(case: Case) -> None:
    """What wfdb reads (whole record) is what was encoded: the encoders are right. Physical
    units, because wfdb 4.3.1's digital read of format 61 fails on its big-endian dtype."""
    rec = wfdb.rdrecord(str(case.folder / (case.reference or case.name)), physical=True, smooth_frames=False)
    for c, s in enumerate(case.signals):
        np.testing.assert_allclose(rec.e_p_signal[c], expected_physical(s), rtol=1e-12,
                                   err_msg=f"{case.name} {s.name} format {s.fmt}")


# ------------------------------------------------------------------------------ the corpus

PLAIN = ("8", "61", "160", "212", "310", "311")
WRSAMP = ("80", "16", "24", "32", "508", "516", "524")


def plain_records(root: Path) -> list[Case]:
    """One record per format written by the encoders here; odd lengths test partial blocks."""
    cases = []
    for i, fmt in enumerate(PLAIN):
        n = 2501 + i
        sigs = [Signal(f"S{c}", fmt, digital(n, fmt, 10 * i + c), gain=50.0 + 7 * c, baseline=c - 1) for c in range(3)]
        if fmt == "61":
            sigs[1].gain = -sigs[1].gain  # a negative gain reverses the physical order
        cases.append(write_record(root / f"plain{fmt}", f"p{fmt}", sigs))
    return cases


def wrsamp_records(root: Path) -> list[Case]:
    return [wrsamp_record(root / f"wrsamp{fmt}", f"w{fmt}", fmt, 3001 + i, 2, 100 + i) for i, fmt in enumerate(WRSAMP)]


def ten_format_record(root: Path) -> Case:
    """One record, ten data files, one format each: every signal reads its own way."""
    fmts = ("8", "16", "24", "32", "61", "80", "160", "212", "310", "311")
    sigs = [Signal(f"F{fmt}", fmt, digital(1800, fmt, 200 + i), file=f"ten_{fmt}.dat", gain=100.0 + i)
            for i, fmt in enumerate(fmts)]
    return write_record(root / "ten", "ten", sigs)


def skewed_record(root: Path) -> Case:
    """Skews 0, 4, 4 in one file and 7 in another: each file stores a skewed column shifted
    later; the checksum is over the column as stored. (wfdb 4.3.1 reads skew only when every
    skewed signal of a file has the file's largest skew; other layouts make it raise.)"""
    n = 1000
    layout = (("K0", 0, "skew_a.dat"), ("K1", 4, "skew_a.dat"), ("K2", 4, "skew_a.dat"), ("K3", 7, "skew_b.dat"))
    sigs = [Signal(name, "16", digital(n, "16", 300 + c, nan_runs=1), skew=skew, file=file, gain=80.0)
            for c, (name, skew, file) in enumerate(layout)]
    stored = {}
    for s in sigs:
        # The file holds sample t at frame t + skew; the frames before it hold other values.
        stored[s.name] = np.concatenate([np.full(s.skew, 11, np.int64), s.d[: n - s.skew]])
        s.d = np.concatenate([s.d[: n - s.skew], np.full(s.skew, nan_code("16"), np.int64)])
    return write_record(root / "skew", "skew", sigs, stored=stored)


def offset_record(root: Path) -> Case:
    """Byte offsets: a 212 file and a 16 file, each after a prefix of other bytes."""
    sigs = [Signal("A", "212", digital(1501, "212", 400), file="off_a.dat", offset=37),
            Signal("B", "212", digital(1501, "212", 401), file="off_a.dat", offset=37),
            Signal("C", "16", digital(1501, "16", 402), file="off_c.dat", offset=512)]
    return write_record(root / "offset", "offset", sigs, prefix={"off_a.dat": bytes(range(37)),
                                                                  "off_c.dat": b"\xff" * 512})


def multi_frequency_records(root: Path) -> list[Case]:
    """Samples per frame 2, 1, 3 in one file, in three formats (212 also with an odd frame count)."""
    cases = []
    for fmt in ("212", "16", "8", "311"):
        frames = 701
        sigs = [Signal(f"M{k}", fmt, digital(frames * k, fmt, 500 + k), spf=k, gain=20.0 * k) for k in (2, 1, 3)]
        cases.append(write_record(root / f"multi{fmt}", f"m{fmt}", sigs))
    return cases


def no_length_records(root: Path) -> list[Case]:
    """Headers without a sample count: as many frames as the data file holds."""
    cases = []
    for fmt in ("8", "16", "24", "32", "61", "212", "310", "311"):
        sigs = [Signal(f"N{c}", fmt, digital(999, fmt, 600 + c)) for c in range(2)]
        cases.append(write_record(root / f"nolen{fmt}", f"n{fmt}", sigs, length=False))
    multi = [Signal("NM2", "16", digital(800, "16", 650), spf=2), Signal("NM1", "16", digital(400, "16", 651))]
    cases.append(write_record(root / "nolenmulti", "nmulti", multi, length=False))
    return cases


def flac_without_length(root: Path) -> Case:
    """A FLAC record whose header gives no length (wfdb itself cannot read it: its rule
    divides the file size by the bytes per sample, which FLAC does not have)."""
    case = wrsamp_record(root / "flacnolen", "fnolen", "516", 2222, 2, 700)
    reference = case.folder / "fnolen_ref.hea"
    hea = case.folder / "fnolen.hea"
    reference.write_text(hea.read_text().replace("fnolen ", "fnolen_ref ", 1))
    lines = hea.read_text().splitlines()
    lines[0] = " ".join(lines[0].split()[:3])
    hea.write_text("\n".join(lines) + "\n")
    case.reference = "fnolen_ref"
    return case


def long_format8(root: Path, frames: int = 30000) -> Case:
    """Longer than the small window: format 8 must carry each signal's value across windows."""
    sigs = [Signal(f"D{c}", "8", digital(frames, "8", 800 + c), gain=10.0) for c in range(2)]
    return write_record(root / "long8", "long8", sigs)


def wide_record(root: Path) -> Case:
    """Formats 24 and 32 with thousands of distinct values and an outlier: the range counters
    coarsen to buckets (with a small budget) and the percentiles are searched exactly."""
    rng = np.random.default_rng(900)
    a = rng.integers(-(2**22), 2**22, 6000)
    a[17] = 2**23 - 1
    b = (rng.standard_normal(6000) * 2**24).astype(np.int64)
    b[5] = -(2**31) + 1
    # A tenth of the samples at the minimum and NaN runs: p05 sits in the lowest bucket, next
    # to the NaN code, which must never be counted.
    c = rng.integers(-(2**23) + 1, 2**23, 6000)
    c[rng.choice(6000, 600, replace=False)] = -(2**23) + 1
    c[100:140] = c[3000:3013] = nan_code("24")
    return write_record(root / "wide", "wide", [Signal("W24", "24", a, file="wide24.dat", gain=1000.0),
                                                Signal("W32", "32", b, file="wide32.dat", gain=-3e5, baseline=17),
                                                Signal("W24n", "24", c, file="wide24n.dat", gain=7.0)])


def valid_corpus(root: Path) -> list[Case]:
    return (plain_records(root) + wrsamp_records(root) + [ten_format_record(root), skewed_record(root),
            offset_record(root)] + multi_frequency_records(root) + no_length_records(root)
            + [flac_without_length(root), long_format8(root), wide_record(root)])


# ------------------------------------------------------------------------------ breakages

def master(folder: Path, name: str, entries: list[tuple[str, int]], fs: float = 250.0) -> Path:
    total = sum(length for _, length in entries)
    lines = [f"{name}/{len(entries)} 2 {fs:g} {total}"] + [f"{seg} {length}" for seg, length in entries]
    path = folder / f"{name}.hea"
    path.write_text("\n".join(lines) + "\n")
    return path


def broken_master(root: Path, bad: str, n_good: int = 17) -> tuple[Path, list[str], str]:
    """A multi-segment record of `n_good` good segments plus one broken as `bad` says; returns
    (folder, good segment names, the bad segment's name)."""
    folder = root / f"master_{bad}" / "3900001"
    good = []
    for i in range(1, n_good + 1):
        name = f"3900001_{i:04d}"
        sigs = [Signal("II", "80", digital(300, "80", i)), Signal("V", "80", digital(300, "80", 50 + i))]
        write_record(folder, name, sigs)
        good.append(name)
    bad_name = f"3900001_{n_good + 1:04d}"
    entries = [(g, 300) for g in good[: n_good // 2]] + [(bad_name, 300)] + [(g, 300) for g in good[n_good // 2 :]]
    write_record(folder, bad_name, [Signal("II", "80", digital(300, "80", 99)), Signal("V", "80", digital(300, "80", 98))])
    hea, dat = folder / f"{bad_name}.hea", folder / f"{bad_name}.dat"
    if bad == "more_signals":  # the record line declares three signals, two are listed
        lines = hea.read_text().splitlines()
        lines[0] = lines[0].replace(" 2 ", " 3 ", 1)
        hea.write_text("\n".join(lines) + "\n")
    elif bad == "outside":  # the master names it by a path out of the folder and back
        entries = [(f"../3900001/{n}" if n == bad_name else n, length) for n, length in entries]
    elif bad == "directory":  # its data file is a folder
        dat.unlink()
        dat.mkdir()
    elif bad == "garbage":
        dat.write_bytes(b"")
        hea.write_bytes(b"\x00\xff garbage\n")
    master(folder, "3900001", entries)
    return folder, good, bad_name
