"""Paths in a config are relative to the config file, whatever the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_config
from pipeline.config.paths import local_inputs
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

    def test_a_file_uri_for_the_labels_is_the_files_path(self, project):
        data = yaml.safe_load((project / "wavepipe.yaml").read_text())
        data["stages"]["reconcile"]["labels"]["sqlite_uri"] = f"file://{project}/data/labels.sqlite"
        (project / "wavepipe.yaml").write_text(yaml.safe_dump(data))
        assert load_config(project / "wavepipe.yaml").stages.reconcile.labels.sqlite_uri == \
            str(project / "data" / "labels.sqlite")

    def test_local_inputs_are_named_by_key(self, project):
        data = yaml.safe_load((project / "wavepipe.yaml").read_text())
        data["parameters"]["input_uri"] = "raw"
        (project / "wavepipe.yaml").write_text(yaml.safe_dump(data))
        assert local_inputs(load_config(project / "wavepipe.yaml")) == {
            "parameters.input_uri": project / "raw", "stages.reconcile.labels.sqlite_uri": project / "data" / "labels.sqlite"}
        assert local_inputs(load_config(EXAMPLE_CONFIG)) == {}  # every input on S3

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


class TestValidContainment:
    def test_outside_allowed_by_name(self, project, tmp_path):
        shared = tmp_path / "shared"
        (shared / "sharedpkg").mkdir(parents=True)
        (shared / "sharedpkg" / "__init__.py").write_text("")
        (shared / "q.sql").write_text("SELECT artifact_id, label FROM t\n")
        data = yaml.safe_load((project / "wavepipe.yaml").read_text())
        data["code"] = {"paths": ["mypkg", "../shared/sharedpkg"], "allow_outside": ["../shared"]}
        data["stages"]["reconcile"]["labels"]["query_file"] = str(shared / "q.sql")
        (project / "wavepipe.yaml").write_text(yaml.safe_dump(data))
        cfg = load_config(project / "wavepipe.yaml")
        assert cfg.code.paths[1] == str(shared / "sharedpkg")
        assert cfg.stages.reconcile.labels.query == "SELECT artifact_id, label FROM t"

    def test_data_inputs_may_be_anywhere(self, project, tmp_path):
        data = yaml.safe_load((project / "wavepipe.yaml").read_text())
        data["stages"]["reconcile"]["labels"]["sqlite_uri"] = str(tmp_path / "elsewhere" / "labels.sqlite")
        (project / "wavepipe.yaml").write_text(yaml.safe_dump(data))
        assert load_config(project / "wavepipe.yaml").stages.reconcile.labels.sqlite_uri.endswith("labels.sqlite")


class TestInvalidContainment:
    def _problems(self, project, edit) -> list[str]:
        data = yaml.safe_load((project / "wavepipe.yaml").read_text())
        edit(data)
        (project / "wavepipe.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as err:
            load_config(project / "wavepipe.yaml")
        return err.value.problems

    def test_query_file_etc_passwd_refused_unread(self, project):
        def edit(data):
            data["stages"]["reconcile"]["labels"]["query_file"] = "/etc/passwd"
        assert self._problems(project, edit) == [
            f"stages.reconcile.labels.query_file: /etc/passwd is outside the project ({project}, the config file's "
            "folder): move it into the project, or name it in code.allow_outside to allow it"]

    def test_code_paths_etc_ssl_refused(self, project):
        def edit(data):
            data["code"]["paths"] = ["mypkg", "/etc/ssl", "../elsewhere"]
        assert [p.split(" (")[0] for p in self._problems(project, edit)] == [
            "code.paths[1]: /etc/ssl is outside the project",
            f"code.paths[2]: {project.parent / 'elsewhere'} is outside the project"]

    def test_a_link_inside_pointing_outside_refused(self, project, tmp_path):
        (tmp_path / "secret.sql").write_text("SELECT 1")
        (project / "linked.sql").symlink_to(tmp_path / "secret.sql")
        def edit(data):
            data["stages"]["reconcile"]["labels"]["query_file"] = "linked.sql"
        (line,) = self._problems(project, edit)
        assert line.startswith(f"stages.reconcile.labels.query_file: {tmp_path / 'secret.sql'} is outside the project")

    def test_allowing_a_sibling_does_not_allow_its_prefix_twin(self, project, tmp_path):
        (tmp_path / "shared-evil").mkdir()
        (tmp_path / "shared-evil" / "q.sql").write_text("SELECT 1")
        def edit(data):
            data["code"]["allow_outside"] = ["../shared"]
            data["stages"]["reconcile"]["labels"]["query_file"] = "../shared-evil/q.sql"
        assert self._problems(project, edit)[0].startswith("stages.reconcile.labels.query_file: ")
