"""Feature values <-> cache cells (steps/featurize/cache/cells.py): exact, or refused."""

from __future__ import annotations

import datetime as dt
import math
import struct
import zoneinfo

import numpy as np
import pandas as pd
import pytest
import pytz

from steps.featurize.cache.cells import Cell, Unstorable, decode, encode, same

ODD_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000123))[0]  # a NaN with a payload

VALUES = [
    None, True, False, 0, -5, 2**70, -(2**70), 1.5, math.nan, ODD_NAN, -0.0, math.inf, "x", "", "é\x00",
    b"\x00\xff", np.bool_(True), np.int8(-3), np.int32(7), np.int64(-(2**63)), np.uint64(2**64 - 1),
    np.float16(np.nan), np.float32(1.1), np.float64(math.nan), np.float64(0.1), np.str_("s"),
    np.datetime64("2020-01-01T00:00:00.123", "ms"), np.datetime64("NaT", "ns"), np.datetime64("2020-01-01"),
    np.timedelta64(5, "s"), pd.NaT, pd.NA,
    pd.Timestamp("2020-01-01 12:00:00.123456789"), pd.Timestamp("2020-01-01").as_unit("s"),
    pd.Timestamp("2020-07-01 03:00", tz="Europe/Paris"), pd.Timestamp("2020-07-01", tz="UTC"),
    pd.Timestamp("2020-07-01", tz=zoneinfo.ZoneInfo("America/New_York")), pd.Timedelta("1s").as_unit("ms"),
    dt.datetime(2020, 1, 2, 3, 4, 5, 6), dt.datetime(2020, 7, 1, tzinfo=dt.timezone.utc),
    dt.datetime(2020, 7, 1, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
    dt.datetime(2020, 7, 1, tzinfo=dt.timezone(dt.timedelta(hours=1), "CET")),
    pytz.timezone("Europe/Paris").localize(dt.datetime(2020, 1, 1)),
    dt.datetime(2020, 11, 1, 1, 30, tzinfo=zoneinfo.ZoneInfo("America/New_York"), fold=1),
    dt.date(2020, 2, 29), dt.timedelta(days=-3, microseconds=7),
]


class TestValidCells:
    @pytest.mark.parametrize("value", VALUES, ids=lambda v: f"{type(v).__name__}:{v!r}"[:60])
    def test_every_value_comes_back_as_itself(self, value):
        back = decode(encode(value))
        assert same(value, back), (value, back)

    def test_same_tells_what_an_output_would_tell(self):
        """The check every entry passes before it is written: it must see these differences."""
        assert not same(1, 1.0) and not same(1.0, np.float64(1.0)) and not same(np.float32(1), np.float64(1))
        assert not same(0.0, -0.0) and not same(math.nan, ODD_NAN) and same(math.nan, float("nan"))
        assert not same(pd.Timestamp("2020-01-01").as_unit("ns"), pd.Timestamp("2020-01-01").as_unit("s"))
        assert not same(pd.Timestamp("2020-07-01", tz="Europe/Paris"),
                        pd.Timestamp("2020-07-01", tz=zoneinfo.ZoneInfo("Europe/Paris")))
        assert not same(None, pd.NA) and not same(pd.NaT, None) and not same("1", 1)


class TestInvalidCells:
    @pytest.mark.parametrize("value", [[1], {"a": 1}, 1 + 2j, np.longlong(3), pytest.param(object(), id="object()"), dt.time(1),
                                       dt.datetime(2020, 1, 1, tzinfo=pytz.FixedOffset(60))], ids=repr)
    def test_what_cannot_come_back_exactly_is_refused(self, value):
        with pytest.raises(Unstorable):
            encode(value)

    @pytest.mark.parametrize("cell", [
        Cell("pickle", b=b"\x80\x04."), Cell("np.time", i=0, s="O"), Cell("np.time", i=0, s="<M8[ns]; import os"),
        Cell("pd.Timestamp", i=0, s="ns", tz="zoneinfo:../../../etc/passwd"),
        Cell("pd.Timestamp", i=0, s="ns", tz="pytz:/etc/passwd"), Cell("pd.Timestamp", i=0, s="days"),
        Cell("datetime", i=0, tz="dateutil:UTC"),
    ], ids=repr)
    def test_a_crafted_cell_is_an_error_not_a_value(self, cell):
        with pytest.raises((ValueError, KeyError)):
            decode(cell)
