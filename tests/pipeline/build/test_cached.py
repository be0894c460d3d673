"""The definition cache behind `validate`, `definition`, `graph` and `plan`: a hit is exactly
today's build (its definition and settings files); any change of config, code or user code is a
miss; a damaged entry, or one without the settings files, is a miss; a local run's build fills it."""

from __future__ import annotations

import json

import pytest

from pipeline.build import cached
from pipeline.build.compose import build
from pipeline.config import load_config
from pipeline.project.create import init_project


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("WAVEPIPE_CACHE", str(tmp_path / "cache"))
    return init_project(tmp_path / "p")


class TestValidCache:
    def test_a_hit_is_the_build_and_needs_no_build(self, project, monkeypatch):
        cfg = load_config(project.config)
        first = cached.cached_definition(cfg)
        assert first == build(cfg).definition
        monkeypatch.setattr(cached, "_build", lambda cfg: pytest.fail("a hit must not build"))
        assert cached.cached_definition(load_config(project.config)) == first

    def test_a_hit_holds_the_settings_files_of_the_build(self, project, monkeypatch):
        cfg = load_config(project.config)
        built = build(cfg)
        cached.cached_build(cfg)
        monkeypatch.setattr(cached, "_build", lambda cfg: pytest.fail("a hit must not build"))
        found = cached.cached_build(load_config(project.config))
        settings = {uri: body for uri, body in built.assets.files.items() if not uri.startswith(built.assets.code_uri)}
        assert found.settings == settings and found.definition == built.definition
        assert json.loads(found.stage_settings("featurize"))["stage"] == "featurize"

    def test_a_full_build_is_remembered(self, project, monkeypatch):
        cfg = load_config(project.config)
        cached.remember(cfg, build(cfg))  # as `local` does after building
        monkeypatch.setattr(cached, "_build", lambda cfg: pytest.fail("what `local` built must be a hit"))
        assert cached.cached_build(cfg).definition == build(cfg).definition

    def test_config_user_code_and_builder_code_are_in_the_key(self, project, monkeypatch):
        key = cached.definition_key(load_config(project.config))
        text = project.config.read_text()
        project.config.write_text(text.replace("macroshards: 2", "macroshards: 3"))
        assert cached.definition_key(load_config(project.config)) != key
        project.config.write_text(text)
        assert cached.definition_key(load_config(project.config)) == key
        features = project.root / project.package / "features.py"
        features.write_text(features.read_text() + "\n# changed\n")  # shipped in the bundle
        assert cached.definition_key(load_config(project.config)) != key
        monkeypatch.setattr(cached, "CODE", ("pipeline",))  # stands for any change of wavepipe's own code
        assert cached.definition_key(load_config(project.config)) != key

    def test_sdk_version_is_in_the_key(self, project, monkeypatch):
        cfg = load_config(project.config)
        key = cached.definition_key(cfg)
        monkeypatch.setattr(cached, "_version", lambda name: "0.0.0" if name == "sagemaker" else "x")
        assert cached.definition_key(cfg) != key


class TestInvalidCache:
    def test_a_damaged_entry_is_rebuilt(self, project):
        cfg = load_config(project.config)
        good = cached.cached_definition(cfg)
        (entry,) = cached.cache_dir().glob("*.json")
        stored = json.loads(entry.read_text())
        entry.write_text(json.dumps({**stored, "definition": stored["definition"].replace("Featurize", "Fake")}))
        assert cached.cached_definition(cfg) == good
        entry.write_text("{not json")
        assert cached.cached_definition(cfg) == good

    def test_an_entry_without_settings_files_is_rebuilt(self, project):
        cfg = load_config(project.config)
        good = cached.cached_build(cfg)
        (entry,) = cached.cache_dir().glob("*.json")
        stored = json.loads(entry.read_text())
        del stored["settings"]  # what an older wavepipe stored
        entry.write_text(json.dumps(stored))
        assert cached.cached_build(cfg) == good
        assert "settings" in json.loads(entry.read_text())
