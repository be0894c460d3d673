"""Project-first: a command finds the nearest `wavepipe.yaml`, the checkout falls back to the
embedded example (as `python deploy.py`), and anywhere else it says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import DEFAULT_CONFIG, UsageError, _found_here, config_path, find_config, main
from pipeline.project.create import init_project
from tests.conftest import ROOT


class TestValidDiscovery:
    def test_nearest_project_config_from_a_subfolder(self, tmp_path, monkeypatch):
        project = init_project(tmp_path / "my-waves")
        inner = project.root / "my_waves"
        monkeypatch.chdir(inner)
        notes = []
        assert config_path(None, note=notes.append) == str(project.config.resolve())
        assert "nearest wavepipe.yaml" in notes[0]  # said, since it is not in the current folder

    def test_in_the_project_folder_it_is_silent(self, tmp_path, monkeypatch):
        project = init_project(tmp_path / "p")
        monkeypatch.chdir(project.root)
        notes = []
        assert Path(config_path(None, note=notes.append)) == project.config.resolve() and notes == []

    def test_given_config_wins(self, tmp_path, monkeypatch):
        init_project(tmp_path / "p")
        monkeypatch.chdir(tmp_path / "p")
        assert config_path("other.yaml") == "other.yaml"

    def test_checkout_runs_the_embedded_example_and_says_so(self, monkeypatch):
        monkeypatch.chdir(ROOT / "docs")
        notes = []
        assert config_path(None, note=notes.append) == DEFAULT_CONFIG
        assert "embedded example config/example.yaml" in notes[0]

    def test_deploy_py_falls_back_to_the_example_anywhere(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        assert config_path(None, embedded_default=True, note=lambda _: None) == DEFAULT_CONFIG


    def test_whether_the_next_command_here_finds_the_config_by_itself(self, tmp_path, monkeypatch):
        """What `local`'s last line needs to add to `wavepipe report`: --config or not."""
        project = init_project(tmp_path / "p")
        monkeypatch.chdir(project.root)
        assert _found_here(str(project.config)) and not _found_here(DEFAULT_CONFIG)
        monkeypatch.chdir(tmp_path)  # deploy.py runs the example from here; `wavepipe` would not
        assert not _found_here(DEFAULT_CONFIG) and not _found_here(str(project.config))
        monkeypatch.chdir(ROOT / "docs")
        assert _found_here(DEFAULT_CONFIG)


class TestInvalidDiscovery:
    def test_no_project_says_what_to_do(self, tmp_path, monkeypatch, capsys):
        monkeypatch.chdir(tmp_path)
        assert find_config() is None
        with pytest.raises(UsageError, match="wavepipe init DIR"):
            config_path(None)
        assert main(["iam-policy"]) == 2
        err = capsys.readouterr().err
        assert f"no wavepipe.yaml in {tmp_path}" in err and "--config FILE" in err
