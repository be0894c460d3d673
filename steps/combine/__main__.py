"""`python -m steps.combine (--input DIR | --shards-report F --featurize-key K --experiment-uri URI
--combine-key K) --output DIR [--settings F]`.

Exit codes: 0 combined; 1 nothing usable to combine, or an expected shard missing/failed/invalid
while `require_all_shards` is set (outputs are still written); 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from steps import contract as c
from steps.combine.settings import CombineSettings
from steps.entry import BadInput, StageFailed, run_stage, stage_parser


def parser() -> argparse.ArgumentParser:
    p = stage_parser("combine", f"Combine every shard's featurize outputs (DIR/<shard>/{{{','.join(c.SHARD_FILES)}}}) "
                     f"into {c.SUMMARY_FILE}, {c.SIGNAL_STATS_FILE}, {c.ERRORS_FILE} and {c.REPORT_FILE}.",
                     CombineSettings)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(c.ARG_INPUT, type=Path, help="Folder holding one sub-folder per shard.")
    source.add_argument(c.ARG_SHARDS_REPORT, type=Path, help="The report.json of the step that published the "
                        "shards (Reconcile or the listing step): each shard's features are read from "
                        f"<shard place>/{c.FEATURES_FOLDER}/<featurize key>/ through steps.io.storage, and the "
                        f"outputs kept content-addressed under <experiment-uri>/{c.COMBINED_FOLDER}/.")
    p.add_argument(c.ARG_FEATURIZE_KEY, help=f"With {c.ARG_SHARDS_REPORT}: the Featurize steps' key.")
    p.add_argument(c.ARG_EXPERIMENT_URI, help=f"With {c.ARG_SHARDS_REPORT}: the experiment's s3:// folder.")
    p.add_argument(c.ARG_COMBINE_KEY, help=f"With {c.ARG_SHARDS_REPORT}: this step's key (code and settings).")
    p.add_argument(c.ARG_OUTPUT, required=True, type=Path, help="Folder for the combined outputs.")
    return p


def _run(args: argparse.Namespace, settings: CombineSettings) -> None:
    if args.input is not None:
        from steps.combine.run import combine

        if not args.input.is_dir():
            raise BadInput(f"input folder {args.input} does not exist")
        report = combine(args.input, args.output, settings)
    else:
        from steps.combine.published import combine_published

        missing = [a for a, v in ((c.ARG_FEATURIZE_KEY, args.featurize_key), (c.ARG_EXPERIMENT_URI, args.experiment_uri),
                                  (c.ARG_COMBINE_KEY, args.combine_key)) if not v]
        if missing:
            raise BadInput(f"{c.ARG_SHARDS_REPORT} needs {', '.join(missing)}")
        report = combine_published(args.shards_report, args.featurize_key, args.experiment_uri, args.combine_key,
                                   args.output, settings)
    print(json.dumps({k: report.get(k) for k in ("shards_combined", "shards_missing", "shards_failed", "rows",
                                                 "status", "reused", c.REPORT_COMBINED_URI)}))
    if report["status"] != "ok":
        raise StageFailed(failure_line(report, args.output / c.ERRORS_FILE))


def failure_line(report: dict, errors: Path) -> str:
    """`incomplete input: shards missing: 31 (every shard is required); 3/30 records failed; most
    common: read_error (2 records, e.g. ...); every error, one row per record: <errors.parquet>`:
    why Combine failed, in the first line a reader sees, as Featurize says why a shard failed."""
    shards = [f"{what} {', '.join(names)}" for what, names in (
        ("shards missing:", report.get("shards_missing")), ("shards failed:", report.get("shards_failed")),
        ("shards invalid:", sorted(report.get("shards_invalid") or {}))) if names]
    if not report.get("shards_combined"):
        line = "incomplete input: no usable shard output"
    else:
        line = "incomplete input: " + ("; ".join(shards) + " (every shard is required)" if shards
                                       else report.get("note") or "not every shard's rows are there")
    failed, top = report.get(c.REPORT_RECORDS_FAILED), report.get(c.REPORT_TOP_ERROR)
    if failed:
        line += f"; {failed}/{report.get(c.REPORT_RECORDS_TOTAL)} records failed"
    if top:
        line += f"; most common: {top['kind']} ({top['records']} record{'s' if top['records'] != 1 else ''}, " \
                f"e.g. {top['example']})"
    return line + (f"; every error, one row per record: {errors}" if failed else "")


def main(argv: list[str] | None = None) -> int:
    return run_stage("combine", parser(), CombineSettings, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
