"""Step caching (SageMaker's key and expiry), resuming a failed run, and `only`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.local import StepState
from tests.pipeline.local.helpers import definition, get, run, s3_input, step

CACHE = {"Enabled": True, "ExpireAfter": "P30D"}


def chain(cache=CACHE, tag="v1"):
    return definition(step("A", cache=cache, args=["--tag", tag]),
                      step("B", inputs=[s3_input("up", get("A"))], cache=cache))


def states(result):
    return {n: s.state for n, s in result.steps.items()}


class TestCache:
    def test_second_run_is_cached_and_reuses_outputs(self, tmp_path):
        first = run(chain(), tmp_path)
        second = run(chain(), tmp_path)
        assert second.execution_id != first.execution_id
        assert states(second) == {"A": StepState.CACHED, "B": StepState.CACHED}
        assert second.steps["B"].outputs == first.steps["B"].outputs  # the earlier prefix

    def test_changed_arguments_rerun_the_step_and_its_consumers(self, tmp_path):
        run(chain(), tmp_path)
        again = run(chain(tag="v2"), tmp_path)
        # B's input is A's new output URI: its key changed too
        assert states(again) == {"A": StepState.SUCCEEDED, "B": StepState.SUCCEEDED}

    def test_expired_entries_and_no_cache_rerun(self, tmp_path):
        run(chain(), tmp_path)
        for entry in (tmp_path / "work" / "cache").rglob("*.json"):
            data = json.loads(entry.read_text())
            data["finished"] = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()
            entry.write_text(json.dumps(data))
        short = {"Enabled": True, "ExpireAfter": "P1D"}
        assert states(run(chain(cache=short), tmp_path))["A"] is StepState.SUCCEEDED
        assert states(run(chain(), tmp_path, use_cache=False))["A"] is StepState.SUCCEEDED

    def test_disabled_cache_and_deleted_outputs_rerun(self, tmp_path):
        first = run(chain(cache=None), tmp_path)
        assert states(run(chain(cache=None), tmp_path))["A"] is StepState.SUCCEEDED
        cached = run(chain(), tmp_path)  # entries of earlier successful runs count
        assert states(cached)["A"] is StepState.CACHED
        for path in (tmp_path / "work" / "s3").rglob("*"):
            if cached.steps["A"].outputs["out"].split("/")[-3] in str(path) and path.is_file():
                path.unlink()
        assert states(run(chain(), tmp_path))["A"] is StepState.SUCCEEDED
        assert first.ok


class TestResume:
    def test_rerun_after_failure_runs_only_what_failed_or_never_ran(self, tmp_path, monkeypatch):
        marker = tmp_path / "fail"
        marker.touch()
        monkeypatch.setenv("MY_FAIL_MARKER", str(marker))
        defn = definition(
            step("A"), step("Flaky", "fail_if_marker", depends_on=["A"]),
            step("After", inputs=[s3_input("up", get("Flaky"))]),
        )
        first = run(defn, tmp_path)
        assert states(first) == {"A": StepState.SUCCEEDED, "Flaky": StepState.FAILED,
                                 "After": StepState.SKIPPED}
        marker.unlink()
        second = run(defn, tmp_path, retry="latest")
        assert second.resumed and second.execution_id == first.execution_id
        assert states(second) == {"A": StepState.REUSED, "Flaky": StepState.SUCCEEDED,
                                  "After": StepState.SUCCEEDED}
        third = run(defn, tmp_path)  # the execution succeeded: a new one starts
        assert not third.resumed and third.execution_id != first.execution_id
        assert states(third)["A"] is StepState.SUCCEEDED
        with pytest.raises(ValueError, match=f"execution {first.execution_id} succeeded"):
            run(defn, tmp_path, retry=first.execution_id)

    def test_a_run_after_a_failure_is_a_new_execution_and_says_how_to_retry(self, tmp_path, monkeypatch):
        import io

        marker = tmp_path / "fail"
        marker.touch()
        monkeypatch.setenv("MY_FAIL_MARKER", str(marker))
        defn = definition(step("A", cache=None), step("Flaky", "fail_if_marker", depends_on=["A"]))
        first = run(defn, tmp_path)
        out = io.StringIO()
        second = run(defn, tmp_path, progress=True, stream=out)
        assert not second.resumed and second.execution_id != first.execution_id
        assert states(second)["A"] is StepState.SUCCEEDED  # read again, not reused from the failed one
        assert f"execution {first.execution_id} did not succeed; this is a new execution" in out.getvalue()
        assert f"local --retry {first.execution_id}" in out.getvalue()

    def test_a_retry_refuses_what_it_cannot_continue_naming_why(self, tmp_path, monkeypatch):
        marker = tmp_path / "fail"
        marker.touch()
        monkeypatch.setenv("MY_FAIL_MARKER", str(marker))
        defn = definition(step("A"), step("Flaky", "fail_if_marker", depends_on=["A"]))
        with pytest.raises(ValueError, match="--retry: no execution"):
            run(defn, tmp_path, retry="latest")
        first = run(defn, tmp_path)
        with pytest.raises(ValueError, match="the pipeline changed since execution"):
            run(definition(step("A"), step("Other", depends_on=["A"])), tmp_path, retry=first.execution_id)
        with pytest.raises(ValueError, match="no execution nope"):
            run(defn, tmp_path, retry="nope")
        with pytest.raises(ValueError, match="neither --only nor --no-cache"):
            run(defn, tmp_path, retry="latest", use_cache=False)


class TestOnly:
    def test_only_runs_the_selected_steps_with_earlier_upstream_outputs(self, tmp_path):
        first = run(chain(cache=None), tmp_path)
        again = run(chain(cache=None), tmp_path, only=["B"])
        assert states(again) == {"A": StepState.REUSED, "B": StepState.SUCCEEDED}
        assert first.execution_id in again.steps["A"].reason

    def test_only_without_an_earlier_run_is_refused(self, tmp_path):
        with pytest.raises(ValueError, match="never completed"):
            run(chain(), tmp_path, only=["B"])
        with pytest.raises(ValueError, match="no step named"):
            run(chain(), tmp_path, only=["Nope"])
