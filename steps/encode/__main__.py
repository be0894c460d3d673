"""`python -m steps.encode`: the thin entry of the encode stage (exit 0 ok, 1 failed, 2 bad arguments/settings/inputs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steps.encode.errors import EncodeError, EncodeInputError
from steps.encode.settings import EncodeSettings
from steps.settings_file import load_settings
from steps.encode.stage import ENCODED_DATA_DIRS, run_encode


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m steps.encode",
        description=(
            "Encode reconciled artifacts (and combined waveform features) with the configured recipe into a "
            "HuggingFace DatasetDict with train/valid/test splits, saved under OUTPUT/ENCODED_DATA_DIR/ with "
            "label2id.json, id2label.json, split_metadata.json and report.json."
        ),
    )
    p.add_argument("--output", type=Path, required=True, help="Folder to write ENCODED_DATA_DIR/ into.")
    p.add_argument(
        "--encoded-data-dir",
        required=True,
        choices=ENCODED_DATA_DIRS,
        help="full_dataset, or partial_dataset (at most `partial_max_artifacts` artifacts, chosen deterministically).",
    )
    p.add_argument("--labels", type=Path, help="Reconcile output folder holding labels.parquet (required).")
    p.add_argument(
        "--artifacts", type=Path, help="Folder of <artifact_id>/<file> (reconciled artifacts); needed for model_input_files."
    )
    p.add_argument("--features", type=Path, help="Combine output folder holding waveform_summary.parquet; needed for use_features.")
    p.add_argument("--settings", type=Path, help="JSON file of EncodeSettings (the config's stages.encode); defaults without it.")
    return p


def read_settings(path: Path | None) -> EncodeSettings:
    try:
        return load_settings(EncodeSettings, path)
    except ValueError as err:
        raise EncodeInputError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for bad arguments
        return int(exc.code or 0)
    try:
        report = run_encode(
            args.output, args.encoded_data_dir, read_settings(args.settings), args.labels, args.artifacts, args.features
        )
    except EncodeInputError as exc:
        print(f"encode: bad settings or inputs: {exc}", file=sys.stderr)
        return 2
    except EncodeError as exc:
        print(f"encode: failed: {exc}", file=sys.stderr)
        return 1
    summary = {k: report[k] for k in ("rows_per_split", "labels", "seconds", "rows_per_second") if k in report}
    print(f"encode: wrote {args.output / args.encoded_data_dir}: {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
