"""Single-segment WFDB headers parsed the way `wfdb.rdheader` parses them, without its cost.

wfdb's own parser (`wfdb.io._header._parse_signal_lines`; its names come through `wfdb_api.py`) looks up every field of every signal
line in a pandas table (`SIGNAL_SPECS.loc`): about 3 ms per header, a fifth of the time of a
shard of small records. This is the same parse with wfdb's own regular expressions, record-line
parser and field specification, the table read once at import: same fields, same defaults,
same types (a test compares the two on every header of the corpus and of PhysioNet).

It is also stricter than wfdb, because wfdb's expressions match a prefix of each line and read
whatever follows into the next field: `-125` as a frequency becomes a counter frequency (fs
falls back to 250), `nan/mV` as a gain becomes units (gain 200), and non-ASCII bytes are
dropped (`\\xb5V` reads as `V`). Such a header is refused with the field and the reason
(`header_text`, `check_record_line`, `check_signal_line`); so is one that would make the
reader allocate without bound (the `MAX_*` limits).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

from steps.featurize.wfdb_api import (HeaderSyntaxError, SIGNAL_SPECS, float_types, int_types, parse_header_content,
                                      parse_record_line as _parse_record_line, rx_signal)

from steps.featurize.limits import MAX_SAMPLES, MAX_SIGNALS, header_text, plain_int
from steps.featurize.records import RecordError

FIELDS = tuple(SIGNAL_SPECS.index)
READ_DEFAULTS = {f: SIGNAL_SPECS.loc[f, "read_default"] for f in FIELDS}
INT_FIELDS = frozenset(f for f in FIELDS if SIGNAL_SPECS.loc[f, "allowed_types"] is int_types)
FLOAT_FIELDS = frozenset(f for f in FIELDS if SIGNAL_SPECS.loc[f, "allowed_types"] is float_types)

NUMBER = r"(?:\d+\.?\d*|\.\d+)"
RECORD_NAME = re.compile(r"[-A-Za-z0-9_]+(?:/\d+)?")
FREQUENCY = re.compile(rf"(?P<fs>{NUMBER})(?:/(?P<counter>{NUMBER})(?:\(-?{NUMBER}\))?)?")
FORMAT_SPEC = re.compile(r"\d+(?:x\d+)?(?::\d+)?(?:\+\d+)?")
GAIN_SPEC = re.compile(rf"(?P<gain>[-+]?{NUMBER}(?:[eE][-+]?\d+)?)?(?:\(-?\d+\))?(?:/\S*)?")


def _refuse(name: str, message: str, kind: str = "header_parse_error") -> RecordError:
    return RecordError(kind, f"header {name}: {message}", file=name)


def check_record_line(line: str, name: str) -> None:
    """The record line's name, signal count, frequency and length, strictly (see the module)."""
    tokens = line.split()
    if not RECORD_NAME.fullmatch(tokens[0]):
        raise _refuse(name, f"record line {line[:80]!r} does not start with a record name")
    if len(tokens) > 1 and not tokens[1].isdigit():
        raise _refuse(name, f"record line {line[:80]!r}: signal count {tokens[1][:40]!r} is not a number")
    if len(tokens) > 1 and (plain_int(tokens[1]) is None or int(tokens[1]) > MAX_SIGNALS):
        raise _refuse(name, f"declares {tokens[1][:40]} signals, more than the {MAX_SIGNALS} a record may have",
                      "limit_exceeded")
    if len(tokens) > 2:
        match = FREQUENCY.fullmatch(tokens[2])
        if match is None:
            raise _refuse(name, f"record line {line[:80]!r}: sampling frequency {tokens[2][:40]!r} is not "
                          "`fs[/counter[(base)]]` with a positive fs")
        fs = float(match["fs"])
        if not (math.isfinite(fs) and fs > 0):
            raise _refuse(name, f"sampling frequency {match['fs'][:40]} is not a positive finite number")
    if len(tokens) > 3 and tokens[3].isascii() and tokens[3].isdigit():
        if plain_int(tokens[3]) is None or int(tokens[3]) > MAX_SAMPLES:
            raise _refuse(name, f"declares {tokens[3][:40]}... samples per signal, more than {MAX_SAMPLES}",
                          "limit_exceeded")


def check_signal_line(line: str, name: str, number: int) -> None:
    """The format and gain fields of a signal line, strictly (see the module)."""
    tokens = line.split()
    if len(tokens) > 1 and not FORMAT_SPEC.fullmatch(tokens[1]):
        raise _refuse(name, f"signal line {number}: format field {tokens[1][:40]!r} is not "
                      "`format[xsamples][:skew][+offset]`")
    if len(tokens) > 2:
        match = GAIN_SPEC.fullmatch(tokens[2])
        if match is None or (match["gain"] and not math.isfinite(float(match["gain"]))):
            raise _refuse(name, f"signal line {number}: ADC gain field {tokens[2][:40]!r} is not a finite "
                          "number[(baseline)][/units]")


def _signal_fields(lines: list[str], name: str) -> dict[str, list]:
    fields: dict[str, list] = {f: [None] * len(lines) for f in FIELDS}
    for ch, line in enumerate(lines):
        match = rx_signal.match(line)
        if match is None:
            raise HeaderSyntaxError("invalid syntax in signal line")
        check_signal_line(line, name, ch + 2)
        raw = dict(zip(FIELDS, match.groups()))
        for f, text in raw.items():
            if text == "":
                value = READ_DEFAULTS[f]
                if f == "baseline" and raw["adc_zero"] != "":  # wfdb: baseline defaults to ADC zero
                    value = int(raw["adc_zero"])
            elif f in INT_FIELDS:
                value = int(text)
                if abs(value) >= 1 << 63:
                    raise _refuse(name, f"signal line {ch + 2}: {f.replace('_', ' ')} {text[:40]} does not fit "
                                  "64 bits")
            elif f in FLOAT_FIELDS:
                value = float(text) or 200.0  # wfdb: a gain of 0 means 200
            else:
                value = text
            fields[f][ch] = value
    return fields


def read_header(path: Path, root: Path | None = None) -> SimpleNamespace:
    """The fields of a single-segment header (`<path>.hea`) as `wfdb.rdheader` sets them on its
    Record. Raises RecordError for what `header_text` and the strict checks refuse, and what
    wfdb raises for a header it cannot parse."""
    header = Path(f"{path}.hea")
    lines, _ = parse_header_content(header_text(header, root))
    if not lines:
        raise HeaderSyntaxError("header has no record line")
    check_record_line(lines[0], header.name)
    record = _parse_record_line(lines[0])
    if record.pop("n_seg") is not None:
        raise HeaderSyntaxError("a multi-segment header where a segment was expected")
    signals = _signal_fields(lines[1:], header.name) if len(lines) > 1 else {f: None for f in FIELDS}
    return SimpleNamespace(**record, **signals)
