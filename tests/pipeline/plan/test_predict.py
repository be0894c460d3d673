"""`plan` predicts the bytes a Featurize job moves, checked against what the local runner moves.

Download mode (SageMaker File mode): the runner stages every file the shard's ManifestFile
names into the job's `/opt/ml/processing/input/data` (its sandbox), whatever the record cache
holds. Stream mode: only the manifest and index are staged; the job fetches every header and
the data files of the records it featurizes (its report's `bytes_headers_fetched` and
`bytes_fetched`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.plan.predict import make_plan
from pipeline.project.create import init_project
from tests.conftest import ROOT
from tests.pipeline.local.test_incremental import featurize_reports, flip_a_byte, last_execution, run, write_record

# `deploy.py plan` in a fresh process: its plan's records, and which SageMaker SDK modules it imported.
PLAN_IN_A_PROCESS = """
import json, sys
from pipeline.cli import main
code = main(sys.argv[1:])
sdk = sorted(name for name in sys.modules if name.split(".")[0] == "sagemaker")
print(json.dumps({"exit": code, "sdk": sdk[:3]}), file=sys.stderr)
"""

def _records(plan_json: str) -> int:
    return sum(step["records"] or 0 for step in json.loads(plan_json)["steps"])


class TestValidCachedBuild:
    """Config and code unchanged since the last build: `plan` reuses the stored definition and
    settings (no SDK import, no bundle) and still reads the data anew."""

    def test_a_warm_plan_imports_no_sdk_and_sees_new_records(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv("WAVEPIPE_CACHE", str(tmp_path / "cache"))
        records = tmp_path / "records"
        write_record(records / "r0", "r0", 0)
        project = init_project(tmp_path / "p", raw=records)
        argv = ["plan", "--config", str(project.config), "--format", "json"]
        assert main(argv) == 0  # a miss: builds, and stores the build
        assert _records(capsys.readouterr().out) == 1
        write_record(records / "r1", "r1", 1)  # the data changes, the config and the code do not
        done = subprocess.run([sys.executable, "-c", PLAN_IN_A_PROCESS, *argv], cwd=tmp_path, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert json.loads(done.stderr.strip().splitlines()[-1]) == {"exit": 0, "sdk": []}
        assert _records(done.stdout) == 2  # never stale


def staged(workdir: Path, step: str) -> dict[str, int]:
    """Bytes under each input folder of `step`'s sandbox in the last execution."""
    inputs = workdir / "executions" / last_execution(workdir)["ExecutionId"] / "jobs" / step / "algo-1" / \
        "processing" / "input"
    return {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in inputs.iterdir()
            if d.name not in ("code", "settings")}


# From a copy of the example's first run (download mode), made once by the worker of the
# pytest-xdist group that shares it.
@pytest.mark.xdist_group("example_run")
@pytest.mark.parametrize("read_mode", ["download", "stream"])
def test_plan_predicts_the_bytes_the_job_stages_or_fetches(example_copy, tmp_path, read_mode):
    workdir, overlay = example_copy, tmp_path / "mode.yaml"
    overlay.write_text(f"stages:\n  featurize:\n    read_mode: {read_mode}\n")
    # What failed, and the empty work, once (in stream mode, its first run: the record cache
    # holds the other folders, whichever mode featurized them).
    assert run(workdir, "--overlay", str(overlay), plan=False) == 0
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
