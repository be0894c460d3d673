"""The Encode step and the whole example graph."""

from __future__ import annotations

from pipeline.build.compose import build
from pipeline.config import load_config
from tests.conftest import ROOT
from tests.pipeline.stages.conftest import BASE, EXECUTION_ID, adjacency, join, normalized, param, s3_in, s3_out, step

OUT = "/opt/ml/processing/output/encode"
LABELS, FEATURES = "/opt/ml/processing/input/labels", "/opt/ml/processing/input/features"
# Both content-addressed, from the reports of the steps that published them.
LABELS_URI = {"Std:JsonGet": {"Path": "labels_uri",
                              "PropertyFile": {"Get": "Steps.Reconcile.PropertyFiles.ReconcileReport"}}}
COMBINED_URI = {"Std:JsonGet": {"Path": "combined_uri",
                                "PropertyFile": {"Get": "Steps.Combine.PropertyFiles.CombineReport"}}}


class TestValidEncode:
    def test_whole_step_with_features(self, example_built):
        expected = step(
            "Encode", "encode",
            ["--output", OUT, "--encoded-data-dir", param("EncodedDataDir"), "--labels", LABELS,
             "--features", FEATURES],
            inputs=[s3_in("labels", LABELS_URI, LABELS), s3_in("features", COMBINED_URI, FEATURES)],
            outputs=[s3_out("encode", join(BASE, EXECUTION_ID, "encode"), OUT)],
        )
        assert normalized(example_built)["Encode"] == expected

    def test_documents_read_the_reconciled_artifacts(self):
        encode = normalized(build(load_config(ROOT / "config" / "documents.yaml")))["Encode"]
        args = encode["Arguments"]
        assert args["AppSpecification"]["ContainerArguments"][7:9] == ["--artifacts", "/opt/ml/processing/input/artifacts"]
        assert args["ProcessingInputs"][4] == s3_in(
            "artifacts", join("s3://wavepipe-example/wavepipe/wavepipe-documents", "experiments",
                              param("ExperimentName"), "data", "reconciled_artifacts", ""),
            "/opt/ml/processing/input/artifacts")

    def test_whole_graph(self, example_built):
        assert adjacency(example_built.definition) == {
            "Reconcile": set(),
            "Featurize-shard-0001": {"Reconcile"},
            "Featurize-shard-0002": {"Reconcile"},
            "Combine": {"Reconcile", "Featurize-shard-0001", "Featurize-shard-0002"},
            "Encode": {"Reconcile", "Combine"},
        }
