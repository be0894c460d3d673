"""Single-segment WFDB headers parsed the way `wfdb.rdheader` parses them, without its cost.

wfdb's own parser (`wfdb.io._header._parse_signal_lines`; its names come through `wfdb_api.py`) looks up every field of every signal
line in a pandas table (`SIGNAL_SPECS.loc`): about 3 ms per header, a fifth of the time of a
shard of small records. This is the same parse with wfdb's own regular expressions, record-line
parser and field specification, the table read once at import: same fields, same defaults,
same types (a test compares the two on every header of the corpus and of PhysioNet).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from steps.featurize.wfdb_api import (HeaderSyntaxError, SIGNAL_SPECS, float_types, int_types, parse_header_content,
                                      parse_record_line as _parse_record_line, rx_signal)

FIELDS = tuple(SIGNAL_SPECS.index)
READ_DEFAULTS = {f: SIGNAL_SPECS.loc[f, "read_default"] for f in FIELDS}
INT_FIELDS = frozenset(f for f in FIELDS if SIGNAL_SPECS.loc[f, "allowed_types"] is int_types)
FLOAT_FIELDS = frozenset(f for f in FIELDS if SIGNAL_SPECS.loc[f, "allowed_types"] is float_types)


def _signal_fields(lines: list[str]) -> dict[str, list]:
    fields: dict[str, list] = {f: [None] * len(lines) for f in FIELDS}
    for ch, line in enumerate(lines):
        match = rx_signal.match(line)
        if match is None:
            raise HeaderSyntaxError("invalid syntax in signal line")
        raw = dict(zip(FIELDS, match.groups()))
        for f, text in raw.items():
            if text == "":
                value = READ_DEFAULTS[f]
                if f == "baseline" and raw["adc_zero"] != "":  # wfdb: baseline defaults to ADC zero
                    value = int(raw["adc_zero"])
            elif f in INT_FIELDS:
                value = int(text)
            elif f in FLOAT_FIELDS:
                value = float(text) or 200.0  # wfdb: a gain of 0 means 200
            else:
                value = text
            fields[f][ch] = value
    return fields


def read_header(path: Path) -> SimpleNamespace:
    """The fields of a single-segment header (`<path>.hea`) as `wfdb.rdheader` sets them on its
    Record. Raises what wfdb raises for a header it cannot parse."""
    text = Path(f"{path}.hea").read_text(encoding="ascii", errors="ignore")
    lines, _ = parse_header_content(text)
    if not lines:
        raise HeaderSyntaxError("header has no record line")
    record = _parse_record_line(lines[0])
    if record.pop("n_seg") is not None:
        raise HeaderSyntaxError("a multi-segment header where a segment was expected")
    signals = _signal_fields(lines[1:]) if len(lines) > 1 else {f: None for f in FIELDS}
    return SimpleNamespace(**record, **signals)
