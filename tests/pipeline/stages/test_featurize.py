"""Featurize steps: one per macroshard (after Reconcile) or per prefix (raw folders)."""

from __future__ import annotations

import pytest

from pipeline.build.compose import build
from pipeline.config import validate_config
from tests.conftest import EXAMPLE_CONFIG
from tests.pipeline.stages.conftest import (
    BASE, MIMIC_BASE, build_with, join, normalized, param, s3_in, s3_out, shard_uri, step)

DATA, OUT = "/opt/ml/processing/input/data", "/opt/ml/processing/output/features"
INDEX = "/opt/ml/processing/input/index"
SHARD = "/opt/ml/processing/input/shard"


def experiment(base: str) -> dict:
    return join(base, "experiments", param("ExperimentName"))


def featurize_step(name: str, place: dict, base: str, **extra) -> dict:
    """A Featurize step over a published work shard: its manifest and shard.json in (the name
    and folders come from the place's shard.json), features out."""
    inputs = [s3_in("data", join(place, "shard.manifest"), DATA, data_type="ManifestFile"),
              s3_in("shard", join(place, "shard.json"), SHARD)]
    return step(
        name, "featurize",
        ["--input", DATA, "--output", OUT, "--shard-file", f"{SHARD}/shard.json",
         "--record-cache", join(base, "record-cache", "<key>")],
        inputs=inputs, outputs=[s3_out("features", join(place, "features", "<key>"), OUT)],
        base=base, **extra)


class TestValidFeaturize:
    def test_whole_step_after_reconcile(self, example_built):
        expected = featurize_step("Featurize-shard-0002", shard_uri(1), BASE)
        assert normalized(example_built)["Featurize-shard-0002"] == expected

    def test_whole_step_over_a_prefix(self, mimic_built):
        # The listing step publishes each prefix as a shard; Featurize reads it like Reconcile's.
        expected = featurize_step("Featurize-37", shard_uri(7, "Listing"), MIMIC_BASE, tags=False, volume=1024)
        assert normalized(mimic_built)["Featurize-37"] == expected

    def test_the_listing_step(self, mimic_built):
        listing = normalized(mimic_built)["Listing"]
        args = listing["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert args[:7] == ["steps.listing", "--source-uri", param("InputUri"), "--experiment-uri",
                            experiment(MIMIC_BASE), "--output", "/opt/ml/processing/output/listing"]
        # The record cache: tonight's work is what it lacks (steps/work.py).
        assert args[7:-2] == ["--record-cache", join(MIMIC_BASE, "record-cache", "<key>"),
                              "--prefix", *[f"{g}={g}" for g in range(30, 40)]]
        assert listing["CacheConfig"]["Enabled"] is False  # an S3 listing: what no cache key sees

    def test_one_step_per_shard(self, example_built, mimic_built):
        assert [n for n in normalized(example_built) if n.startswith("Featurize")] == \
            ["Featurize-shard-0001", "Featurize-shard-0002"]
        assert [n for n in normalized(mimic_built) if n.startswith("Featurize")] == \
            [f"Featurize-{g}" for g in range(30, 40)]


ITEM = "ForEach.CurrentItem"


@pytest.fixture(scope="module")
def auto_built():
    import yaml

    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["stages"]["featurize"].update(macroshards="auto", target_shard_size="20GB", max_concurrency=30)
    return build(validate_config(data))


class TestValidAutoShards:
    def test_one_for_each_step_whose_body_reads_the_bare_item(self, auto_built):
        # The item is a plain string, the shard's place: no field access; the job reads the
        # shard's name from the place's shard.json.
        steps = normalized(auto_built)
        body = featurize_step("FeaturizeShard", {"Get": ITEM}, BASE)
        assert steps["Featurize"] == {
            "Name": "Featurize", "Type": "ForEach",
            "Arguments": {
                "IterableItems": {"Std:JsonGet": {
                    "Path": "shard_items", "PropertyFile": {"Get": "Steps.Reconcile.PropertyFiles.ReconcileReport"}}},
                "MaxConcurrency": 30,
                "ForEachBody": [body],
            },
        }

    def test_reconcile_gets_the_target_and_combine_waits_for_the_for_each(self, auto_built):
        steps = normalized(auto_built)
        args = steps["Reconcile"]["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert args[args.index("--target-shard-bytes") + 1] == "20000000000" and "--macroshards" not in args
        assert steps["Combine"]["DependsOn"] == ["Featurize"]
        assert list(steps) == ["Reconcile", "Featurize", "Combine", "Encode"]

    def test_the_definition_validates(self, auto_built):
        import json

        from pipeline.definition.validate import check_definition

        assert check_definition(json.loads(auto_built.definition)) == []


class TestValidAutoShardsWithoutReconcile:
    def test_the_listing_step_splits_the_input_and_the_for_each_reads_its_report(self):
        import yaml

        data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        del data["stages"]["reconcile"], data["stages"]["encode"]
        data["stages"]["featurize"].update(macroshards="auto", target_shard_size="10GB")
        steps = normalized(build(validate_config(data)))
        assert list(steps) == ["Listing", "Featurize", "Combine"]
        args = steps["Listing"]["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert args[7:-2] == ["--target-shard-bytes", "10000000000",  # no --prefix: the whole InputUri
                              "--record-cache", join(BASE, "record-cache", "<key>")]
        assert steps["Featurize"]["Arguments"]["IterableItems"] == {"Std:JsonGet": {
            "Path": "shard_items", "PropertyFile": {"Get": "Steps.Listing.PropertyFiles.ListingReport"}}}


class TestInvalidAutoShards:
    @pytest.mark.parametrize("featurize, reconcile, message", [
        ({"macroshards": 2, "max_concurrency": 5}, True, "stages.featurize.max_concurrency: only with macroshards: auto"),
        ({"macroshards": 2, "target_shard_size": "1GB"}, True,
         "stages.featurize.target_shard_size: only with macroshards: auto"),
        ({"macroshards": "auto", "prefixes": ["30"]}, True, "stages.featurize.prefixes: with reconcile and "
         "macroshards: auto, Reconcile shards the artifacts"),
        ({"macroshards": 4}, False, "stages.featurize.macroshards: a count needs reconcile"),
    ])
    def test_what_only_auto_takes(self, featurize, reconcile, message):
        import yaml

        from pipeline.config.errors import ConfigError

        data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        data["stages"]["featurize"].update(featurize)
        if not reconcile:
            del data["stages"]["reconcile"]
            data["stages"]["featurize"].pop("prefixes", None)
        with pytest.raises(ConfigError, match=message):
            validate_config(data)

    def test_a_target_of_nothing_is_refused(self):
        import yaml

        from pipeline.config.errors import ConfigError

        data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        data["stages"]["featurize"].update(macroshards="auto", target_shard_size=0)
        with pytest.raises(ConfigError, match="stages.featurize.target_shard_size: Input should be greater than or "
                                              "equal to 1000"):
            validate_config(data)

    def test_max_concurrency_is_at_most_fifty(self):
        import yaml

        from pipeline.config.errors import ConfigError

        data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        data["stages"]["featurize"].update(macroshards="auto", max_concurrency=51)
        with pytest.raises(ConfigError, match="stages.featurize.max_concurrency: Input should be less than or equal to 50"):
            validate_config(data)


class TestValidStreamedFeaturize:
    def test_only_the_manifest_and_index_are_staged_and_two_instances_allowed(self):
        import yaml

        from tests.conftest import EXAMPLE_CONFIG

        stages = yaml.safe_load(EXAMPLE_CONFIG.read_text())["stages"]
        stages["featurize"].update(read_mode="stream", instance_count=2)
        built = normalized(build_with({"stages": stages}))["Featurize-shard-0002"]
        manifest, place = "/opt/ml/processing/input/manifest", shard_uri(1)
        expected = step(
            "Featurize-shard-0002", "featurize",
            ["--manifest", f"{manifest}/shard.manifest", "--index", f"{INDEX}/index.json", "--output", OUT,
             "--shard-file", f"{SHARD}/shard.json", "--hosts", "2", "--record-cache", join(BASE, "record-cache", "<key>")],
            inputs=[s3_in("manifest", join(place, "shard.manifest"), manifest),
                    s3_in("index", join(place, "index.json"), INDEX), s3_in("shard", join(place, "shard.json"), SHARD)],
            outputs=[s3_out("features", join(place, "features", "<key>"), OUT)])
        expected["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 2
        assert built == expected

    def test_download_and_stream_share_the_record_cache(self, example_built):
        import json

        import yaml

        stages = yaml.safe_load(EXAMPLE_CONFIG.read_text())["stages"]
        stages["featurize"].update(read_mode="stream", instance_count=2)

        def shard(built) -> dict:  # not normalized: the keys themselves are compared
            return next(s for s in json.loads(built.definition)["Steps"] if s["Name"] == "Featurize-shard-0001")

        streamed, downloaded = shard(build_with({"stages": stages})), shard(example_built)

        def record_cache(step):
            argv = step["Arguments"]["AppSpecification"]["ContainerArguments"]
            return argv[argv.index("--record-cache") + 1]["Std:Join"]["Values"][-1]

        def features(step):
            return step["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]["Std:Join"]["Values"][-1]

        assert record_cache(streamed) == record_cache(downloaded)
        assert features(streamed) != features(downloaded)  # the per-host layout has a folder of its own


def record_cache_place(built, name: str = "Featurize-shard-0001") -> list:
    """The values of the step's `--record-cache` Join: [scope, "record-cache", key]."""
    import json

    step_ = next(s for s in json.loads(built.definition)["Steps"] if s["Name"] == name)
    argv = step_["Arguments"]["AppSpecification"]["ContainerArguments"]
    return argv[argv.index("--record-cache") + 1]["Std:Join"]["Values"]


def example_data() -> dict:
    import yaml

    return yaml.safe_load(EXAMPLE_CONFIG.read_text())


def built_key(data: dict) -> str:
    return record_cache_place(build(validate_config(data)))[-1]


class TestValidRecordCacheKey:
    """The record cache's key covers what decides a record's rows, and nothing else: editing
    Encode, a README or a module that does not featurize must not featurize terabytes again."""

    def test_shared_by_every_experiment_of_the_pipeline(self, example_built):
        assert record_cache_place(example_built)[:2] == [BASE, "record-cache"]  # no ExperimentName in it

    def test_one_per_experiment_when_the_config_says_so(self):
        data = example_data()
        data["stages"]["featurize"]["record_cache_scope"] = "experiment"
        assert record_cache_place(build(validate_config(data)))[:2] == [experiment(BASE), "record-cache"]

    def test_settings_of_other_stages_leave_it_featurize_settings_change_it(self, example_built):
        key = record_cache_place(example_built)[-1]
        data = example_data()
        data["stages"]["encode"]["seed"] = 1234
        data["stages"]["combine"] = {**(data["stages"].get("combine") or {}), "run_when_shards_fail": True}
        assert built_key(data) == key
        data["stages"]["featurize"]["feature_options"] = {"window_samples": 4096}
        assert built_key(data) != key
        data = example_data()
        data["stages"]["featurize"]["environment"] = {"FEATURE_FLAG": "1"}
        assert built_key(data) != key

    def test_code_outside_the_featurize_code_leaves_it(self, example_built, monkeypatch):
        import pipeline.build.bundle as bundle

        key, code = record_cache_place(example_built)[-1], example_built.assets.code_hash
        entries = bundle.bundle_entries

        def edited(name: str) -> tuple[str, str]:
            monkeypatch.setattr(bundle, "bundle_entries", lambda extra=None: {**entries(extra), name: b"# edited\n"})
            built = build(validate_config(example_data()))
            return record_cache_place(built)[-1], built.assets.code_hash

        for name in ("steps/encode/run.py", "steps/README.md", "steps/combine/combine.py", "steps/recipes/new.py"):
            got_key, got_code = edited(name)
            assert got_key == key and got_code != code, name  # a new bundle, the same record cache
        for name in ("steps/featurize/summary.py", "steps/featurize/new.py"):
            assert edited(name)[0] != key, name

    def test_the_users_feature_package_is_in_it_the_rest_of_their_code_not(self, tmp_path):
        for pkg in ("feats", "enc"):
            (tmp_path / pkg).mkdir()
            (tmp_path / pkg / "__init__.py").write_text("")
        (tmp_path / "feats" / "rows.py").write_text("def summarize(record, **options):\n    return []\n")
        (tmp_path / "enc" / "model.py").write_text("def encode(instance, options):\n    return None\n")
        data = example_data()
        data["code"] = {"paths": [str(tmp_path / "feats"), str(tmp_path / "enc")], "allow_outside": [str(tmp_path)]}
        data["stages"]["featurize"]["feature_function"] = "feats.rows:summarize"
        data["stages"]["encode"]["encode_data"] = "enc.model:encode"
        key = built_key(data)
        (tmp_path / "enc" / "model.py").write_text("def encode(instance, options):\n    return {}\n")
        assert built_key(data) == key
        (tmp_path / "feats" / "rows.py").write_text("def summarize(record, **options):\n    return [{}]\n")
        edited = built_key(data)
        assert edited != key
        data["code"]["requirements"] = ["numpy==1.26.4"]  # installed after the lock's: it may replace a library
        assert built_key(data) != edited

    def test_the_numeric_libraries_pins_are_in_it_other_pins_not(self, example_built, monkeypatch, tmp_path):
        import pipeline.build.wheelhouse as wheelhouse

        key = record_cache_place(example_built)[-1]
        lock = wheelhouse.REQUIREMENTS.read_text()
        for old, new, changes in (("boto3==", "boto3==0.0.1+", False), ("numpy==", "numpy==0.0.1+", True),
                                  ("wfdb==", "wfdb==0.0.1+", True)):
            assert old in lock
            edited = tmp_path / f"{old}.txt"
            edited.write_text(lock.replace(old, new, 1))
            monkeypatch.setattr(wheelhouse, "REQUIREMENTS", edited)
            assert (built_key(example_data()) != key) is changes, old
