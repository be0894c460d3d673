"""`wavepipe init DIR`: a project outside this repository whose pipeline runs its own functions.

One module-scoped project: `wavepipe init` (the installed command) into a temporary folder, and
one `wavepipe local` of it from a third folder; the tests read that run, then change one file
each and run again to see what reruns (the step states of the local run: Cached or Succeeded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.project.create import InitError, default_package, init_project

# Its expensive fixture (a whole local run) made once: these tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("project")

WAVEPIPE = Path(sys.executable).parent / "wavepipe"  # the console script pip installed
PACKAGE = "my_waves"
FEATURIZE_AND_AFTER = ("Featurize-shard-0001", "Featurize-shard-0002", "Combine", "Encode")


def local_run(config: Path, cwd: Path) -> dict:
    """`wavepipe local --config <config>` with `cwd` as the current folder; the run's
    execution.json (step states, definition digest)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        assert main(["local", "--config", str(config)]) == 0
    runs = [json.loads(p.read_text()) for p in (config.parent / ".wavepipe" / "executions").glob("*/execution.json")]
    return max(runs, key=lambda r: r["Started"])


def states(run: dict) -> dict[str, str]:
    return {name: step["State"] for name, step in run["Steps"].items()}


def output(run: dict, step: str, name: str, workdir: Path) -> Path:
    uri = run["Steps"][step]["Outputs"][name]
    return workdir / "s3" / uri.removeprefix("s3://")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("init")
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    root = base / "projects" / "my-waves"
    proc = subprocess.run([str(WAVEPIPE), "init", str(root)], cwd=elsewhere, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    first = local_run(root / "wavepipe.yaml", elsewhere)
    # Once more: what failed is tried again, and an untouched shard's empty work runs once (a
    # cache hit from then on): the reruns below start from a settled cache.
    local_run(root / "wavepipe.yaml", elsewhere)
    return root, elsewhere, first


class TestValidInit:
    def test_writes_config_package_tests_and_readme(self, tmp_path):
        project = init_project(tmp_path / "Wave Lab")
        assert project.package == "wave_lab"
        written = {p.relative_to(project.root).as_posix() for p in project.files}
        assert {"wavepipe.yaml", "README.md", ".gitignore", "pyproject.toml", "wave_lab/__init__.py",
                "wave_lab/features.py", "wave_lab/process.py", "wave_lab/encode.py", "wave_lab/labels.sql",
                "tests/test_features.py", "tests/test_process.py", "tests/test_encode.py",
                "tests/test_labels.py"} == written
        assert "{{" not in "".join(p.read_text() for p in project.files)

    @pytest.mark.parametrize("name", ["records #1", "ward: 3", 'the "icu" \\ data', "données"])
    def test_raw_takes_an_absolute_folder_of_any_name(self, tmp_path, monkeypatch, name):
        """The folder, named by its absolute path from a third folder, is exactly the config's
        input: a `#` does not start a comment, a `: ` does not make a mapping."""
        from pipeline.config import load_config

        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        (folder / "r0.hea").write_text("r0 1 125 1250\n")
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        project = init_project(tmp_path / "p", raw=str(folder))
        cfg = load_config(project.config)
        assert cfg.parameters.input_uri == f"file://{folder}"
        assert cfg.pipeline.description == f"WFDB waveform features of {folder}"

    def test_generated_tests_pass(self, project):
        root, _, _ = project
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                              capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "5 passed" in proc.stdout


class TestInvalidInit:
    def test_refuses_to_overwrite(self, tmp_path):
        init_project(tmp_path / "p", package="mine")
        with pytest.raises(InitError, match=r"would overwrite .*wavepipe.yaml.* \(use --force\)"):
            init_project(tmp_path / "p", package="mine")
        init_project(tmp_path / "p", package="mine", force=True)

    @pytest.mark.parametrize("package", ["My-Waves", "steps", "class"])
    def test_bad_package_name(self, tmp_path, package):
        with pytest.raises(InitError, match=f"--package {package!r}"):
            init_project(tmp_path / "p", package=package)

    def test_cli_reports_usage_error(self, tmp_path, capsys):
        assert main(["init", str(tmp_path / "p"), "--package", "steps"]) == 2
        assert "that name is taken" in capsys.readouterr().err

    def test_default_package_avoids_taken_names(self, tmp_path):
        assert default_package(tmp_path / "steps") == "steps_functions"
        assert default_package(tmp_path / "30-days") == "p_30_days"


class TestValidProjectRun:
    def test_runs_end_to_end_in_the_projects_workdir(self, project):
        root, elsewhere, first = project
        assert set(states(first).values()) == {"Succeeded"}
        assert not (elsewhere / ".wavepipe").exists()  # the workdir is beside the config, not in the cwd

    def test_user_feature_column_in_the_combined_summary(self, project):
        root, _, first = project
        summary = pd.read_parquet(output(first, "Combine", "combine", root / ".wavepipe") / "waveform_summary.parquet")
        assert summary["peak_to_peak"].notna().any()
        valid = summary.dropna(subset=["peak_to_peak"])
        assert ((valid["max"] - valid["min"]) == valid["peak_to_peak"]).all()

    def test_process_func_file_for_every_artifact(self, project):
        root, _, first = project
        reconcile = output(first, "Reconcile", "reconcile", root / ".wavepipe")
        artifacts = pd.read_parquet(reconcile / "labels.parquet")["artifact_id"].tolist()
        experiment = root / ".wavepipe/s3/my-waves-data/wavepipe/my-waves/experiments/first/data/reconciled_artifacts"
        for artifact in artifacts:
            written = json.loads((experiment / artifact / "label.json").read_text())
            assert written["artifact_id"] == artifact and f"{artifact}.hea" in written["files"]
        assert len(artifacts) == 24

    def test_encode_data_drops_are_counted(self, project):
        root, _, first = project
        workdir = root / ".wavepipe"
        report = json.loads((output(first, "Encode", "encode", workdir) / "full_dataset" / "report.json").read_text())
        summary = pd.read_parquet(output(first, "Combine", "combine", workdir) / "waveform_summary.parquet")
        waves = summary[~summary["is_numerics"].astype(bool)].drop_duplicates(["artifact", "segment"])
        seconds = waves.groupby("artifact")["duration_s"].sum()
        short = set(seconds[seconds < 30].index)  # min_duration_s in the generated wavepipe.yaml
        dropped = set(report["encode_data"]["dropped_artifact_ids"])
        assert short and short <= dropped
        assert report["encode_data"]["dropped_none"] == len(dropped) == 24 - report["encode_data"]["rows_out"]


class TestProjectReruns:
    def test_readme_change_reruns_nothing(self, project):
        root, elsewhere, first = project
        (root / "README.md").write_text((root / "README.md").read_text() + "\nA note.\n")
        run = local_run(root / "wavepipe.yaml", elsewhere)
        assert run["DefinitionDigest"] == first["DefinitionDigest"]  # the same bundle, the same definition
        # Featurize and Encode are cache hits. Reconcile and Combine are never cached (they read what
        # their cache keys cannot see) and run in every execution (README "Caching: what runs again").
        assert states(run) == {"Reconcile": "Succeeded", "Featurize-shard-0001": "Cached",
                               "Featurize-shard-0002": "Cached", "Combine": "Succeeded", "Encode": "Cached"}

    def test_feature_function_change_reruns_featurize_and_after(self, project):
        root, elsewhere, first = project
        features = root / PACKAGE / "features.py"
        features.write_text(features.read_text().replace(
            '        row["peak_to_peak"] = row["max"] - row["min"]\n',
            '        row["peak_to_peak"] = row["max"] - row["min"]\n        row["mid_range"] = (row["max"] + row["min"]) / 2\n'))
        run = local_run(root / "wavepipe.yaml", elsewhere)
        assert run["DefinitionDigest"] != first["DefinitionDigest"]
        assert {step: states(run)[step] for step in FEATURIZE_AND_AFTER} == dict.fromkeys(FEATURIZE_AND_AFTER, "Succeeded")
        summary = pd.read_parquet(output(run, "Combine", "combine", root / ".wavepipe") / "waveform_summary.parquet")
        assert "mid_range" in summary.columns
