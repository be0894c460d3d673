"""A folder's results <-> one Parquet entry (steps/featurize/cache/entries.py)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steps.featurize.cache import entries
from steps.featurize.cache.cells import Unstorable, same
from steps.featurize.cache.entries import Refused, entry_bytes, read_entry
from steps.featurize.records import FeatureResult

KEY = "f" * 64


def results() -> dict[str, FeatureResult]:
    """Two records: rows of uneven columns and key order, an empty row, error rows; one without rows."""
    return {
        "30/3000003/3000003.hea": FeatureResult(
            rows=[{"signal": "II", "mean": 0.25, "n": 3, "nan": math.nan, "when": pd.Timestamp("2020-01-01", tz="UTC")},
                  {"n": np.int64(4), "signal": "ABP", "extra": None, "mean": np.float32(1.5)},
                  {}],
            errors=[{"group": "30", "record": "3000003", "segment": "3000003_0002", "file": "3000003_0002.dat",
                     "kind": "truncated_data_file", "message": "short"}]),
        "30/3000003/3000003n.hea": FeatureResult(),
    }


def assert_same_results(a: dict[str, FeatureResult], b: dict[str, FeatureResult]) -> None:
    assert set(a) == set(b)
    for header in a:
        for mine, theirs in ((a[header].rows, b[header].rows), (a[header].errors, b[header].errors)):
            assert [list(r) for r in mine] == [list(r) for r in theirs], header  # columns in their order
            assert all(same(x[k], y[k]) for x, y in zip(mine, theirs) for k in x), header


def rewritten(data: bytes, edit) -> bytes:
    """The entry's table changed by `edit` (table -> table) and written again."""
    table = edit(pq.read_table(io.BytesIO(data)))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


class TestValidEntries:
    def test_rows_and_error_rows_come_back_exactly(self):
        data = entry_bytes(KEY, results())
        assert_same_results(results(), read_entry(data, KEY, set(results())))

    def test_the_same_rows_give_the_same_bytes(self):
        """Content addressing: two writers of one folder's rows write one object."""
        assert entry_bytes(KEY, results()) == entry_bytes(KEY, results())

    def test_the_schema_is_fixed_whatever_the_rows(self):
        table = pq.read_table(io.BytesIO(entry_bytes(KEY, results())))
        assert table.schema.equals(entries.SCHEMA, check_metadata=False)
        meta = json.loads(table.schema.metadata[entries.META])
        assert meta == {"format": entries.FORMAT, "key": KEY, "records": [
            ["30/3000003/3000003.hea", 3, 1], ["30/3000003/3000003n.hea", 0, 0]]}


class TestInvalidEntries:
    @pytest.mark.parametrize("value", [[1, 2], {"a": 1}, pytest.param(object(), id="object()")], ids=repr)
    def test_a_value_that_cannot_come_back_is_unstorable(self, value):
        with pytest.raises(Unstorable, match="column bad"):
            entry_bytes(KEY, {"a.hea": FeatureResult(rows=[{"ok": 1, "bad": value}])})

    def test_a_string_arrow_cannot_hold_is_unstorable(self):
        with pytest.raises(Unstorable):
            entry_bytes(KEY, {"a.hea": FeatureResult(rows=[{"s": "\ud800"}])})

    def test_an_entry_of_another_folder_key_is_refused(self):
        with pytest.raises(Refused) as err:
            read_entry(entry_bytes(KEY, results()), "0" * 64, set(results()))
        assert err.value.reason == "wrong_key"

    def test_an_entry_of_other_records_is_refused(self):
        with pytest.raises(Refused) as err:
            read_entry(entry_bytes(KEY, results()), KEY, {"30/3000003/3000003.hea"})
        assert err.value.reason == "wrong_records"

    def test_an_entry_of_another_format_is_refused(self):
        def old(table: pa.Table) -> pa.Table:
            meta = json.loads(table.schema.metadata[entries.META])
            return table.replace_schema_metadata({entries.META: json.dumps({**meta, "format": 1})})

        with pytest.raises(Refused) as err:
            read_entry(rewritten(entry_bytes(KEY, results()), old), KEY, set(results()))
        assert err.value.reason == "wrong_format"

    def test_other_parquet_is_refused(self):
        sink = io.BytesIO()
        pq.write_table(pa.table({"mean": [999.0]}), sink)
        with pytest.raises(Refused) as err:
            read_entry(sink.getvalue(), KEY, set(results()))
        assert err.value.reason == "wrong_schema"

    @pytest.mark.parametrize("data", [b"", b"\x80\x04\x95.", b"PAR1garbagePAR1"], ids=repr)
    def test_bytes_that_are_no_parquet_are_refused(self, data):
        with pytest.raises(Refused) as err:
            read_entry(data, KEY, set(results()))
        assert err.value.reason == "unreadable"

    @pytest.mark.parametrize("edit", [
        lambda t: t.set_column(t.schema.get_field_index("tag"), "tag", pa.array(["pickle"] * len(t), pa.string())),
        lambda t: t.set_column(t.schema.get_field_index("row"), "row", pa.array([99] * len(t), pa.int32())),
        lambda t: t.set_column(t.schema.get_field_index("row"), "row", pa.array([-1] * len(t), pa.int32())),
        lambda t: t.set_column(t.schema.get_field_index("record"), "record", pa.array(["x.hea"] * len(t))),
        lambda t: pa.concat_tables([t, t.slice(0, 1)]),  # one cell twice
    ], ids=["unknown tag", "row out of range", "negative row", "unknown record", "a cell twice"])
    def test_cells_that_do_not_fit_their_records_are_refused(self, edit):
        with pytest.raises(Refused) as err:
            read_entry(rewritten(entry_bytes(KEY, results()), edit), KEY, set(results()))
        assert err.value.reason == "wrong_cells"
