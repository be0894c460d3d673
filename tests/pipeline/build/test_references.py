"""Function references are checked at build time, before N jobs each fail on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.build.compose import build
from pipeline.config import ConfigError, validate_config
from pipeline.build.references import function_problems
from tests.conftest import EXAMPLE_CONFIG, ROOT



@pytest.fixture
def example() -> dict:
    return yaml.safe_load((EXAMPLE_CONFIG).read_text())


class TestValidReferences:
    @pytest.mark.parametrize("name", ["example.yaml", "documents.yaml", "mimic3wdb.yaml"])
    def test_shipped_configs(self, name):
        cfg = validate_config(yaml.safe_load((ROOT / "config" / name).read_text()))
        assert function_problems(cfg) == []

    def test_own_image_may_provide_other_modules(self, example):
        example["image"]["uri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/wavepipe:1"
        example["stages"]["featurize"]["feature_function"] = "mycompany.features:summarize"
        assert function_problems(validate_config(example)) == []


@pytest.fixture
def with_user_code(example, tmp_path) -> dict:
    """The example calling `mypkg` (beside it in `tmp_path`), whose import would fail: the
    checks must never import user code."""
    pkg = tmp_path / "mypkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (pkg / "features.py").write_text("import no_such_dependency\n\ndef summarize(record, **options):\n    return []\n")
    (pkg / "sub" / "__init__.py").write_text("from mypkg.features import summarize as encode\n")
    (tmp_path / "helpers.py").write_text("def process(row, files, experiment_uri, reload):\n    pass\n")
    example["code"] = {"paths": [str(pkg), str(tmp_path / "helpers.py")]}
    example["stages"]["featurize"]["feature_function"] = "mypkg.features:summarize"
    example["stages"]["reconcile"]["process_func"] = "helpers:process"
    example["stages"]["encode"]["encode_data"] = "mypkg.sub:encode"
    return example


class TestValidUserReferences:
    def test_found_in_code_paths_without_importing(self, with_user_code, tmp_path):
        assert function_problems(validate_config(with_user_code, base_dir=tmp_path)) == []


class TestInvalidUserReferences:
    def test_error_names_key_file_and_function(self, with_user_code, tmp_path):
        with_user_code["stages"]["featurize"]["feature_function"] = "mypkg.features:nosuch"
        with_user_code["stages"]["reconcile"]["process_func"] = "helpers.more:process"
        with_user_code["stages"]["encode"]["encode_data"] = "mypkg.other:encode"
        with pytest.raises(ConfigError) as err:
            validate_config(with_user_code, "proj/wavepipe.yaml", base_dir=tmp_path)
        pkg = tmp_path / "mypkg"
        assert str(err.value).splitlines() == [
            f"proj/wavepipe.yaml: stages.reconcile.process_func: 'helpers.more:process': no module 'helpers.more' in "
            f"code.paths (looked for {tmp_path / 'helpers.py'} (a single-file module has no submodules))",
            f"proj/wavepipe.yaml: stages.featurize.feature_function: 'mypkg.features:nosuch': {pkg / 'features.py'} "
            "defines no 'nosuch'",
            f"proj/wavepipe.yaml: stages.encode.encode_data: 'mypkg.other:encode': no module 'mypkg.other' in code.paths "
            f"(looked for {pkg / 'other.py'} or {pkg / 'other' / '__init__.py'})",
        ]


class TestInvalidReferences:
    def test_missing_module_and_function(self, example):
        example["stages"]["featurize"]["feature_function"] = "steps.featurize.nosuch:f"
        example["stages"]["encode"]["encode_data"] = "steps.recipes.waveform:nosuch"
        with pytest.raises(ConfigError) as err:  # the config edge reports them, by key path
            validate_config(example)
        found = err.value.problems
        assert found == [
            "stages.featurize.feature_function: 'steps.featurize.nosuch:f': no module 'steps.featurize.nosuch' under steps/",
            "stages.encode.encode_data: 'steps.recipes.waveform:nosuch': module 'steps.recipes.waveform' defines no 'nosuch'",
        ]

    def test_outside_the_bundle_on_the_managed_image(self, example):
        example["stages"]["reconcile"]["process_func"] = "mycompany.labels:write_truth"
        with pytest.raises(ConfigError, match="stages.reconcile.process_func: 'mycompany.labels:write_truth' is not in the code bundle"):
            build(validate_config(example))
