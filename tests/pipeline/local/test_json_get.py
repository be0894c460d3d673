"""`Std:JsonGet` over a step's PropertyFiles: how the pipeline reads Reconcile's shards_uri."""

from __future__ import annotations

import pytest

from pipeline.local import UnsupportedDefinition
from tests.pipeline.local.helpers import definition, echo_of, run, step

CACHE = {"Enabled": True, "ExpireAfter": "P1D"}


def producer(cache=None) -> dict:
    a = step("A", args=["--tag", "hello", "--extra", "x"], cache=cache)
    a["PropertyFiles"] = [{"PropertyFileName": "Echo", "OutputName": "out", "FilePath": "echo-algo-1.json"}]
    return a


def json_get(path: str, file: str = "Steps.A.PropertyFiles.Echo") -> dict:
    return {"Std:JsonGet": {"PropertyFile": {"Get": file}, "Path": path}}


class TestValidJsonGet:
    def test_reads_the_file_the_step_wrote_and_orders_steps(self, tmp_path):
        b = step("B", args=["--extra", json_get("tag"), "--extra", {"Std:Join": {"On": "/", "Values": [
            json_get("extra[0]"), "y"]}}])
        result = run(definition(b, producer()), tmp_path)  # B listed first: the dependency orders it
        assert result.ok
        assert echo_of(tmp_path, result, "B")["extra"] == ["hello", "x/y"]

    def test_a_cached_producer_is_read_where_it_wrote(self, tmp_path):
        b = step("B", args=["--extra", json_get("tag")])
        assert run(definition(producer(CACHE), b), tmp_path).ok
        again = run(definition(producer(CACHE), b), tmp_path, use_cache=True)
        assert again.ok and again.steps["A"].state.value == "Cached"
        assert echo_of(tmp_path, again, "B")["extra"] == ["hello"]


class TestInvalidJsonGet:
    def test_unknown_step_refused_up_front(self, tmp_path):
        b = step("B", args=["--extra", json_get("tag", "Steps.Nope.PropertyFiles.Echo")])
        with pytest.raises(UnsupportedDefinition, match="Nope"):
            run(definition(producer(), b), tmp_path)

    def test_s3_uri_form_refused_up_front(self, tmp_path):
        b = step("B", args=["--extra", {"Std:JsonGet": {"S3Uri": "s3://bkt/x.json", "Path": "a"}}])
        with pytest.raises(UnsupportedDefinition, match="JsonGet"):
            run(definition(producer(), b), tmp_path)

    def test_missing_path_fails_the_step_with_its_name(self, tmp_path):
        b = step("B", args=["--extra", json_get("nothing.here")])
        result = run(definition(producer(), b), tmp_path)
        assert not result.ok and "nothing.here" in result.steps["B"].reason
