"""Run a SageMaker pipeline definition on this machine: no AWS, no Docker.

    from pipeline.local import run_pipeline, print_table
    result = run_pipeline(definition_json, assets={uri: data}, workdir=Path(".wavepipe"))
    raise SystemExit(result.exit_code)

See `run_pipeline` for the options and docs/getting-started.md for what it
honours.
"""

from pipeline.local.supported import UnsupportedDefinition, load_definition
from pipeline.local.progress import format_table, print_table
from pipeline.local.results import RunResult, StepResult, StepState
from pipeline.local.runner import run_pipeline

__all__ = [
    "RunResult",
    "StepResult",
    "StepState",
    "UnsupportedDefinition",
    "format_table",
    "load_definition",
    "print_table",
    "run_pipeline",
]
