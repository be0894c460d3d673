"""The Combine step: how it finds the shards' outputs, and when it starts."""

from __future__ import annotations

from tests.pipeline.stages.conftest import (
    BASE, EXECUTION_ID, MIMIC_BASE, adjacency, join, normalized, param, s3_in, s3_out, step)

OUT = "/opt/ml/processing/output/combine"


def combine_step(source: str, base: str, depends_on: list, **extra) -> dict:
    """Combine reads the shard list from the source step's output and is never cached."""
    out = source.lower()
    return step(
        "Combine", "combine",
        ["--output", OUT, "--shards-report", "/opt/ml/processing/input/shards/report.json", "--featurize-key",
         "<key>", "--experiment-uri", join(base, "experiments", param("ExperimentName")), "--combine-key", "<key>"],
        inputs=[s3_in("shards", {"Get": f"Steps.{source}.ProcessingOutputConfig.Outputs['{out}'].S3Output.S3Uri"},
                      "/opt/ml/processing/input/shards")],
        outputs=[s3_out("combine", join(base, EXECUTION_ID, "combine"), OUT)],
        base=base, cache=False, DependsOn=depends_on,
        PropertyFiles=[{"FilePath": "report.json", "OutputName": "combine", "PropertyFileName": "CombineReport"}],
        **extra)


class TestValidCombine:
    def test_whole_step_after_reconcile(self, example_built):
        expected = combine_step("Reconcile", BASE, ["Featurize-shard-0001", "Featurize-shard-0002"])
        assert normalized(example_built)["Combine"] == expected

    def test_whole_step_over_prefixes_runs_when_shards_fail(self, mimic_built):
        expected = combine_step("Listing", MIMIC_BASE, [{"Step": f"Featurize-{g}", "Trigger": "Any"}
                                                        for g in range(30, 40)], tags=False)
        assert normalized(mimic_built)["Combine"] == expected

    def test_graph(self, example_built, mimic_built):
        assert adjacency(example_built.definition)["Combine"] == {
            "Reconcile", "Featurize-shard-0001", "Featurize-shard-0002"}
        assert adjacency(mimic_built.definition)["Combine"] == {"Listing"} | {f"Featurize-{g}" for g in range(30, 40)}
