"""`deploy.py graph --format svg`, and the state colours the report's DAG uses."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from pipeline.build.compose import build
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.definition.svg import COLUMN_MAX, STATE_COLOURS, svg
from tests.conftest import ROOT

EXAMPLE = str(ROOT / "config" / "example.yaml")
NS = {"s": "http://www.w3.org/2000/svg"}


def boxes(text: str) -> dict[str, str]:
    """label -> fill of every step box."""
    root = ET.fromstring(text)
    return {g.find("s:text", NS).text: g.find("s:rect", NS).get("fill") for g in root.iter(f"{{{NS['s']}}}g")}


class TestValidSvg:
    def test_cli_writes_every_step_and_edge(self, tmp_path):
        out = tmp_path / "dag.svg"
        assert main(["graph", "--config", EXAMPLE, "--format", "svg", "--out", str(out)]) == 0
        text = out.read_text()
        assert set(boxes(text)) == {"Reconcile", "Featurize-shard-0001", "Featurize-shard-0002", "Combine", "Encode"}
        assert text.count("marker-end") == 7  # the Mermaid graph's 7 edges

    def test_states_colour_the_boxes(self):
        definition = json.loads(build(load_config(EXAMPLE)).definition)
        fills = boxes(svg(definition, {"Reconcile": "Succeeded", "Featurize-shard-0001": "Cached",
                                       "Featurize-shard-0002": "Failed", "Combine": "Skipped"}))
        assert fills == {"Reconcile": STATE_COLOURS["Succeeded"], "Featurize-shard-0001": STATE_COLOURS["Cached"],
                         "Featurize-shard-0002": STATE_COLOURS["Failed"], "Combine": STATE_COLOURS["Skipped"],
                         "Encode": "#ffffff"}

    def test_a_wide_column_folds_into_one_box_of_its_worst_state(self):
        steps = [{"Name": "A"}] + [{"Name": f"S{i}", "DependsOn": ["A"]} for i in range(30)]
        fills = boxes(svg({"Steps": steps}, {"S29": "Failed", **{f"S{i}": "Succeeded" for i in range(29)}}))
        assert len(fills) == 1 + COLUMN_MAX and fills["… 21 more"] == STATE_COLOURS["Failed"]
