"""A cache hit is only served over the outputs the cached job wrote (pipeline/local/cache.py):
hostile edits of a cached step's outputs make it run again, saying why, never a stale hit."""

from __future__ import annotations

import io
import json

import pytest

from pipeline.local import StepState
from tests.pipeline.local.helpers import definition, get, run, s3_input, s3_path, step

CACHE = {"Enabled": True, "ExpireAfter": "P30D"}


def chain():
    return definition(step("A", cache=CACHE), step("B", inputs=[s3_input("up", get("A"))], cache=CACHE))


def states(result):
    return {n: s.state for n, s in result.steps.items()}


class TestInvalidCachedOutputs:
    @pytest.mark.parametrize("damage", ["delete_one", "truncate", "same_size_edit", "add", "delete_all"])
    def test_a_damaged_output_is_a_miss_and_the_step_reruns(self, tmp_path, damage):
        first = run(chain(), tmp_path)
        assert first.ok
        out = s3_path(tmp_path, first.steps["B"].outputs["out"])
        victim = out / "copied" / "echo-algo-1.json"  # one of B's two files: the other stays
        good = victim.read_bytes()
        if damage == "delete_one":
            victim.unlink()
        elif damage == "truncate":
            victim.write_bytes(good[:10])
        elif damage == "same_size_edit":
            victim.write_bytes(bytes([good[0] ^ 1]) + good[1:])
        elif damage == "add":
            (out / "foreign.parquet").write_bytes(b"not mine")
        else:
            for path in out.rglob("*"):
                if path.is_file():
                    path.unlink()
        stream = io.StringIO()
        again = run(chain(), tmp_path, progress=True, stream=stream)
        assert again.ok and states(again) == {"A": StepState.CACHED, "B": StepState.SUCCEEDED}, stream.getvalue()
        said = stream.getvalue()
        assert f"B: not reused: the outputs of execution {first.execution_id} changed since it wrote them" in said
        what = {"delete_one": "missing", "truncate": "altered", "same_size_edit": "altered", "add": "added",
                "delete_all": "missing"}[damage]
        assert f"{what}" in said
        # The new run's outputs are whole, and are what a third run reuses.
        fresh = s3_path(tmp_path, again.steps["B"].outputs["out"])
        assert (fresh / "copied" / "echo-algo-1.json").read_bytes() == good
        third = run(chain(), tmp_path)
        assert states(third) == {"A": StepState.CACHED, "B": StepState.CACHED}

    def test_an_entry_records_every_output_object(self, tmp_path):
        first = run(chain(), tmp_path)
        entries = list((tmp_path / "work" / "cache").rglob("B/*.json"))
        objects = json.loads(entries[0].read_text())["output_objects"]["out"]
        out = s3_path(tmp_path, first.steps["B"].outputs["out"])
        assert set(objects) == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
        assert all(size == (out / key).stat().st_size for key, (size, _) in objects.items())
