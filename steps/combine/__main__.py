"""`python -m steps.combine (--input DIR | --shard-outputs NAME=URI ...) --output DIR [--settings F]`.

Exit codes: 0 combined; 1 nothing usable to combine, or an expected shard missing/failed/invalid
while `require_all_shards` is set (outputs are still written); 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
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
    source.add_argument(c.ARG_SHARD_OUTPUTS, nargs="+", metavar="NAME=URI",
                        help="Each shard's output location (s3://...), fetched through steps.storage; "
                        "a location holding nothing counts as a missing shard.")
    p.add_argument(c.ARG_OUTPUT, required=True, type=Path, help="Folder for the combined outputs.")
    return p


def _run(args: argparse.Namespace, settings: CombineSettings) -> None:
    from steps.combine.combine import combine

    if args.input is not None and not args.input.is_dir():
        raise BadInput(f"input folder {args.input} does not exist")
    if args.shard_outputs:
        from steps.combine.fetch import fetch_shard_outputs, parse_pairs

        try:
            shards = parse_pairs(args.shard_outputs)
        except ValueError as err:
            raise BadInput(str(err)) from None
        with tempfile.TemporaryDirectory(prefix="wavepipe-shards-") as tmp:
            report = combine(fetch_shard_outputs(shards, Path(tmp)), args.output, settings)
    else:
        report = combine(args.input, args.output, settings)
    print(json.dumps({k: report[k] for k in ("shards_combined", "shards_missing", "shards_failed", "rows", "status")}))
    if report["status"] != "ok":
        raise StageFailed(f"incomplete input: {report.get('note') or 'no usable shard output'}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("combine", parser(), CombineSettings, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
