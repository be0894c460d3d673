"""Paths in a config are relative to the config file, whatever the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_config
from tests.conftest import EXAMPLE_CONFIG


@pytest.fixture
def project(tmp_path, example, monkeypatch) -> Path:
    """The example as `<tmp>/proj/wavepipe.yaml` with a package and a query file beside it; the
    current folder is somewhere else."""
    root = tmp_path / "proj"
    (root / "mypkg").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "labels.sql").write_text("SELECT artifact_id, label FROM waveform_labels\n")
    example["code"] = {"paths": ["mypkg"]}
    labels = example["stages"]["reconcile"]["labels"]
    labels.pop("query")
    labels.update(query_file="mypkg/labels.sql", sqlite_uri="data/labels.sqlite")
    del example["local"]["workdir"]
    (root / "wavepipe.yaml").write_text(yaml.safe_dump(example))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return root


class TestValidPaths:
    def test_resolved_against_the_config_file(self, project):
        cfg = load_config(project / "wavepipe.yaml")
        assert cfg.code.paths == [str(project / "mypkg")]
        assert cfg.stages.reconcile.labels.sqlite_uri == str(project / "data" / "labels.sqlite")
        assert cfg.local.workdir == str(project / ".wavepipe")  # the default: beside the config file

    def test_query_file_is_read_into_the_query(self, project):
        labels = load_config(project / "wavepipe.yaml").stages.reconcile.labels
        # The text, not the file's place, is what the settings file (and the cache key) holds.
        assert labels.query == "SELECT artifact_id, label FROM waveform_labels"
        assert labels.query_file == "mypkg/labels.sql"

    def test_example_keeps_the_checkouts_workdir(self):
        assert load_config(EXAMPLE_CONFIG).local.workdir == str(EXAMPLE_CONFIG.parents[1] / ".wavepipe")


class TestInvalidPaths:
    def test_query_and_query_file(self, project):
        data = yaml.safe_load((project / "wavepipe.yaml").read_text())
        data["stages"]["reconcile"]["labels"]["query"] = "SELECT 1"
        (project / "wavepipe.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as err:
            load_config(project / "wavepipe.yaml")
        assert err.value.problems == ["stages.reconcile.labels.query_file: give query or query_file, not both"]

    def test_missing_query_file(self, project):
        (project / "mypkg" / "labels.sql").unlink()
        with pytest.raises(ConfigError) as err:
            load_config(project / "wavepipe.yaml")
        assert err.value.problems == [f"stages.reconcile.labels.query_file: cannot read {project / 'mypkg/labels.sql'}: "
                                      "No such file or directory"]

    def test_code_paths_must_exist_and_be_importable(self, project):
        data = yaml.safe_load((project / "wavepipe.yaml").read_text())
        (project / "notes.txt").write_text("")
        (project / "my-pkg").mkdir()
        data["code"]["paths"] = ["nosuch", "notes.txt", "my-pkg", "mypkg", "mypkg/"]
        (project / "wavepipe.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as err:
            load_config(project / "wavepipe.yaml")
        assert err.value.problems == [
            f"code.paths[0]: {project / 'nosuch'}: no such file or folder",
            f"code.paths[1]: {project / 'notes.txt'}: list a package folder or a .py file (data files go inside a package)",
            f"code.paths[2]: {project / 'my-pkg'}: 'my-pkg' is not an importable name",
            f"code.paths[4]: {project / 'mypkg'}: ships as 'mypkg' like code.paths[3]",
        ]
