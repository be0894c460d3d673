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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_contract_is_standard_library_only():
    import sys

    roots = imported_roots(STEPS / "contract.py")
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}


def test_config_models_import_nothing_else_from_pipeline():
    # Only leaf helpers of the config package (standard library only, e.g. the schedule grammar):
    # anything else would bring back the config <-> stages import loop.
    models = STEPS.parent / "pipeline" / "config" / "models.py"
    for module in {m for m in imported_modules(models) if m.split(".")[0] == "pipeline"}:
        assert module.startswith("pipeline.config."), module
        leaf = STEPS.parent / (module.replace(".", "/") + ".py")
        assert {m for m in imported_modules(leaf) if m.split(".")[0] == "pipeline"} == set(), module


def test_the_builder_does_not_import_the_local_runner():
    pipeline = STEPS.parent / "pipeline"
    # What runs or reads local executions (the runner, plan, the report, gc) may; the builder may not.
    runner_side = {pipeline / "plan" / "predict.py"}
    builder = [f for f in pipeline.rglob("*.py") if f.relative_to(pipeline).parts[0] not in ("local", "report", "cli", "gc")
               and f not in runner_side]
    offenders = {str(f.relative_to(pipeline)): sorted(m for m in imported_modules(f) if m.startswith("pipeline.local"))
                 for f in builder}
    assert {f: m for f, m in offenders.items() if m} == {}
