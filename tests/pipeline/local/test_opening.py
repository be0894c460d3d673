"""The lines a local run ends with stay usable from the folder the run was started in, wherever
the workdir is: a Python line that opens each result and the `report` command that finds the run."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest

from pipeline.local.opening import for_code, report_options, results_text
from pipeline.local.results import RunResult, StepResult, StepState


@pytest.fixture
def cwd(tmp_path) -> Path:
    """The folder the run was started in: beside the home folder, not above it."""
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def a_run(workdir: Path) -> RunResult:
    """A succeeded Combine whose output folder holds the summary table."""
    combine = workdir / "s3" / "bucket" / "wavepipe" / "p" / "local-1" / "combine"
    combine.mkdir(parents=True)
    pd.DataFrame({"record": ["r0"]}).to_parquet(combine / "waveform_summary.parquet")
    step = StepResult("Combine", StepState.SUCCEEDED, locations={"combine": str(combine)})
    return RunResult("local-1", "p", workdir, "local", {"Combine": step})


class TestValidOpening:
    def test_under_the_current_folder_a_path_is_relative(self, tmp_path):
        assert for_code(tmp_path / "w" / "f.parquet", tmp_path) == "w/f.parquet"

    def test_under_home_outside_the_current_folder_a_path_starts_with_the_tilde(self, cwd, home):
        assert for_code(home / "runs" / "f.parquet", cwd) == "~/runs/f.parquet"

    def test_elsewhere_a_path_is_absolute_never_dot_dot(self, tmp_path, cwd, home, monkeypatch):
        monkeypatch.chdir(cwd)
        assert for_code(Path("../w/f.parquet"), Path.cwd()) == str(tmp_path / "w" / "f.parquet")

    def test_the_opener_opens_the_table_from_the_current_folder(self, cwd, home, monkeypatch):
        run = a_run(home / "work")
        monkeypatch.chdir(cwd)  # outside the workdir: the line names it from home
        opener = next(line.strip() for line in results_text(run).splitlines() if "pd.read_parquet" in line)
        assert opener.startswith('pd.read_parquet("~/work/s3/')
        assert list(eval(opener, {"pd": pd}).record) == ["r0"]

    def test_the_report_line_names_what_the_command_needs(self, cwd, home):
        again = report_options(str(home / "p" / "wavepipe.yaml"), None, ["my overlay.yaml"], home / "my work",
                               cwd=cwd)
        line = results_text(a_run(home / "my work"), cwd, again).splitlines()[-1]
        command = line.split("`")[1]
        assert command == "wavepipe report local-1 --config ~/p/wavepipe.yaml --overlay 'my overlay.yaml' " \
                          "--workdir ~/'my work'"
        # As the shell reads it: the tilde expanded, each option one word.
        words = shlex.split(command.replace("~/", f"{home}/"))
        assert words[-2:] == ["--workdir", str(home / "my work")] and words[-4] == "--overlay"

    def test_nothing_to_add_when_the_command_finds_the_run_by_itself(self, tmp_path):
        assert report_options(None, None, [], None, cwd=tmp_path) == []
        assert "`wavepipe report local-1`" in results_text(a_run(tmp_path / "w"), tmp_path)
