"""`python -m steps.combine (--input DIR | --shard-outputs NAME=URI ...) --output DIR [--settings F]`.

Exit codes: 0 combined; 1 nothing usable to combine, or an expected shard missing/failed/invalid
while `require_all_shards` is set (outputs are still written); 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steps.combine.settings import CombineSettings
from steps.settings_file import load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m steps.combine",
        description="Combine every shard's featurize outputs (DIR/<shard>/{features.parquet,errors.parquet,"
        "report.json}) into waveform_summary.parquet, signal_stats.csv, errors.parquet and report.json.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="Folder holding one sub-folder per shard.")
    source.add_argument("--shard-outputs", nargs="+", metavar="NAME=URI",
                        help="Each shard's output location (s3://...), fetched through steps.storage; "
                        "a location holding nothing counts as a missing shard.")
    parser.add_argument("--output", required=True, type=Path, help="Folder for the combined outputs.")
    parser.add_argument("--settings", type=Path, default=None, help="JSON file validated by CombineSettings "
                        "(the config's stages.combine section); defaults apply without it.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    try:
        settings = load_settings(CombineSettings, args.settings)
    except ValueError as err:
        print(f"combine: {err}", file=sys.stderr)
        return 2
    if args.input is not None and not args.input.is_dir():
        print(f"combine: input folder {args.input} does not exist", file=sys.stderr)
        return 2
    from steps.combine.combine import combine

    if args.shard_outputs:
        import tempfile

        from steps.combine.fetch import fetch_shard_outputs, parse_pairs

        try:
            shards = parse_pairs(args.shard_outputs)
        except ValueError as err:
            print(f"combine: {err}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="wavepipe-shards-") as tmp:
            report = combine(fetch_shard_outputs(shards, Path(tmp)), args.output, settings)
    else:
        report = combine(args.input, args.output, settings)
    print(json.dumps({k: report[k] for k in ("shards_combined", "shards_missing", "shards_failed", "rows", "status")}))
    if report["status"] != "ok":
        print(f"combine: incomplete input: {report.get('note') or 'no usable shard output'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
