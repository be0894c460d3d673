"""`plan` predicts the bytes a Featurize job moves, checked against what the local runner moves.

Download mode (SageMaker File mode): the runner stages every file the shard's ManifestFile
names into the job's `/opt/ml/processing/input/data` (its sandbox), whatever the record cache
holds. Stream mode: only the manifest and index are staged; the job fetches every header and
the data files of the records it featurizes (its report's `bytes_headers_fetched` and
`bytes_fetched`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.plan.predict import make_plan
from tests.pipeline.local.test_incremental import featurize_reports, flip_a_byte, last_execution, run

def staged(workdir: Path, step: str) -> dict[str, int]:
    """Bytes under each input folder of `step`'s sandbox in the last execution."""
    inputs = workdir / "executions" / last_execution(workdir)["ExecutionId"] / "jobs" / step / "algo-1" / \
        "processing" / "input"
    return {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in inputs.iterdir()
            if d.name not in ("code", "settings")}


@pytest.mark.parametrize("read_mode", ["download", "stream"])
def test_plan_predicts_the_bytes_the_job_stages_or_fetches(tmp_path, read_mode):
    workdir, overlay = tmp_path / "w", tmp_path / "mode.yaml"
    overlay.write_text(f"stages:\n  featurize:\n    read_mode: {read_mode}\n")
    assert run(workdir, "--overlay", str(overlay), plan=False) == 0
    assert run(workdir, "--overlay", str(overlay), plan=False) == 0  # what failed, and the empty work, once
    flip_a_byte(workdir)
    plans = {p.name: p for p in make_plan(load_config(Path(__file__).parents[3] / "config/example.yaml",
                                                      overlays=[str(overlay)]), workdir, "local", {})}
    assert run(workdir, "--overlay", str(overlay)) == 0
    [(name, report)] = featurize_reports(workdir).items()
    plan = plans[name]
    assert (plan.records, plan.records_todo) == (report["records_total"], report["records_featurized"])
    got = staged(workdir, name)
    if read_mode == "download":
        # Only the work shard: the changed folder and those of its shard that failed before.
        assert plan.bytes_staged == got["data"] == plan.bytes == plan.bytes_todo and plan.bytes_fetched == 0
    else:
        assert "data" not in got and plan.bytes_staged == 0
        assert sum(got.values()) < 100_000  # the manifest, the index and shard.json
        assert plan.bytes_fetched == report["bytes_headers_fetched"] + report["bytes_fetched"]
