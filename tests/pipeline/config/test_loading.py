"""Loading a config: overlays, key paths in errors, old spellings, the CLI's exit code."""

from __future__ import annotations

import copy

import yaml

from pipeline.cli import main
from pipeline.config import load_config, validate_config
from tests.conftest import EXAMPLE_CONFIG
from tests.pipeline.config.conftest import problems_of


class TestValidLoading:
    def test_overlay_merges_key_by_key(self):
        cfg = load_config(EXAMPLE_CONFIG, env="dev")
        assert cfg.aws.bucket == "wavepipe-dev"
        assert cfg.aws.region == "us-east-1"  # untouched keys survive
        assert cfg.stages.featurize.instance_type == "ml.m5.xlarge"
        assert cfg.stages.featurize.macroshards == 2
        assert cfg.schedules == []

    def test_explicit_overlay_file(self, tmp_path):
        over = tmp_path / "over.yaml"
        over.write_text("pipeline: {version: '9.9'}\n")
        assert load_config(EXAMPLE_CONFIG, overlays=[over]).pipeline.version == "9.9"

    def test_overlay_null_leaves_a_stage_out(self, tmp_path):
        over = tmp_path / "over.yaml"
        over.write_text("stages: {encode: null}\n")
        assert list(load_config(EXAMPLE_CONFIG, overlays=[over]).stages.enabled()) == \
            ["reconcile", "featurize", "combine"]

    def test_prefixes_as_strings_or_named(self, raw_prefixes):
        raw_prefixes["stages"]["featurize"]["prefixes"] = ["30", {"name": "g31", "prefix": "31/"}]
        assert validate_config(raw_prefixes).stages.featurize.shard_names() == ["30", "g31"]


class TestInvalidLoading:
    def test_unknown_key_names_its_path(self, example):
        example["stages"]["featurize"]["macroshard"] = 3
        assert problems_of(example) == ["stages.featurize.macroshard: unknown key; did you mean macroshards?"]

    def test_unknown_key_far_from_any_lists_the_keys(self, example):
        example["cache"]["zzz"] = 1
        assert problems_of(example) == ["cache.zzz: unknown key; the keys here are enabled, expire_after"]

    def test_unknown_key_in_a_list_item_and_in_a_stage_setting(self, example):
        example["schedules"][0]["timezon"] = "UTC"
        example["stages"]["reconcile"]["labels"]["querry"] = "SELECT 1"
        assert problems_of(example) == ["stages.reconcile.labels.querry: unknown key; did you mean query?",
                                        "schedules[0].timezon: unknown key; did you mean timezone?"]

    def test_every_problem_at_once_old_spellings_models_and_rules(self, example):
        example["stages"]["encode"]["enabled"] = True  # an old spelling, named once (not also as unknown)
        example["aws"]["region"] = "moon"  # a model problem
        example["stages"]["featurize"]["macroshard"] = 3  # a misspelt key
        assert [p.split(":")[0] for p in problems_of(example)] == [
            "stages.encode.enabled", "aws.region", "stages.featurize.macroshard"]

    def test_rules_and_function_references_reported_together(self, example):
        example["cache"]["expire_after"] = "thirty days"
        example["stages"]["featurize"]["feature_function"] = "steps.recipes.waveform:no_such_function"
        assert [p.split(":")[0] for p in problems_of(example)] == ["cache.expire_after",
                                                                  "stages.featurize.feature_function"]

    def test_nested_list_index_in_path_without_union_noise(self, raw_prefixes):
        raw_prefixes["stages"]["featurize"]["prefixes"] = ["30", "31", "32", {"name": "x", "prefx": "33"}]
        assert problems_of(raw_prefixes) == ["stages.featurize.prefixes[3].prefix: Field required",
                                             "stages.featurize.prefixes[3].prefx: unknown key; did you mean prefix?"]

    def test_every_model_problem_reported(self, example):
        example["aws"]["role_arn"] = "not-an-arn"
        example["schedules"][0]["expression"] = "every day"
        assert [p.split(":")[0] for p in problems_of(example)] == ["aws.role_arn", "schedules[0].expression"]

    def test_macroshards_out_of_range(self, example):
        example["stages"]["featurize"]["macroshards"] = 251
        assert problems_of(example) == [
            "stages.featurize.macroshards: give a count from 1 to 250 (one step each in the definition, "
            "which is capped at 1 MiB), or 'auto' (decided at run time, any count), got 251"]

    def test_old_spelling_prefix_list(self, raw_prefixes):
        del raw_prefixes["stages"]["featurize"]["prefixes"]
        raw_prefixes["stages"]["featurize"]["macroshards"] = ["30"]
        assert problems_of(raw_prefixes) == [
            "stages.featurize.macroshards: a list of key prefixes is now written `prefixes: [...]`; "
            "`macroshards` is a count"]

    def test_old_spelling_enabled(self, example):
        example["stages"]["encode"]["enabled"] = False
        assert problems_of(example) == [
            "stages.encode.enabled: no longer a key; a stage is in the pipeline when its section is there: "
            "delete the section to leave encode out (in an overlay: `encode: null`)"]

    def test_old_spelling_reconcile_reload(self, example):
        example["stages"]["reconcile"]["reload"] = True
        assert problems_of(example) == [
            "stages.reconcile.reload: no longer a key; the Reload pipeline parameter decides "
            "(its default is parameters.reload)"]

    def test_cli_exit_code_2_names_file_and_key(self, tmp_path, capsys, example):
        bad = copy.deepcopy(example)
        bad["stages"]["combine"]["colour"] = "blue"
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(bad))
        assert main(["definition", "--config", str(path)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {path}: stages.combine.colour: unknown key; ")

    def test_missing_file(self, tmp_path, capsys):
        assert main(["validate", "--config", str(tmp_path / "nope.yaml")]) == 2
        assert capsys.readouterr().err == f"error: {tmp_path / 'nope.yaml'}: file not found\n"

    def test_not_yaml(self, tmp_path, capsys):
        path = tmp_path / "x.yaml"
        path.write_text("a: [unclosed\n")
        assert main(["validate", "--config", str(path)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {path}: not valid YAML: ")
