"""`python -m steps.encode`: the thin entry of the encode stage (exit 0 ok, 1 failed, 2 bad arguments/settings/inputs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from steps import contract as c
from steps.encode.settings import EncodeSettings
from steps.entry import run_stage, stage_parser


def parser() -> argparse.ArgumentParser:
    p = stage_parser(
        "encode",
        "Encode reconciled artifacts (and combined waveform features) with the configured recipe into a "
        "HuggingFace DatasetDict with train/valid/test splits, saved under OUTPUT/ENCODED_DATA_DIR/ with "
        f"{c.LABEL2ID_FILE}, {c.ID2LABEL_FILE}, {c.SPLIT_METADATA_FILE} and {c.REPORT_FILE}.",
        EncodeSettings,
    )
    p.add_argument(c.ARG_OUTPUT, type=Path, required=True, help="Folder to write ENCODED_DATA_DIR/ into.")
    p.add_argument(c.ARG_ENCODED_DATA_DIR, required=True, choices=c.ENCODED_DATA_DIRS,
                   help=f"{c.FULL_DATASET}, or {c.PARTIAL_DATASET} (at most `partial_max_artifacts` artifacts, "
                        "chosen deterministically).")
    p.add_argument(c.ARG_LABELS, type=Path, help=f"Reconcile output folder holding {c.LABELS_FILE} (required).")
    p.add_argument(c.ARG_ARTIFACTS, type=Path,
                   help="Folder of <artifact_id>/<file> (reconciled artifacts); needed for model_input_files.")
    p.add_argument(c.ARG_FEATURES, type=Path,
                   help=f"Combine output folder holding {c.SUMMARY_FILE}; needed for use_features.")
    return p


def _run(args: argparse.Namespace, settings: EncodeSettings) -> None:
    from steps.encode.run import run_encode

    report = run_encode(args.output, args.encoded_data_dir, settings, args.labels, args.artifacts, args.features)
    summary = {k: report[k] for k in ("rows_per_split", "labels", "seconds", "rows_per_second") if k in report}
    print(f"encode: wrote {args.output / args.encoded_data_dir}: {json.dumps(summary)}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("encode", parser(), EncodeSettings, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
