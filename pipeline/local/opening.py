"""What a local run ends with: where its results are and one line of Python to open each
(the summary table, the signal statistics, the failed records, the encoded dataset), and the
command that reports on it. Found by the contract's file names in the steps' output folders,
so any config's run gets them, whichever stages it has."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.local.progress import shorten
from pipeline.local.results import RunResult
from steps.contract import ERRORS_FILE, SIGNAL_STATS_FILE, SUMMARY_FILE

DATASET_MARKERS = ("dataset_dict.json", "dataset_info.json")  # what `save_to_disk` leaves


@dataclass(frozen=True)
class Result:
    what: str
    path: Path
    opener: str  # a Python expression with {path}


KINDS = ((SUMMARY_FILE, "the features, one row per (record, segment, signal)", 'pd.read_parquet("{path}")'),
         (SIGNAL_STATS_FILE, "per-signal statistics", 'pd.read_csv("{path}")'),
         (ERRORS_FILE, "the records that failed, one row each", 'pd.read_parquet("{path}")'))


def _in_folder(folder: Path) -> list[Result]:
    found = []
    if (folder / SUMMARY_FILE).is_file():  # not a shard's pieces (features, errors): the whole table
        found += [Result(what, folder / name, opener) for name, what, opener in KINDS if (folder / name).is_file()]
    datasets = {m.parent for marker in DATASET_MARKERS for m in folder.glob(f"*/{marker}")}
    datasets |= {folder for marker in DATASET_MARKERS if (folder / marker).is_file()}
    return found + [Result("the encoded dataset (save_to_disk)", d, 'datasets.load_from_disk("{path}")')
                    for d in sorted(datasets)]


def find_results(result: RunResult) -> list[Result]:
    """The run's results on local storage, in the order of its steps."""
    return [item for step in result.steps.values() for where in step.locations.values()
            if not where.startswith("s3://") and Path(where).is_dir() for item in _in_folder(Path(where))]


def for_code(path: Path, cwd: Path) -> str:
    """The path as a Python line run here should name it: relative when under `cwd`."""
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def results_text(result: RunResult, cwd: Path | None = None) -> str:
    """The lines a run ends with: each result, where it is, how to open it; then `report`."""
    cwd = cwd or Path.cwd()
    found = find_results(result)
    lines = []
    if found:
        lines.append("results (paths relative to the workdir; open them in Python, in the activated venv):")
        for item in found:
            lines.append(f"  {item.what}: {shorten(str(item.path), result.workdir)}")
            lines.append(f"      {item.opener.format(path=for_code(item.path, cwd))}")
        imports = sorted({"import pandas as pd" if "pd." in r.opener else "import datasets" for r in found})
        lines.append(f"      (after {'; '.join(imports)})")
    report = result.workdir / "executions" / result.execution_id / "report.html"
    lines.append(f"report: `wavepipe report {result.execution_id}` writes {shorten(str(report), result.workdir)}")
    return "\n".join(lines)
