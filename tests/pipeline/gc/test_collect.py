"""`gc` over objects made by real local runs, on local storage and on the moto server: after a
change and a second run it lists exactly the places only the first run referenced, keeps
young objects, and a run after `gc --delete` succeeds with the same results."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.gc.collect import collect
from pipeline.local.backend import open_backend
from tests.conftest import EXAMPLE_CONFIG
from tests.pipeline.local.test_incremental import flip_a_byte, last_execution

BASE = "s3://wavepipe-example/wavepipe/wavepipe-example"
DATA_KEY = "sample/mimic3wdb/30/3000001/3000001_0001.dat"


def local(workdir: Path, *extra: str) -> int:
    return main(["local", "--config", str(EXAMPLE_CONFIG), "--workdir", str(workdir), *extra])


def places(storage, workdir: Path) -> set[str]:
    """The work shard places, labels and combined folder the last execution's reports name."""
    execution = last_execution(workdir)["ExecutionId"]
    reconcile = json.loads(storage.read_bytes(f"{BASE}/{execution}/reconcile/report.json"))
    combine = json.loads(storage.read_bytes(f"{BASE}/{execution}/combine/report.json"))
    return {s["uri"] for s in reconcile["work"]} | {reconcile["labels_uri"], combine["combined_uri"]}


def summary(storage, workdir: Path) -> pd.DataFrame:
    uri = last_execution(workdir)["Steps"]["Combine"]["Outputs"]["combine"]
    return pd.read_parquet(io.BytesIO(storage.read_bytes(f"{uri}/waveform_summary.parquet")))


def doomed(storage, workdir: Path, grace: timedelta) -> dict[str, set[str]]:
    items, _ = collect(load_config(EXAMPLE_CONFIG), storage, workdir, grace)
    out: dict[str, set[str]] = {}
    for item in items:
        if item.keep is None:
            out.setdefault(item.kind, set()).add(item.group)
    return out


def changed_once(workdir: Path, storage, change, *extra: str) -> tuple[set[str], set[str]]:
    """(places only the run before named, places the next run names) around one changed data file."""
    first = places(storage, workdir)
    change()
    assert local(workdir, *extra) == 0
    second = places(storage, workdir)
    return first - second, second


def check_lists_exactly_the_old(storage, workdir: Path, old: set[str]) -> None:
    got = doomed(storage, workdir, timedelta(0))
    shards = {p for p in old if "/shards/" in p}
    assert shards and got["shard"] == shards
    assert {g.rsplit("/features/", 1)[0] for g in got["features"]} == shards
    assert got["labels"] == {p for p in old if "/labels/" in p}
    assert {g for g in got["combined"]} == {p for p in old if "/combined/" in p}
    assert set(got) == {"shard", "features", "labels", "combined"}  # the record cache is all referenced


def check_delete_then_run(storage, workdir: Path, *extra: str) -> None:
    before = summary(storage, workdir)
    assert main(["gc", "--config", str(EXAMPLE_CONFIG), "--workdir", str(workdir), "--grace", "0", "--delete",
                 *extra]) == 0
    assert doomed(storage, workdir, timedelta(0)) == {}
    assert local(workdir, *extra) == 0
    pd.testing.assert_frame_equal(summary(storage, workdir), before)


# Each local test starts from a copy of the example's first run (example_copy), made once by the
# worker of the pytest-xdist group that shares it.
@pytest.mark.xdist_group("example_run")
class TestValidGcLocal:
    def test_lists_the_old_keeps_the_young_and_a_run_after_delete_agrees(self, example_copy, capsys):
        workdir = example_copy
        storage = open_backend("local", workdir).storage
        old, current = changed_once(workdir, storage, lambda: flip_a_byte(workdir))
        check_lists_exactly_the_old(storage, workdir, old)
        # On AWS, SageMaker's step cache (30 days) may still name a work shard's place: it stays.
        items, _ = collect(load_config(EXAMPLE_CONFIG), storage, workdir, timedelta(0), storage_label="aws")
        kept = {i.group for i in items if i.kind in ("shard", "features") and i.keep and "step cache" in i.keep}
        assert kept and {g.rsplit("/features/", 1)[0] for g in kept} == {p for p in old if "/shards/" in p}
        # Default grace (7 days): everything here is minutes old, so nothing goes.
        assert doomed(storage, workdir, timedelta(days=7)) == {}
        # Age the first execution (its record and folder) and its combined folder only: that folder
        # alone goes; the first run's old shards and labels are unreferenced but young.
        [combined] = [p for p in old if "/combined/" in p]
        first = min((workdir / "executions").glob("*/execution.json"))
        record = json.loads(first.read_text())
        record["Started"] = "2026-01-01T00:00:00+00:00"
        first.write_text(json.dumps(record))
        aged = time.time() - 10 * 86400
        for path in [*Path(storage.path(combined)).rglob("*"),
                     *Path(storage.path(f"{BASE}/{record['ExecutionId']}")).rglob("*")]:
            os.utime(path, (aged, aged))
        assert doomed(storage, workdir, timedelta(days=7)) == {"combined": {combined}}
        # An entry no segment names, and a key folder of other code: unreferenced.
        cache = next(Path(storage.path(f"{BASE}/record-cache")).iterdir())
        orphan = cache / "objects" / ("0" * 64 + ".parquet")
        orphan.write_bytes(b"orphan")
        other = cache.parent / "0123456789abcdef" / "index" / ("1" * 64 + ".json")
        other.parent.mkdir(parents=True)
        other.write_bytes(b"{}")
        got = doomed(storage, workdir, timedelta(0))
        assert got["cache-entry"] == {f"{BASE}/record-cache/{cache.name}"}
        assert got["cache-segment"] == {f"{BASE}/record-cache/0123456789abcdef"}
        capsys.readouterr()
        assert main(["gc", "--config", str(EXAMPLE_CONFIG), "--workdir", str(workdir), "--grace", "0"]) == 0
        out = capsys.readouterr().out
        assert "KIND" in out and "KEPT-BECAUSE" in out and "dry run:" in out
        assert orphan.exists()  # a dry run deletes nothing
        check_delete_then_run(storage, workdir)
        assert not orphan.exists() and not other.exists()

    def test_compact_writes_one_segment_and_supersedes_the_rest(self, example_copy):
        workdir = example_copy
        storage = open_backend("local", workdir).storage
        segments = lambda: sorted(Path(storage.path(f"{BASE}/record-cache")).glob("*/index/*.json"))  # noqa: E731
        assert len(segments()) >= 2  # one per Featurize job
        before = segments()
        assert main(["gc", "--config", str(EXAMPLE_CONFIG), "--workdir", str(workdir), "--compact"]) == 0
        assert len(segments()) == len(before) + 1
        # The older ones are superseded, but young: kept until the grace period passes.
        assert doomed(storage, workdir, timedelta(days=7)) == {}
        assert doomed(storage, workdir, timedelta(0))["cache-segment"]
        check_delete_then_run(storage, workdir)
        assert len(segments()) == 1

    def test_refuses_while_a_run_holds_the_workdir(self, example_copy, capsys):
        from pipeline.local.lock import workdir_lock

        workdir = example_copy
        import threading

        result = {}
        with workdir_lock(workdir):
            t = threading.Thread(target=lambda: result.setdefault("code", main(
                ["gc", "--config", str(EXAMPLE_CONFIG), "--workdir", str(workdir), "--delete"])))
            t.start()
            t.join()
        assert result["code"] == 2
        assert "is in use by" in capsys.readouterr().err


class TestValidGcOnS3:
    def test_against_the_moto_server(self, aws, tmp_path):
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="wavepipe-example")
        workdir = tmp_path / "w"
        storage = open_backend(aws, workdir).storage

        def change() -> None:
            data = bytearray(s3.get_object(Bucket="wavepipe-example", Key=DATA_KEY)["Body"].read())
            data[100] ^= 0xFF
            s3.put_object(Bucket="wavepipe-example", Key=DATA_KEY, Body=bytes(data))

        assert local(workdir, "--s3-endpoint", aws) == 0
        old, _ = changed_once(workdir, storage, change, "--s3-endpoint", aws)
        check_lists_exactly_the_old(storage, workdir, old)
        assert doomed(storage, workdir, timedelta(days=7)) == {}
        check_delete_then_run(storage, workdir, "--s3-endpoint", aws)
