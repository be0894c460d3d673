"""One value of a feature row <-> one typed cell of a cache entry: exactly, or not at all.

A feature function's rows reach features.parquet through pandas' and Arrow's type inference
over every record of the shard, so a cached row must come back as the very same Python or
numpy type and value (an int is no float, NaN stays NaN, a timestamp keeps its unit and time
zone) for a cached run to write the bytes an uncached one writes. A cell is a tag naming the
type plus the slot that holds the value; nothing here calls anything a stored byte names but
these constructors, and a time zone is looked up by its name in pytz's or zoneinfo's database.
`encode` raises `Unstorable` for what it cannot give back (a list, a Decimal, an object): such a
folder is simply not cached; `same` is the exactness check run on every entry before it is written.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

INT64 = (-(2**63), 2**63 - 1)
EPOCH = dt.datetime(1970, 1, 1)
MICROSECOND = dt.timedelta(microseconds=1)
# numpy datetime64/timedelta64 dtypes (`<M8[ns]`, `<m8[25s]`): checked before numpy parses them.
TIME_DTYPE = re.compile(r"^[<>=]?[mM]8(\[\d*[a-zA-Z]+\])?$")


class Unstorable(ValueError):
    """A value the cache cannot give back exactly: its folder is featurized every run instead."""


class Cell(NamedTuple):
    """The stored form of one value: `tag` names its type; one slot (or none) holds it."""

    tag: str
    i: int | None = None  # ints, bools, instants (since 1970 in the value's unit), ordinals
    f: float | None = None  # floats of every width (float16 and float32 are exact in float64)
    s: str | None = None  # strings, ints beyond int64, numpy time dtypes and pandas units
    b: bytes | None = None
    tz: str | None = None  # a time zone: utc, fixed:<microseconds>[:<name>], pytz:<zone>, zoneinfo:<key>


NUMPY_SCALARS = {t: "np." + np.dtype(t).name for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64)}
NUMPY_BY_TAG = {tag: t for t, tag in NUMPY_SCALARS.items()}


def _int_cell(tag: str, value: int) -> Cell:
    # Beyond int64 (Python ints, uint64): the decimal string.
    return Cell(tag, i=value) if INT64[0] <= value <= INT64[1] else Cell(tag, s=str(value))


def _int_of(cell: Cell) -> int:
    return int(cell.s) if cell.i is None else cell.i


def tz_spec(tz: dt.tzinfo | None) -> str:
    """The name of a time zone that `tz_of` gives back as the same kind of object."""
    if tz is None:
        return ""
    if tz is dt.timezone.utc:
        return "utc"
    if type(tz) is dt.timezone:
        offset = tz.utcoffset(None)
        name = tz.tzname(None)
        spec = f"fixed:{offset // MICROSECOND}"
        return spec if name == dt.timezone(offset).tzname(None) else f"{spec}:{name}"
    import zoneinfo

    if type(tz) is zoneinfo.ZoneInfo and tz.key:
        return f"zoneinfo:{tz.key}"
    if type(tz).__module__.startswith("pytz") and getattr(tz, "zone", None):
        return f"pytz:{tz.zone}"
    raise Unstorable(f"time zone {tz!r} of type {type(tz).__name__}")


def tz_of(spec: str) -> dt.tzinfo | None:
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    if kind == "utc":
        return dt.timezone.utc
    if kind == "fixed":
        micros, _, name = rest.partition(":")
        offset = dt.timedelta(microseconds=int(micros))
        return dt.timezone(offset, name) if name else dt.timezone(offset)
    if kind == "zoneinfo":
        import zoneinfo

        return zoneinfo.ZoneInfo(rest)  # refuses paths: only keys of the tz database
    if kind == "pytz":
        import pytz

        return pytz.timezone(rest)  # only names in pytz's own list
    raise ValueError(f"unknown time zone kind {kind!r}")


def _datetime_cell(value: dt.datetime) -> Cell:
    if value.tzinfo is None:
        return Cell("datetime", i=(value - EPOCH) // MICROSECOND)
    utc = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return Cell("datetime", i=(utc - EPOCH) // MICROSECOND, tz=tz_spec(value.tzinfo))


def _datetime_of(cell: Cell) -> dt.datetime:
    wall = EPOCH + cell.i * MICROSECOND
    tz = tz_of(cell.tz or "")
    if tz is None:
        return wall
    if hasattr(tz, "localize"):  # pytz: its own fromutc picks the offset in force at that instant
        return tz.fromutc(wall.replace(tzinfo=tz))
    return wall.replace(tzinfo=dt.timezone.utc).astimezone(tz)


def _numpy_time_cell(value: np.datetime64 | np.timedelta64) -> Cell:
    return Cell("np.time", i=int(value.view(np.int64)), s=value.dtype.str)


def _numpy_time_of(cell: Cell) -> Any:
    if not TIME_DTYPE.match(cell.s or ""):
        raise ValueError(f"not a numpy time dtype: {cell.s!r}")
    return np.array([cell.i], dtype=np.int64).view(np.dtype(cell.s))[0]


def _timestamp_cell(value: pd.Timestamp) -> Cell:
    # The instant in the value's own unit (UTC when it has a time zone): the unit decides the
    # column type pandas infers, so it is kept.
    return Cell("pd.Timestamp", i=int(value.to_datetime64().view(np.int64)), s=value.unit, tz=tz_spec(value.tzinfo))


def _timestamp_of(cell: Cell) -> pd.Timestamp:
    naive = pd.Timestamp(np.datetime64(cell.i, _unit(cell.s)))
    tz = tz_of(cell.tz or "")
    return naive if tz is None else naive.tz_localize("UTC").tz_convert(tz)


def _unit(unit: str | None) -> str:
    if unit not in ("s", "ms", "us", "ns"):
        raise ValueError(f"not a pandas time unit: {unit!r}")
    return unit


def encode(value: Any) -> Cell:
    """The cell of one value; Unstorable for a value of a type the cache does not hold."""
    kind = type(value)
    if value is None:
        return Cell("none")
    if kind is bool:
        return Cell("bool", i=int(value))
    if kind is int:
        return _int_cell("int", value)
    if kind is float:
        return Cell("float", f=value)
    if kind is str:
        return Cell("str", s=value)
    if kind is bytes:
        return Cell("bytes", b=value)
    if kind in NUMPY_SCALARS:
        tag = NUMPY_SCALARS[kind]
        if value.dtype.kind == "f":
            return Cell(tag, f=float(value))
        return _int_cell(tag, int(value))
    if kind is np.str_:
        return Cell("np.str_", s=str(value))
    if kind in (np.datetime64, np.timedelta64):
        return _numpy_time_cell(value)
    if value is pd.NaT:
        return Cell("pd.NaT")
    if value is pd.NA:
        return Cell("pd.NA")
    if kind is pd.Timestamp:
        return _timestamp_cell(value)
    if kind is pd.Timedelta:
        return Cell("pd.Timedelta", i=int(value.to_timedelta64().view(np.int64)), s=value.unit)
    if kind is dt.datetime:
        return _datetime_cell(value)
    if kind is dt.date:
        return Cell("date", i=value.toordinal())
    if kind is dt.timedelta:
        return Cell("timedelta", i=value // MICROSECOND)
    raise Unstorable(f"a value of type {kind.__module__}.{kind.__qualname__}")


DECODERS = {
    "none": lambda c: None,
    "bool": lambda c: bool(c.i),
    "int": _int_of,
    "float": lambda c: float(c.f),
    "str": lambda c: str(c.s),
    "bytes": lambda c: bytes(c.b),
    "np.str_": lambda c: np.str_(c.s),
    "np.time": _numpy_time_of,
    "pd.NaT": lambda c: pd.NaT,
    "pd.NA": lambda c: pd.NA,
    "pd.Timestamp": _timestamp_of,
    "pd.Timedelta": lambda c: pd.Timedelta(np.timedelta64(c.i, _unit(c.s))),
    "datetime": _datetime_of,
    "date": lambda c: dt.date.fromordinal(c.i),
    "timedelta": lambda c: c.i * MICROSECOND,
    **{tag: (lambda t: lambda c: t(c.f) if np.dtype(t).kind == "f" else t(_int_of(c)))(t)
       for tag, t in NUMPY_BY_TAG.items()},
}


def decode(cell: Cell) -> Any:
    """The value of a cell; ValueError (or TypeError) for a cell no `encode` made."""
    decoder = DECODERS.get(cell.tag)
    if decoder is None:
        raise ValueError(f"unknown cell tag {cell.tag!r}")
    return decoder(cell)


def same(a: Any, b: Any) -> bool:
    """Whether `b` is `a` as far as any output can tell: type, value, bits of a float, unit
    and kind of time zone of a time."""
    if type(a) is not type(b) or repr(a) != repr(b):
        return False
    if isinstance(a, (float, np.floating)):
        return np.array(a).tobytes() == np.array(b).tobytes()  # NaN payloads and -0.0 too
    if isinstance(a, np.generic):
        return a.dtype == b.dtype
    if isinstance(a, (pd.Timestamp, pd.Timedelta)) and a.unit != b.unit:
        return False
    if isinstance(a, dt.datetime):
        return type(a.tzinfo) is type(b.tzinfo) and a.fold == b.fold
    return True
