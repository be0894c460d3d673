"""The local runner executes ForEach steps: items from a property file, CurrentItem references
(the bare item, as wavepipe's definitions read it, and fields of object items, for others),
the concurrency cap, per-iteration caching, failures and what the steps after it see."""

from __future__ import annotations

import json

import pytest

from pipeline.local.supported import UnsupportedDefinition, load_definition
from pipeline.local.results import StepState
from tests.pipeline.local.helpers import BUCKET, definition, run, s3_path, step

ITEM = "ForEach.CurrentItem"
CACHE = {"Enabled": True, "ExpireAfter": "P30D"}


def items_step(*items: dict | str) -> dict:
    body = step("Items", "items", args=[a for i in items for a in ("--extra", json.dumps(i))])
    body["PropertyFiles"] = [{"PropertyFileName": "ItemsReport", "OutputName": "out", "FilePath": "report.json"}]
    return body


def body(task: str = "echo", cache: dict | None = CACHE) -> dict:
    """A body step whose output place and tag come from the item."""
    b = step("Shard", task, args=["--tag", {"Get": f"{ITEM}.name"}], cache=cache)
    b["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = {
        "Std:Join": {"On": "/", "Values": [f"s3://{BUCKET}/places", {"Get": f"{ITEM}.name"}, "out"]}}
    return b


def for_each(body_step: dict, concurrency: int = 2, items=None) -> dict:
    items = items if items is not None else {
        "Std:JsonGet": {"PropertyFile": {"Get": "Steps.Items.PropertyFiles.ItemsReport"}, "Path": "items"}}
    return {"Name": "Fan", "Type": "ForEach",
            "Arguments": {"IterableItems": items, "MaxConcurrency": concurrency, "ForEachBody": [body_step]}}


def after() -> dict:
    return step("After", depends_on=["Fan"])


def names(n: int) -> list[dict]:
    return [{"name": f"s{i}"} for i in range(n)]


def test_each_item_runs_once_with_its_fields(tmp_path):
    result = run(definition(items_step(*names(3)), for_each(body()), after()), tmp_path)
    assert result.ok
    assert list(result.steps) == ["Items", "Fan", "Shard-0", "Shard-1", "Shard-2", "After"]
    assert result.steps["Fan"].state is StepState.SUCCEEDED
    for i in range(3):
        out = s3_path(tmp_path, f"s3://{BUCKET}/places/s{i}/out")
        assert json.loads((out / "echo-algo-1.json").read_text())["tag"] == f"s{i}"
    record = json.loads((tmp_path / "work" / "executions" / result.execution_id / "execution.json").read_text())
    assert record["Steps"]["Fan"]["Properties"] == {
        "Status": "Succeeded", "InputItemCount": 3, "TotalStepCount": 3, "SucceededStepCount": 3,
        "FailedStepCount": 0, "StoppedStepCount": 0}


def test_plain_string_items_read_as_the_bare_item(tmp_path):
    """What wavepipe's own definitions do (`shard_items`: each a shard's place): the item is a
    plain string, read whole as an argument and as the first value of a `Std:Join`."""
    places = [f"s3://{BUCKET}/shards/d{i}" for i in range(3)]
    bare = step("Shard", "echo", args=["--tag", {"Get": ITEM}], cache=CACHE)
    bare["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = {
        "Std:Join": {"On": "/", "Values": [{"Get": ITEM}, "out"]}}
    result = run(definition(items_step(*places), for_each(bare), after()), tmp_path)
    assert result.ok
    for place in places:
        assert json.loads((s3_path(tmp_path, f"{place}/out") / "echo-algo-1.json").read_text())["tag"] == place


def test_at_most_max_concurrency_iterations_run_at_once(tmp_path):
    result = run(definition(items_step(*names(5)), for_each(body("timed"), concurrency=2)), tmp_path, cores=8)
    assert result.ok
    spans = [json.loads((s3_path(tmp_path, f"s3://{BUCKET}/places/s{i}/out") / "times.json").read_text())
             for i in range(5)]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 2  # 8 cores would allow 5; MaxConcurrency 2 holds it


def test_iterations_are_cached_one_by_one(tmp_path):
    run(definition(items_step(*names(3)), for_each(body())), tmp_path)
    changed = [{"name": "s0"}, {"name": "s1-new"}, {"name": "s2"}]
    result = run(definition(items_step(*changed), for_each(body())), tmp_path)
    assert result.ok
    states = {n: result.steps[n].state for n in ("Shard-0", "Shard-1", "Shard-2")}
    assert states == {"Shard-0": StepState.CACHED, "Shard-1": StepState.SUCCEEDED, "Shard-2": StepState.CACHED}
    assert result.steps["Fan"].state is StepState.SUCCEEDED


def test_a_failed_iteration_fails_the_for_each_and_skips_what_follows(tmp_path):
    (tmp_path / "marker").write_text("")
    b = body("fail_if_marker")
    b["Arguments"]["Environment"] = {"MY_FAIL_MARKER": str(tmp_path / "marker")}
    result = run(definition(items_step(*names(2)), for_each(b), after()), tmp_path)
    assert not result.ok
    assert result.steps["Shard-0"].state is StepState.FAILED and result.steps["Shard-1"].state is StepState.FAILED
    assert result.steps["Fan"].state is StepState.FAILED
    assert result.steps["Fan"].reason == "2 of 2 iterations failed: Shard-0, Shard-1"
    assert result.steps["After"].state is StepState.SKIPPED


def test_run_when_iterations_fail(tmp_path):
    """A step that depends on the ForEach with the Any trigger still runs (Combine's run_when_shards_fail)."""
    (tmp_path / "marker").write_text("")
    b = body("fail_if_marker")
    b["Arguments"]["Environment"] = {"MY_FAIL_MARKER": str(tmp_path / "marker")}
    later = step("After", depends_on=[{"Step": "Fan", "Trigger": "Any"}])
    result = run(definition(items_step(*names(1)), for_each(b), later), tmp_path)
    assert result.steps["After"].state is StepState.SUCCEEDED


@pytest.mark.parametrize("items, reason", [
    ("[]", "cannot resolve its items: IterableItems resolved to an empty list: nothing to iterate"),
    ({"k": 1}, "cannot resolve its items: IterableItems resolved to a dict, not a JSON list"),
    ("not json", "cannot resolve its items: IterableItems resolved to 'not json', which is no JSON list"),
])
def test_items_that_are_no_list_fail_the_step_by_name(tmp_path, items, reason):
    source = items_step()
    source["Arguments"]["AppSpecification"]["ContainerArguments"] += ["--tag", "raw", "--extra", json.dumps(items)]
    result = run(definition(source, for_each(body()), after()), tmp_path)
    assert result.steps["Fan"].state is StepState.FAILED
    assert result.steps["Fan"].reason == reason
    assert result.steps["After"].state is StepState.SKIPPED


def test_an_empty_literal_list_is_refused_before_running():
    with pytest.raises(UnsupportedDefinition):
        load_definition(definition(for_each(body(), items=[])))


def test_a_literal_list_of_items(tmp_path):
    result = run(definition(for_each(body(), items=[json.dumps({"name": "a"}), json.dumps({"name": "b"})])), tmp_path)
    assert result.ok
    out = s3_path(tmp_path, f"s3://{BUCKET}/places/b/out")
    assert json.loads((out / "echo-algo-1.json").read_text())["tag"] == "b"


def test_what_cannot_run_is_refused_before_anything_runs():
    bad = body()
    bad["Arguments"]["AppSpecification"]["ContainerArguments"].append({"Get": "ForEach.Other"})
    fan = for_each(bad, concurrency=51)
    fan["Arguments"]["Selector"] = {"Pick": "MaxBy"}
    with pytest.raises(UnsupportedDefinition) as err:
        load_definition(definition(items_step(), fan))
    assert err.value.problems == [
        "step Fan: argument 'Selector' is not supported locally",
        "step Fan: MaxConcurrency must be an integer from 1 to 50, got 51",
        "step Shard: Get ForEach.Other: 'ForEach' references are not supported by the local runner",
    ]


def test_resuming_runs_the_failed_iterations_only(tmp_path):
    """A resumed execution (RetryPipelineExecution) runs the ForEach again: the iterations that
    completed are cache hits, the failed one runs."""
    b = body("fail_if_marker")
    b["Arguments"]["Environment"] = {"MY_FAIL_MARKER": {"Std:Join": {"On": "/", "Values": [
        str(tmp_path), {"Get": f"{ITEM}.name"}]}}}
    (tmp_path / "s1").write_text("")
    defn = definition(items_step(*names(3)), for_each(b), after())
    first = run(defn, tmp_path)
    assert [first.steps[f"Shard-{i}"].state for i in range(3)] == [
        StepState.SUCCEEDED, StepState.FAILED, StepState.SUCCEEDED]
    (tmp_path / "s1").unlink()
    second = run(defn, tmp_path, retry="latest")
    assert second.resumed and second.ok
    assert [second.steps[f"Shard-{i}"].state for i in range(3)] == [
        StepState.CACHED, StepState.SUCCEEDED, StepState.CACHED]
    assert second.steps["Items"].state is StepState.REUSED
