"""Featurize steps: one per macroshard (after Reconcile) or per prefix (raw folders)."""

from __future__ import annotations

from tests.pipeline.stages.conftest import (
    EXECUTION_ID, MIMIC_BASE, SHARDS_URI, join, normalized, param, s3_in, s3_out, step)

DATA, OUT = "/opt/ml/processing/input/data", "/opt/ml/processing/output/features"


class TestValidFeaturize:
    def test_whole_step_after_reconcile(self, example_built):
        expected = step(
            "Featurize-shard-0002", "featurize",
            ["--input", DATA, "--output", OUT, "--shard", "shard-0002"],
            inputs=[s3_in("data", join(SHARDS_URI, "shard-0002.manifest"), DATA, data_type="ManifestFile")],
            outputs=[s3_out("features", join(SHARDS_URI, "features", "<key>", "shard-0002"), OUT)],
        )
        assert normalized(example_built)["Featurize-shard-0002"] == expected

    def test_whole_step_over_a_prefix(self, mimic_built):
        expected = step(
            "Featurize-37", "featurize",
            ["--input", DATA, "--output", OUT, "--shard", "37"],
            # The trailing slash: `3` must not also match `30/`.
            inputs=[s3_in("data", join(param("InputUri"), "37/"), DATA)],
            outputs=[s3_out("features", join(MIMIC_BASE, EXECUTION_ID, "featurize", "37"), OUT)],
            base=MIMIC_BASE, tags=False, volume=1024,
        )
        assert normalized(mimic_built)["Featurize-37"] == expected

    def test_one_step_per_shard(self, example_built, mimic_built):
        assert [n for n in normalized(example_built) if n.startswith("Featurize")] == \
            ["Featurize-shard-0001", "Featurize-shard-0002"]
        assert [n for n in normalized(mimic_built) if n.startswith("Featurize")] == \
            [f"Featurize-{g}" for g in range(30, 40)]
