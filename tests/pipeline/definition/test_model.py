"""The definition model validate, graph and the local runner share (pipeline/definition/model.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipeline.definition.model import (
    STEP_NAME, Cycle, canonical, graph_problems, parse_duration, pretty, referenced_steps,
    step_order, topological_order, upstream,
)
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "pipeline" / "golden" / "example.definition.json"


def step(name: str, depends_on: list = (), reads: tuple[str, ...] = ()) -> dict:
    """A step that depends on `depends_on` by DependsOn and on `reads` by data."""
    env = {f"IN_{r}": {"Get": f"Steps.{r}.ProcessingOutputConfig.Outputs['out'].S3Output.S3Uri"}
           for r in reads}
    body = {"Name": name, "Type": "Processing", "Arguments": {"Environment": env}}
    if depends_on:
        body["DependsOn"] = list(depends_on)
    return body


class TestValidNames:
    @pytest.mark.parametrize("name", ["Reconcile", "Featurize-shard-0001", "a_b", "x" * 64, "0"])
    def test_accepted(self, name):
        assert STEP_NAME.match(name)


class TestInvalidNames:
    @pytest.mark.parametrize("name", ["", "x" * 65, "Featurize shard 1", "a.b", "a/b", "é"])
    def test_rejected(self, name):
        assert not STEP_NAME.match(name)
        assert graph_problems([step(name)]) == [f"step {name!r}: name does not match {STEP_NAME.pattern}"]


class TestDependencies:
    def test_data_and_depends_on_with_run_conditions(self):
        s = step("C", depends_on=["A", {"Step": "B", "Trigger": "Any"}], reads=("B", "D"))
        # an explicit run condition wins over the Completed a data dependency implies
        assert upstream(s) == {"B": "Any", "D": "Completed", "A": "Completed"}

    def test_references_inside_joins_and_property_files(self):
        value = {"Std:Join": {"On": "/", "Values": [
            {"Get": "Steps.A.ProcessingJobName"}, {"Get": "Parameters.X"},
            {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.B.PropertyFiles.report"}, "Path": "k"}}]}}
        assert referenced_steps(value) == {"A", "B"}

    def test_order_is_by_depth_then_definition_order(self):
        graph = {"Z": {"A": "Completed"}, "A": {}, "M": {}, "B": {"Z": "Completed", "M": "Any"}}
        assert topological_order(graph) == ("A", "M", "Z", "B")

    def test_unknown_steps(self):
        assert graph_problems([step("A", depends_on=["Nope"], reads=("Gone",))]) == [
            "step 'A': depends on unknown step 'Gone'", "step 'A': depends on unknown step 'Nope'"]


class TestCycles:
    def test_a_cycle_is_named(self):
        graph = {"A": {"C": "Completed"}, "B": {"A": "Completed"}, "C": {"B": "Completed"}}
        with pytest.raises(Cycle) as err:
            topological_order(graph)
        assert err.value.steps[0] == err.value.steps[-1] and set(err.value.steps) == {"A", "B", "C"}
        assert str(err.value).startswith("the steps form a cycle: ")

    def test_graph_problems_report_it(self):
        assert graph_problems([step("A", depends_on=["B"]), step("B", reads=("A",))]) == [
            "graph: cycle through steps ['A', 'B', 'A']"]

    def test_no_cycle_no_problem(self):
        assert graph_problems([step("A"), step("B", depends_on=["A"], reads=("A",))]) == []


class TestCanonicalJson:
    def test_byte_identical_whatever_the_key_order_and_spacing(self):
        one = json.dumps({"b": [1, {"y": 2, "x": "é"}], "a": None}, indent=4)
        two = json.dumps({"a": None, "b": [1, {"x": "é", "y": 2}]})
        assert canonical(one) == canonical(two) == '{"a":null,"b":[1,{"x":"\\u00e9","y":2}]}'
        assert canonical(one).encode() == canonical(canonical(one)).encode()

    def test_pretty_of_the_golden_definition_is_the_golden_file(self):
        text = GOLDEN.read_text()
        assert pretty(canonical(text)) == text
        assert canonical(pretty(canonical(text))) == canonical(text)


class TestDurations:
    @pytest.mark.parametrize("text,expected", [
        ("P30D", timedelta(days=30)), ("PT12H", timedelta(hours=12)),
        ("P1W", timedelta(weeks=1)), ("P1Y2M", timedelta(days=425)),
        ("PT1M30S", timedelta(seconds=90)), ("PT0.5S", timedelta(milliseconds=500)),
        ("P1DT1H", timedelta(days=1, hours=1))])
    def test_valid(self, text, expected):
        assert parse_duration(text) == expected

    @pytest.mark.parametrize("text", ["30D", "P", "PT", "P1DT", "soon", "", "P1H", "PT1D", "p1d"])
    def test_invalid(self, text):
        with pytest.raises(ValueError) as err:
            parse_duration(text)
        assert str(err.value) == f"ExpireAfter {text!r} is not an ISO 8601 duration such as P30D or PT1H"


def for_each(name: str, *body: dict, reads: str | None = None) -> dict:
    items = {"Std:JsonGet": {"PropertyFile": {"Get": f"Steps.{reads}.PropertyFiles.R"}, "Path": "items"}} \
        if reads else ["a"]
    return {"Name": name, "Type": "ForEach",
            "Arguments": {"IterableItems": items, "MaxConcurrency": 2, "ForEachBody": list(body)}}


class TestForEach:
    def test_its_items_and_its_body_are_its_dependencies(self):
        fan = for_each("Fan", step("Body", reads=("B",)), reads="A")
        assert upstream(fan) == {"A": "Completed", "B": "Completed"}
        assert graph_problems([step("A"), step("B"), fan, step("After", depends_on=["Fan"])]) == []

    def test_body_names_are_names_too(self):
        fan = for_each("Fan", step("Body"))
        assert graph_problems([fan, step("Body")]) == ["step 'Body': name used more than once"]
        assert graph_problems([fan, step("Body-3")]) == [
            "step 'Body-3': looks like an iteration of ForEach body step 'Body'"]
        assert graph_problems([for_each("Empty")]) == ["step 'Empty': a ForEach step needs a non-empty ForEachBody"]

    def test_an_executions_steps_in_the_pipelines_order(self):
        """Iterations right after their ForEach, by index (10 after 2); unknown names last."""
        definition = {"Steps": [step("Combine", reads=("Fan",)), step("Listing"),
                                for_each("Fan", step("Shard"), reads="Listing")]}
        recorded = sorted(["Combine", "Fan", "Listing", "Shard-0", "Shard-10", "Shard-2", "Gone"])  # by name
        assert step_order(definition, recorded) == ["Listing", "Fan", "Shard-0", "Shard-2", "Shard-10", "Combine",
                                                    "Gone"]
