"""Combine's assembly from the record cache (steps/combine/assemble.py): compaction, on the
real cycle of tests/steps/featurize/cache/test_record_cache.py."""

from __future__ import annotations

from steps.combine import assemble
from tests.steps.featurize.cache.test_record_cache import (  # noqa: F401 - fixtures
    RECORDS, assert_complete, assert_no_work, folders_in, local, warm)


class TestValidCompaction:
    def test_many_packs_are_compacted_into_one_the_next_combine_reads(self, local, warm, monkeypatch):
        """Past COMPACT_AFTER packs, Combine writes one pack of the whole current table; the
        next plan takes every folder from it, so the next Combine reads one pack, and the table
        is the same, byte for byte."""
        _, before, _ = warm
        monkeypatch.setattr(assemble, "COMPACT_AFTER", 2)  # the warm cache has 3 packs
        packs = set(local.objects())
        compacting = local()
        assert_no_work(compacting)
        assert_complete(compacting)
        [compacted] = set(local.objects()) - packs
        assert compacting.combined["record_cache_compacted"] == compacted
        assert len(folders_in(local, compacted)) == len(RECORDS)
        monkeypatch.setattr(assemble, "COMPACT_AFTER", 32)
        after = local()
        assert_complete(after)
        assert after.combined["record_cache_packs_read"] == 1 and after.combined["record_cache_compacted"] is None
        assert {r["pack"] for r in after.table["folders"]} == {compacted.rsplit("/", 1)[-1].removesuffix(".parquet")}
        assert after.summary == compacting.summary == before.summary

    def test_below_the_threshold_nothing_is_written(self, local):
        packs = set(local.objects())
        cycle = local()
        assert cycle.combined["record_cache_compacted"] is None and set(local.objects()) == packs


class TestValidRefill:
    def test_a_step_cache_hit_over_a_lost_record_cache_refills_it(self, local, warm, tmp_path):
        """The record cache is deleted; the same work shards come back (the same places), and on
        SageMaker their Featurize steps are step-cache hits that store no pack. Combine keeps
        their outputs' packs again, so the run after has no work."""
        import json
        import shutil

        from steps.combine.published import combine_published
        from steps.combine.settings import CombineSettings
        from steps.contract import REPORT_FILE, SUMMARY_FILE
        from steps.listing.run import run_listing
        from steps.listing.settings import ListingSettings
        from tests.steps.featurize.cache.conftest import CACHE
        from tests.steps.featurize.cache.test_record_cache import EXPERIMENT, FEATURIZE_KEY, SOURCE

        _, before, _ = warm
        shutil.rmtree(local.storage.path(CACHE))
        listing = run_listing(ListingSettings(), SOURCE, EXPERIMENT, [], tmp_path / "listing", storage=local.storage,
                              target_shard_bytes=local.target, record_cache=CACHE)
        assert [w["uri"] for w in listing["work"]] == [w["uri"] for w in before.listing["work"]]  # step-cache hits
        out = tmp_path / "combined"
        combined = combine_published(tmp_path / "listing" / REPORT_FILE, FEATURIZE_KEY, EXPERIMENT, "ck", out,
                                     CombineSettings(require_all_shards=True), storage=local.storage, env=local.env)
        assert combined["complete"] and len(combined["record_cache_refilled"]) == 3
        assert (out / SUMMARY_FILE).read_bytes() == before.summary
        assert_no_work(local())
        assert json.loads((tmp_path / "listing" / REPORT_FILE).read_text())["folders_todo"] == len(RECORDS)
