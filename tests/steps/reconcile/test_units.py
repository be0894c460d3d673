"""Pure parts of the reconcile stage: settings, key patterns, inventory, dedup, shards, validation."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from steps.io import storage as st
from steps.reconcile import production as inv
from steps.reconcile.labels import parse_sql_params
from steps.reconcile.settings import DedupSettings, ReconcileSettings
from benchmarks.incremental_bench import greedy_assign
from steps.reconcile.shards import assign_shards, auto_shard_count, manifest, shard_name
from steps.reconcile.validate import failure_message, missing_files, plan_repairs


def objects(*keys_sizes, base="s3://prod/raw"):
    return [st.ObjectInfo(uri=f"{base}/{k}", size=s, etag=e) for k, s, e in keys_sizes]


class TestValidSettings:
    def test_defaults_construct_and_round_trip_through_json(self):
        s = ReconcileSettings()
        assert s.key_pattern == "{artifact_id}/{file}" and s.featurize_reads == "copy" and s.copy_threads >= 8
        again = ReconcileSettings.model_validate(json.loads(s.model_dump_json()))
        assert again == s

    def test_every_field_is_documented(self):
        from steps.reconcile.settings import LabelsSource

        for model in (ReconcileSettings, LabelsSource, DedupSettings):
            for name, info in model.model_fields.items():
                assert info.description, f"{model.__name__}.{name}"

    @pytest.mark.parametrize("pattern", ["{artifact_id}/{file}", "{group}/{artifact_id}/{file}", "p{group}/{artifact_id}-{file}"])
    def test_key_patterns(self, pattern):
        assert ReconcileSettings(key_pattern=pattern).key_pattern == pattern

    def test_postgres_with_secret(self):
        s = ReconcileSettings.model_validate({"labels": {"url": "postgresql://db:5432/x", "secret_arn": "arn:aws:secretsmanager:us-east-1:1:secret:x"}})
        assert s.labels.secret_arn


class TestInvalidSettings:
    @pytest.mark.parametrize("data, words", [
        ({"unknown": 1}, "Extra inputs"),
        ({"labels": {"url": "postgresql://u:pw@db/x"}}, "password"),
        ({"labels": {"url": "postgresql://db/x", "sqlite_uri": "a.db"}}, "not both"),
        ({"labels": {"sqlite_uri": "a.db", "secret_arn": "arn:x"}}, "needs url"),
        ({"key_pattern": "{file}"}, "artifact_id"),
        ({"key_pattern": "{artifact_id}/{artifact_id}/{file}"}, "exactly once"),
        ({"process_func": "not a ref"}, "module:function"),
        ({"files_from_prod": []}, "at least one"),
        ({"copy_threads": 0}, "greater than"),
        ({"featurize_reads": "fastfile"}, "copy"),
    ])
    def test_rejected(self, data, words):
        with pytest.raises(ValidationError, match=words):
            ReconcileSettings.model_validate(data)

    def test_frozen(self):
        with pytest.raises(ValidationError, match="frozen"):
            ReconcileSettings().copy_threads = 4


class TestValidKeyPattern:
    def test_default(self):
        m = inv.compile_key_pattern("{artifact_id}/{file}").match("p100/p100.hea")
        assert m.groupdict() == {"artifact_id": "p100", "file": "p100.hea"}

    def test_mimic_groups(self):
        m = inv.compile_key_pattern("{group}/{artifact_id}/{file}").match("30/3000003/3000003_0001.dat")
        assert m.groupdict() == {"group": "30", "artifact_id": "3000003", "file": "3000003_0001.dat"}

    def test_trailing_file_may_hold_folders(self):
        m = inv.compile_key_pattern("{artifact_id}/{file}").match("doc1/pages/1.txt")
        assert m["file"] == "pages/1.txt"

    def test_literal_text_is_not_a_regex(self):
        regex = inv.compile_key_pattern("{artifact_id}.d/{file}")
        assert regex.match("a.d/x") and not regex.match("aXd/x")


class TestInvalidKeyPattern:
    def test_keys_of_other_shapes_do_not_match(self):
        regex = inv.compile_key_pattern("{group}/{artifact_id}/{file}")
        assert not regex.match("loose.txt") and not regex.match("30/only")


class TestValidInventory:
    def test_groups_selects_and_reports_unmatched(self):
        found = inv.build_inventory(objects(
            ("a/a.hea", 5, "e1"), ("a/a.dat", 10, "e2"), ("a/notes.txt", 3, "e3"),
            ("b/b.txt", 4, "e4"), ("README", 1, "e5"),
        ), "s3://prod/raw", "{artifact_id}/{file}", ["*.hea", "*.dat"])
        assert list(found.artifacts) == ["a"]  # b has none of the wanted files
        assert set(found.artifacts["a"].files) == {"a.hea", "a.dat"}
        assert set(found.artifacts["a"].all_files) == {"a.hea", "a.dat", "notes.txt"}
        assert found.artifacts["a"].bytes == 15
        assert found.unmatched_keys == ["README"] and found.objects_listed == 5

    def test_same_id_in_two_groups_keeps_the_first(self):
        found = inv.build_inventory(objects(("30/r1/x", 1, "e"), ("31/r1/y", 1, "e")),
                                    "s3://prod/raw/", "{group}/{artifact_id}/{file}", ["*"])
        assert found.artifacts["r1"].fields == {"group": "30"} and found.conflicting_keys == ["31/r1/y"]


class TestValidDedup:
    def _arts(self):
        found = inv.build_inventory(objects(
            ("c/c.hea", 1, "h1"), ("c/c.dat", 9, "same"),
            ("a/a.hea", 1, "h2"), ("a/a.dat", 9, "same"),
            ("b/b.hea", 1, "h3"), ("b/b.dat", 9, "other"),
        ), "s3://prod/raw", "{artifact_id}/{file}", ["*"])
        return found.artifacts

    def test_by_one_file_keeps_the_smallest_id(self):
        keys = inv.content_keys(self._arts(), DedupSettings(file="*.dat"), inv.etag_digest)
        dups = inv.find_duplicates(keys, {"a": "N", "b": "N", "c": "AF"})
        assert dups.dropped == {"c": "a"} and dups.label_conflicts == 1

    def test_by_all_files(self):
        keys = inv.content_keys(self._arts(), DedupSettings(), inv.etag_digest)
        assert inv.find_duplicates(keys, {}).dropped == {}

    def test_survivor_does_not_depend_on_order(self):
        keys = {"z": "k", "m": "k", "b": "k"}
        assert inv.find_duplicates(dict(reversed(list(keys.items()))), {}).dropped == {"m": "b", "z": "b"}


class TestValidShards:
    def test_deterministic_and_roughly_balanced(self):
        sizes = {f"a{i}": (i * 37) % 101 + 1 for i in range(2000)}
        first = assign_shards(sizes, 4)
        assert first == assign_shards(dict(reversed(list(sizes.items()))), 4)
        counts = [sum(1 for a in first if first[a] == k) for k in range(4)]
        assert min(counts) > 0.9 * 500 and max(counts) < 1.1 * 500  # about sqrt(500) apart

    def test_stable_under_additions_and_removals(self):
        """Adding or removing artifacts never moves the others: a change touches its own shard only."""
        sizes = {f"a{i}": 10 for i in range(300)}
        before = assign_shards(sizes, 8)
        grown = assign_shards({**sizes, "new-1": 10, "new-2": 99}, 8)
        shrunk = assign_shards({a: s for a, s in sizes.items() if a != "a7"}, 8)
        assert {a: grown[a] for a in sizes} == before
        assert {a: shrunk[a] for a in shrunk} == {a: before[a] for a in shrunk}

    def test_no_shard_left_empty(self):
        assignment = assign_shards({f"a{i}": 1 for i in range(5)}, 5)
        assert sorted(assignment.values()) == [0, 1, 2, 3, 4]

    def test_greedy_balance_for_comparison(self):
        sizes = {f"a{i}": (i * 37) % 101 + 1 for i in range(200)}
        first = greedy_assign(sizes, 4)
        loads = [sum(s for a, s in sizes.items() if first[a] == k) for k in range(4)]
        assert max(loads) - min(loads) <= max(sizes.values())

    def test_manifest_format(self):
        assert manifest("s3://b/root", ["x/1", "x/2"]) == [{"prefix": "s3://b/root/"}, "x/1", "x/2"]
        assert shard_name(0) == "shard-0001" and shard_name(11) == "shard-0012"


class TestInvalidShards:
    def test_zero_shards(self):
        with pytest.raises(ValueError, match="at least 1"):
            assign_shards({"a": 1}, 0)

    def test_more_shards_than_artifacts(self):
        with pytest.raises(ValueError, match="2 artifacts for 3 macroshards"):
            assign_shards({"a": 5, "b": 1}, 3)


class TestValidValidation:
    def test_missing_and_repairs(self):
        found = inv.build_inventory(objects(("a/a.hea", 1, "e"), ("a/a.dat", 1, "e"), ("b/b.dat", 1, "e")),
                                    "s3://prod/raw", "{artifact_id}/{file}", ["*.dat"])
        present = {"a": {"a.dat"}, "b": set()}
        missing = missing_files(present, found.artifacts, ["*.hea", "label.json"], copy_files=True)
        assert missing == {"a": ["*.hea", "label.json"], "b": ["*.hea", "label.json", "b.dat"]}
        plan = plan_repairs(missing, found.artifacts, copy_files=True, has_process=True)
        assert plan.recopy == {"a": ["a.hea"], "b": ["b.dat"]} and plan.regenerate == {"a", "b"}
        plan = plan_repairs(missing, found.artifacts, copy_files=True, has_process=False)
        assert plan.unrepairable == {"a": ["label.json"], "b": ["*.hea", "label.json"]}

    def test_message_lists_the_first_50(self):
        message = failure_message({f"a{i:03d}": ["x"] for i in range(60)}, "/out/missing_files.json")
        assert "a049" in message and "a050" not in message and "10 more" in message and "60 artifacts" in message


class TestValidSqlParams:
    def test_parse(self):
        assert parse_sql_params(["experiment_name=exp=1", "x="]) == {"experiment_name": "exp=1", "x": ""}


class TestInvalidSqlParams:
    @pytest.mark.parametrize("item", ["novalue", "bad-name=1", "=1"])
    def test_rejected(self, item):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            parse_sql_params([item])


class TestAutoShardCount:
    @pytest.mark.parametrize("total, target, artifacts, count", [
        (0, 100, 5, 1), (100, 100, 5, 1), (101, 100, 5, 2), (300, 100, 50, 4), (400, 100, 50, 4),
        (401, 100, 50, 8), (6_700 * 10**9, 20 * 10**9, 67_830, 512), (10**6, 1, 3, 3),
    ])
    def test_bytes_over_the_target_rounded_up_to_a_power_of_two(self, total, target, artifacts, count):
        assert auto_shard_count(total, target, artifacts) == count

    def test_growth_below_a_doubling_keeps_the_count(self):
        counts = {auto_shard_count(total, 20, 10**6) for total in range(321, 641)}
        assert counts == {32}

    @pytest.mark.parametrize("target, artifacts, message", [(0, 1, "at least 1 byte"), (1, 0, "no artifact")])
    def test_nonsense_is_refused(self, target, artifacts, message):
        with pytest.raises(ValueError, match=message):
            auto_shard_count(10, target, artifacts)


class TestInvalidInventoryKeys:
    """Hostile listings: a key whose id or file would lead a copy out of the experiment folder."""

    @pytest.mark.parametrize("key", ["../evil/x.hea", "a/../../x.hea", "./a/a.hea", "a/..", "a/b\\..\\c.hea",
                                     "a/x\x00.hea", "g/../a.hea"])
    def test_unsafe_keys_are_refused_and_reported_the_rest_kept(self, key):
        found = inv.build_inventory(objects(("ok/ok.hea", 1, "e"), (key, 1, "e")),
                                    "s3://prod/raw", "{artifact_id}/{file}", ["*"])
        assert list(found.artifacts) == ["ok"] and found.unsafe_keys == [key]
