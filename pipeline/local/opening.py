"""What a local run ends with: where its results are and one line of Python to open each
(the summary table, the signal statistics, the failed records, the encoded dataset), and the
command that reports on it. Found by the contract's file names in the steps' output folders,
so any config's run gets them, whichever stages it has."""

from __future__ import annotations

import shlex
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
    """The path as a command or a Python line typed here should name it, as short as it stays
    right from here: relative under `cwd`, else `~/...` under the home folder (pandas and
    `datasets` expand it, as the shell does), else absolute. Never `../`: a line copied into a
    notebook in another folder still opens the file."""
    path, cwd = path.expanduser().resolve(), cwd.resolve()
    if path == cwd or cwd in path.parents:
        return str(path.relative_to(cwd))
    home = Path.home().resolve()
    if home in path.parents:
        return f"~/{path.relative_to(home)}"
    return str(path)


def results_text(result: RunResult, cwd: Path | None = None, again: list[str] = ()) -> str:
    """The lines a run ends with: each result, where it is, how to open it; then `report`.
    `again`: the options a command typed in `cwd` needs to find this run (the config, its
    overlays, a workdir other than the config's), as `report_options` gives them."""
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
    command = " ".join(_shell_word(word) for word in ["wavepipe", "report", result.execution_id, *again])
    lines.append(f"report: `{command}` writes {shorten(str(report), result.workdir)}")
    return "\n".join(lines)


def _shell_word(word: str) -> str:
    """`word` quoted for a shell, a leading `~/` left bare so that the shell expands it."""
    return "~/" + shlex.quote(word[2:]) if word.startswith("~/") else shlex.quote(word)


def report_options(config: str | None, env: str | None, overlays: list[str], workdir: Path | None,
                   cwd: Path | None = None) -> list[str]:
    """The options `wavepipe report` (status, logs) typed in `cwd` needs to read a run made with
    these: `config` when the command would not find it by itself (None: it would), the overlays
    as given (they may rename the pipeline), `workdir` when it is not the config's own (None:
    it is)."""
    cwd = cwd or Path.cwd()
    options = ["--config", for_code(Path(config), cwd)] if config else []
    options += ["--env", env] if env else []
    for overlay in overlays:
        options += ["--overlay", overlay]
    return options + (["--workdir", for_code(workdir, cwd)] if workdir is not None else [])
