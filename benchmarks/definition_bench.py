"""Definition build time and size by macroshard count (issue 2's figures).

    python benchmarks/definition_bench.py [--shards 10 100 300]

Prints, per shard count: the time to build and serialize the definition in a warm process,
the time of the whole `deploy.py definition` command in a fresh interpreter (what a user
waits for), the definition's size against the API's 1 MiB limit, and what the SDK would do
with it (it uploads definitions over 100 KB to S3 and passes PipelineDefinitionS3Location).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
API_LIMIT = 1024 * 1024  # CreatePipeline.PipelineDefinition max length
SDK_S3_THRESHOLD = 100 * 1024  # sagemaker.mlops Pipeline: larger definitions go through S3


def config_with(shards: int, folder: Path) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    raw["stages"]["featurize"]["macroshards"] = shards
    path = folder / f"example-{shards}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def sdk_threshold() -> int:
    """The SDK's own threshold, read from its source rather than assumed."""
    import re

    import sagemaker.mlops.workflow.pipeline as sdk_pipeline

    text = Path(sdk_pipeline.__file__).read_text()
    match = re.search(r"< 1024 \* (\d+):", text)
    return 1024 * int(match.group(1)) if match else SDK_S3_THRESHOLD


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, nargs="+", default=[10, 100, 300])
    args = ap.parse_args()
    from pipeline.build import build
    from pipeline.definition import pretty
    from pipeline.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        warm = build(load_config(ROOT / "config" / "example.yaml"))  # SDK imported once
        del warm
        threshold = sdk_threshold()
        print(f"{'shards':>6} {'build (warm)':>12} {'CLI (cold)':>10} {'compact KB':>10} {'indented KB':>11} "
              f"{'of 1 MiB':>8}  SDK path")
        for n in args.shards:
            cfg = load_config(config_with(n, Path(tmp)))
            t0 = time.perf_counter()
            built = build(cfg)
            warm_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "deploy.py"), "definition", "--config",
                            str(config_with(n, Path(tmp)))], check=True, capture_output=True)
            cold_s = time.perf_counter() - t0
            size, indented = len(built.definition), len(pretty(built.definition))
            path = "S3 location" if size > threshold else "inline"
            print(f"{n:>6} {warm_s:>11.2f}s {cold_s:>9.2f}s {size / 1024:>10.0f} {indented / 1024:>11.0f} "
                  f"{size / API_LIMIT:>7.0%}  {path}{'  OVER LIMIT' if size > API_LIMIT else ''}")
        print(f"SDK S3 threshold: {threshold // 1024} KB; API limit: {API_LIMIT // 1024} KB")


if __name__ == "__main__":
    main()
