"""The Reconcile step: whole step dict, its property file, and what reads it."""

from __future__ import annotations

from pipeline.stages import reconcile
from tests.pipeline.stages.conftest import BASE, EXECUTION_ID, join, normalized, param, s3_out, shard_uri, step


class TestValidReconcile:
    def test_whole_step(self, example_built):
        expected = step(
            "Reconcile", "reconcile",
            ["--source-uri", param("InputUri"),
             "--experiment-uri", join(BASE, "experiments", param("ExperimentName")),
             "--output", "/opt/ml/processing/output/reconcile",
             "--macroshards", "2",
             "--reload", param("Reload"),
             "--sql-param", join("experiment_name=", param("ExperimentName"), on=""),
             # Tonight's work is what the record cache lacks (steps/work.py).
             "--record-cache", join(BASE, "record-cache", "<key>")],
            inputs=[],
            outputs=[s3_out("reconcile", join(BASE, EXECUTION_ID, "reconcile"), "/opt/ml/processing/output/reconcile")],
            cache=False,  # it reads a database and a listing its cache key cannot see
            PropertyFiles=[{"FilePath": "report.json", "OutputName": "reconcile",
                            "PropertyFileName": "ReconcileReport"}],
        )
        assert normalized(example_built)["Reconcile"] == expected

    def test_shard_places_are_read_from_its_report(self, example_built):
        featurize = normalized(example_built)["Featurize-shard-0001"]
        assert featurize["Arguments"]["ProcessingInputs"][3]["S3Input"]["S3Uri"] == \
            join(shard_uri(0), "shard.manifest")

    def test_property_references(self):
        class Fake:
            name = "Reconcile"

        from sagemaker.core.workflow.properties import PropertyFile

        fake = Fake()
        fake.property_files = [PropertyFile(name="ReconcileReport", output_name="reconcile", path="report.json")]
        assert reconcile.labels_uri(fake).expr == {"Std:JsonGet": {
            "Path": "labels_uri", "PropertyFile": {"Get": "Steps.Reconcile.PropertyFiles.ReconcileReport"}}}
