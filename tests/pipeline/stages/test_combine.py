"""The Combine step: how it finds the shards' outputs, and when it starts."""

from __future__ import annotations

from tests.pipeline.stages.conftest import (
    BASE, EXECUTION_ID, MIMIC_BASE, SHARDS_URI, adjacency, join, normalized, s3_in, s3_out, step)

OUT = "/opt/ml/processing/output/combine"


def features_of(shard: str) -> dict:
    return {"Get": f"Steps.Featurize-{shard}.ProcessingOutputConfig.Outputs['features'].S3Output.S3Uri"}


class TestValidCombine:
    def test_whole_step_after_reconcile(self, example_built):
        expected = step(
            "Combine", "combine",
            ["--output", OUT, "--input", "/opt/ml/processing/input/shards"],
            inputs=[s3_in("shards", join(SHARDS_URI, "features", "<key>", ""), "/opt/ml/processing/input/shards")],
            outputs=[s3_out("combine", join(BASE, EXECUTION_ID, "combine"), OUT)],
            DependsOn=["Featurize-shard-0001", "Featurize-shard-0002"],
        )
        assert normalized(example_built)["Combine"] == expected

    def test_whole_step_over_prefixes_runs_when_shards_fail(self, mimic_built):
        groups = [str(g) for g in range(30, 40)]
        expected = step(
            "Combine", "combine",
            ["--output", OUT, "--shard-outputs", *[join(f"{g}=", features_of(g), on="") for g in groups]],
            inputs=[],
            outputs=[s3_out("combine", join(MIMIC_BASE, EXECUTION_ID, "combine"), OUT)],
            base=MIMIC_BASE, tags=False,
            DependsOn=[{"Step": f"Featurize-{g}", "Trigger": "Any"} for g in groups],
        )
        assert normalized(mimic_built)["Combine"] == expected

    def test_graph(self, example_built, mimic_built):
        assert adjacency(example_built.definition)["Combine"] == {
            "Reconcile", "Featurize-shard-0001", "Featurize-shard-0002"}
        assert adjacency(mimic_built.definition)["Combine"] == {f"Featurize-{g}" for g in range(30, 40)}
