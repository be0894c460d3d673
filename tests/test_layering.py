"""Builder and container never mix: nothing under steps/ imports pipeline or sagemaker."""

from __future__ import annotations

import ast
from pathlib import Path

STEPS = Path(__file__).resolve().parents[1] / "steps"
FORBIDDEN = {"pipeline", "sagemaker"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_steps_import_neither_pipeline_nor_sagemaker():
    files = sorted(STEPS.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(STEPS)): sorted(imported_roots(f) & FORBIDDEN) for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_scanner_catches_an_offender(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom sagemaker.core import image_uris\n")
    assert imported_roots(bad) & FORBIDDEN == {"sagemaker"}
