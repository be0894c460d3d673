"""read_mode stream: the fetcher against a real moto server, the prefetch bound, the host split,
and a streamed shard featurized exactly as the downloaded one."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from steps.io import storage as st
from steps.featurize import stream
from steps.featurize.fetch import FetchError, LocalFetcher, ObjectRef, S3Fetcher, s3_client
from steps.featurize.cache import read_index
from steps.work import folders_of, shard_body
from steps.featurize.run import featurize, featurize_streamed
from steps.featurize.settings import FeaturizeSettings, StreamSettings
from steps.featurize.stream import Hosts, Prefetcher, folder_host, host_share
from steps.publish import index_body, manifest_body
from tests.steps.featurize import data as gen

BUCKET = "stream-bucket"
PREFIX = f"s3://{BUCKET}/raw/"
MIB = 1 << 20


def make_shard(root: Path) -> None:
    """Two MIMIC-style record folders (multi-segment, numerics) and plain records of three formats."""
    gen.write_mimic3_record(root / "30" / "3000003", "3000003", seed=1)
    gen.write_mimic3_record(root / "31" / "3100011", "3100011", seed=2)
    for i, fmt in enumerate(["16", "80", "212"]):
        gen.write_record(root / f"plain{i}", f"r{i}", gen.signals(4000 + i, 3, fmt, seed=10 + i, nan_runs=2), fmt)


def upload(root: Path, client, tmp: Path) -> tuple[Path, Path, dict]:
    """The shard's files uploaded under PREFIX; its manifest and index written as Reconcile does."""
    client.create_bucket(Bucket=BUCKET)
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = path.relative_to(root).as_posix()
        client.upload_file(str(path), BUCKET, "raw/" + key)
        head = client.head_object(Bucket=BUCKET, Key="raw/" + key)
        files[key] = st.ObjectInfo(PREFIX + key, head["ContentLength"], head["ETag"].strip('"'))
    manifest, index = tmp / "shard-0001.manifest", tmp / "index.json"
    manifest.write_bytes(manifest_body(PREFIX, list(files)))
    index.write_bytes(index_body(files))
    return manifest, index, json.loads(index.read_text())


@pytest.fixture
def s3(aws):
    return boto3.client("s3")


@pytest.fixture
def shard(tmp_path, s3):
    root = tmp_path / "shard"
    make_shard(root)
    manifest, index, entries = upload(root, s3, tmp_path)
    return root, manifest, index, entries


def faulty(client, failures: int, code: str = "SlowDown", status: int = 503) -> list[str]:
    """Answer the first `failures` GetObject requests with a throttling error, in botocore's
    own event chain (before-send): real retries of the real client, no mock of our code."""
    sent: list[str] = []

    class Raw:
        def stream(self, **_):
            yield f"<Error><Code>{code}</Code><Message>Please reduce your request rate.</Message></Error>".encode()

    def before_send(request, **_):
        sent.append(request.headers.get("Range", b"").decode() if request.headers.get("Range") else "")
        if len(sent) <= failures:
            return AWSResponse(request.url, status, {}, Raw())
        return None

    client.meta.events.register("before-send.s3.GetObject", before_send)
    return sent


def big_object(s3, size: int) -> ObjectRef:
    body = bytes(range(256)) * (size // 256)
    s3.put_object(Bucket=BUCKET, Key="raw/big.dat", Body=body)
    etag = s3.head_object(Bucket=BUCKET, Key="raw/big.dat")["ETag"].strip('"')
    return ObjectRef(f"s3://{BUCKET}/raw/big.dat", len(body), etag)


def fetch(fetcher, obj: ObjectRef, path: Path) -> None:
    fetcher.result(obj, path, fetcher.submit(obj, path))


class TestValidFetcher:
    def test_large_object_in_ranged_parts_with_throttling_retried(self, aws, s3, tmp_path):
        s3.create_bucket(Bucket=BUCKET)
        obj = big_object(s3, 12 * MIB + 1000)
        options = StreamSettings(part_size_mb=5, threads=3, max_attempts=5)
        client = s3_client(options)
        sent = faulty(client, failures=2)
        fetcher = S3Fetcher(options, client)
        try:
            fetch(fetcher, obj, tmp_path / "big.dat")
        finally:
            fetcher.close()
        assert (tmp_path / "big.dat").read_bytes() == s3.get_object(Bucket=BUCKET, Key="raw/big.dat")["Body"].read()
        assert set(sent) == {f"bytes=0-{5 * MIB - 1}", f"bytes={5 * MIB}-{10 * MIB - 1}", f"bytes={10 * MIB}-"}
        assert len(sent) == 3 + 2  # three parts, two of them answered SlowDown once and sent again

    def test_local_fetcher_checks_size_and_etag(self, tmp_path):
        storage = st.LocalStorage(tmp_path / "s3")
        storage.write_bytes("s3://b/k.dat", b"abc")
        good = storage.head("s3://b/k.dat")
        fetcher = LocalFetcher(storage, StreamSettings())
        try:
            fetch(fetcher, ObjectRef(good.uri, good.size, good.etag), tmp_path / "k.dat")
            assert (tmp_path / "k.dat").read_bytes() == b"abc"
            with pytest.raises(FetchError, match=r"s3://b/k.dat: changed since the shard was indexed"):
                fetch(fetcher, ObjectRef(good.uri, good.size, "0" * 32), tmp_path / "x.dat")
        finally:
            fetcher.close()


class TestInvalidFetcher:
    def test_throttling_past_the_attempts_names_the_key(self, aws, s3, tmp_path):
        s3.create_bucket(Bucket=BUCKET)
        obj = big_object(s3, 1000)
        options = StreamSettings(max_attempts=2)
        client = s3_client(options)
        faulty(client, failures=100)
        fetcher = S3Fetcher(options, client)
        try:
            with pytest.raises(FetchError, match=r"^s3://stream-bucket/raw/big.dat: SlowDown after 2 attempts"):
                fetch(fetcher, obj, tmp_path / "big.dat")
        finally:
            fetcher.close()

    def test_object_changed_since_indexed(self, aws, s3, tmp_path):
        s3.create_bucket(Bucket=BUCKET)
        obj = big_object(s3, 11 * MIB)
        s3.put_object(Bucket=BUCKET, Key="raw/big.dat", Body=b"x" * obj.size)  # same size, new ETag
        fetcher = S3Fetcher(StreamSettings(part_size_mb=5))
        try:
            with pytest.raises(FetchError, match=r"big.dat: changed since the shard was indexed \(ETag is no longer"):
                fetch(fetcher, obj, tmp_path / "big.dat")
        finally:
            fetcher.close()
        assert not (tmp_path / "big.dat").exists()  # nothing half-written of either version

    def test_missing_object(self, aws, s3, tmp_path):
        s3.create_bucket(Bucket=BUCKET)
        fetcher = S3Fetcher(StreamSettings())
        try:
            with pytest.raises(FetchError, match=r"^s3://stream-bucket/raw/gone.dat: no such object"):
                fetch(fetcher, ObjectRef(f"s3://{BUCKET}/raw/gone.dat", 10, "a" * 32), tmp_path / "gone.dat")
        finally:
            fetcher.close()


def read_outputs(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return (pd.read_parquet(out / "features.parquet"), pd.read_parquet(out / "errors.parquet"),
            json.loads((out / "report.json").read_text()))


class TestValidStreamedShard:
    def test_same_features_as_download_mode_and_bounded_in_flight(self, shard, tmp_path):
        root, manifest, index, _ = shard
        downloaded = featurize(root, tmp_path / "dl", jobs=1, shard="shard-0001")
        settings = FeaturizeSettings(read_mode="stream", stream=StreamSettings(records_in_flight=2))
        streamed = featurize_streamed(manifest, index, tmp_path / "st", settings, jobs=1, shard="shard-0001")
        dl, st_ = read_outputs(tmp_path / "dl"), read_outputs(tmp_path / "st")
        pd.testing.assert_frame_equal(dl[0], st_[0])
        assert streamed["records_total"] == downloaded["records_total"] == 7 and not len(st_[1])
        assert streamed["records_in_flight_peak"] == 2
        assert streamed["bytes_fetched"] == sum(r.stat().st_size for r in root.rglob("*.dat"))

    def test_scratch_holds_only_the_records_in_flight(self, shard, tmp_path):
        _, manifest, index, _ = shard
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        settings = FeaturizeSettings(read_mode="stream", feature_function="tests.steps.featurize.test_stream:"
                                     "count_scratch", feature_options={"scratch": str(scratch)},
                                     stream=StreamSettings(records_in_flight=2, scratch_dir=str(scratch)))
        featurize_streamed(manifest, index, tmp_path / "out", settings, jobs=1, shard="s")
        seen = pd.read_parquet(tmp_path / "out" / "features.parquet")
        assert len(seen) == 7 and seen.folders.max() <= 2 and seen.data_files.min() >= 1
        assert list(scratch.iterdir()) == []  # every record's folder deleted once featurized

    def test_record_cache_shared_with_download_mode(self, shard, tmp_path):
        """Both modes write the same pack, byte for byte: the record cache's key leaves the
        transport out, so rows featurized by either serve the other."""
        root, manifest, index, _ = shard
        cache, storage = "s3://cache/record-cache/k", st.LocalStorage(tmp_path / "s3")
        work = shard_body("s", folders_of([("s", PREFIX, objects(index))]))["folders"]
        dl = featurize(root, tmp_path / "dl", jobs=1, shard="s", work=work, record_cache=cache, storage=storage)
        streamed = featurize_streamed(manifest, index, tmp_path / "st", FeaturizeSettings(read_mode="stream"), jobs=1,
                                      shard="s", work=work, record_cache=cache, storage=storage)
        assert dl["record_cache_pack"] == streamed["record_cache_pack"] and dl["record_cache_written"] == 5
        assert len(list(storage.list(f"{cache}/objects/"))) == 1

    def test_records_that_move_to_another_shard_keep_their_keys(self, shard):
        """A new `macroshards: auto` count moves records between shards: the MIMIC folders (their
        group is in their path) keep their keys, so their rows are reused; the plain records,
        whose group is the shard's name, get new keys (their group column changes)."""
        _, _, index, _ = shard
        files = objects(index)
        before = {f.path: f.key for f in folders_of([("shard-0001", PREFIX, files)])}
        after = {f.path: f.key for f in folders_of([("shard-0005", PREFIX, files)])}
        kept = sorted(path for path in before if before[path] == after[path])
        assert len(before) == 5 and len(kept) == 2 and all(path.startswith("3") for path in kept)


def objects(index: Path) -> dict[str, st.ObjectInfo]:
    """A shard's index.json as the listing's objects (what `steps/work.py` keys folders by)."""
    return {k: st.ObjectInfo(PREFIX + k, int(v["size"]), v["etag"]) for k, v in read_index(index).items()}


class TestInvalidStreamedShard:
    def test_missing_and_changed_objects_are_error_rows_naming_the_key(self, shard, s3, tmp_path):
        _, manifest, index, _ = shard
        s3.delete_object(Bucket=BUCKET, Key="raw/plain0/r0.dat")
        s3.put_object(Bucket=BUCKET, Key="raw/plain1/r1.dat", Body=b"\0" * 12003)
        report = featurize_streamed(manifest, index, tmp_path / "out", FeaturizeSettings(read_mode="stream"), jobs=1,
                                    shard="s")
        errors = pd.read_parquet(tmp_path / "out" / "errors.parquet").set_index("record")
        assert errors.loc["r0", "kind"] == errors.loc["r1", "kind"] == "fetch_error"
        assert errors.loc["r0", "message"] == f"{PREFIX}plain0/r0.dat: no such object (the shard's index lists it)"
        assert errors.loc["r1", "message"].startswith(f"{PREFIX}plain1/r1.dat: changed since the shard was indexed")
        assert report["records_failed"] == 2 and report["errors_by_kind"] == {"fetch_error": 2}


class TestValidHostSplit:
    @pytest.mark.parametrize("count", [1, 2, 3, 7])
    def test_every_file_on_exactly_one_host(self, count):
        index = {f"g{i % 13}/r{i}/{name}": {"size": 1, "etag": "e"} for i in range(400) for name in ("a.hea", "a.dat")}
        hosts = [f"algo-{i + 1}" for i in range(count)]
        shares = [host_share(index, Hosts(h, tuple(reversed(hosts)))) for h in hosts]
        assert sorted(k for share in shares for k in share) == sorted(index)
        for share in shares:  # a folder (the record cache's unit) never spans hosts
            folders = {k.rsplit("/", 1)[0] for k in share}
            assert all(f"{f}/a.hea" in share and f"{f}/a.dat" in share for f in folders)
        if count > 1:
            assert all(shares)  # 400 folders over a handful of hosts: none idle

    @pytest.mark.parametrize("hosts", [2, 4])
    @pytest.mark.parametrize("shards", [2, 8])
    def test_each_shard_spreads_over_every_host(self, hosts, shards):
        """The shard was picked by the unsalted hash of the same folder id (the listing stage's
        rule); the host split must not be a function of it. Records per host of every shard
        within 1.3x of an even split (400 records per shard)."""
        from steps.sharding import stable_index

        folders = [f"{30 + i % 10}/{3000000 + i}" for i in range(400 * shards)]
        for shard in range(shards):
            mine = [f for f in folders if stable_index(f, shards) == shard]
            index = {f"{f}/{f.rsplit('/', 1)[1]}.hea": {"size": 1, "etag": "e"} for f in mine}
            names = tuple(f"algo-{h + 1}" for h in range(hosts))
            counts = [len(host_share(index, Hosts(h, names))) for h in names]
            assert sum(counts) == len(mine)
            assert max(counts) <= 1.3 * len(mine) / hosts, (shard, counts)

    def test_rule_is_stable(self):
        assert [folder_host(f"30/300000{i}", 4) for i in range(6)] == [folder_host(f"30/300000{i}", 4) for i in range(6)]

    def test_resource_config(self, tmp_path):
        path = tmp_path / "resourceconfig.json"
        path.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
        hosts = stream.current_hosts({"WAVEPIPE_RESOURCE_CONFIG": str(path)})
        assert (hosts.current, hosts.count, hosts.index) == ("algo-2", 2, 1)
        assert stream.current_hosts({"WAVEPIPE_RESOURCE_CONFIG": str(tmp_path / "none")}) == Hosts()


def count_scratch(record, *, scratch: str):
    """A feature function that reports what the scratch folder holds while a record is featurized."""
    folders = list(Path(scratch).iterdir())
    return [{"group": record.group, "record": record.record, "artifact": record.artifact, "signal": "",
             "folders": len(folders), "data_files": len(list(record.directory.glob("*.dat")))}]


def test_prefetcher_deletes_scratch_when_stopped_early(shard, tmp_path):
    root, _, _, entries = shard
    from steps.featurize.discovery import discover_records

    records = discover_records(root)
    items = [stream.record_objects(r, root, PREFIX, entries) for r in records]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    options = StreamSettings(records_in_flight=3, scratch_dir=str(scratch))
    fetcher = S3Fetcher(options)
    try:
        it = Prefetcher(fetcher, root, options).records(items)
        first = next(it)
        assert first.error is None and len(list(scratch.iterdir())) == 3
        it.close()
    finally:
        fetcher.close()
    assert list(scratch.iterdir()) == []


def test_a_host_count_the_resource_config_does_not_match_exits_2(tmp_path, monkeypatch, capsys):
    """The step says 2 instances, the job finds 1 (no resource config): refused before any work."""
    from steps.featurize.__main__ import main
    from steps.settings_file import write_settings

    monkeypatch.setenv("WAVEPIPE_RESOURCE_CONFIG", str(tmp_path / "absent.json"))
    write_settings(tmp_path / "featurize.json", "featurize", FeaturizeSettings())
    code = main(["--manifest", str(tmp_path / "m"), "--index", str(tmp_path / "i"), "--output", str(tmp_path / "o"),
                 "--hosts", "2", "--settings", str(tmp_path / "featurize.json")])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith(
        "--hosts 2, but the resource config names 1 host(s) (algo-1): the step and the job disagree on the "
        "instance count")


@pytest.mark.parametrize("what, content, message", [
    ("manifest", "not json", "manifest {dir}/m.manifest is no JSON"),
    ("index", '{"a.hea": {"size": 1}}', "index {dir}/index.json: a.hea: every entry needs size and etag"),
    ("resource", '{"hosts": ["algo-1"]}', "resource config {dir}/rc.json: expected current_host and hosts"),
])
def test_bad_job_inputs_exit_2_naming_the_file(tmp_path, monkeypatch, capsys, what, content, message):
    from steps.featurize.__main__ import main
    from steps.settings_file import write_settings

    files = {"manifest": tmp_path / "m.manifest", "index": tmp_path / "index.json", "resource": tmp_path / "rc.json"}
    files["manifest"].write_text(json.dumps([{"prefix": PREFIX}, "a.hea"]))
    files["index"].write_text(json.dumps({"a.hea": {"size": 1, "etag": "e"}}))
    files["resource"].write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    files[what].write_text(content)
    monkeypatch.setenv("WAVEPIPE_RESOURCE_CONFIG", str(files["resource"]))
    write_settings(tmp_path / "featurize.json", "featurize", FeaturizeSettings())
    code = main(["--manifest", str(files["manifest"]), "--index", str(files["index"]), "--output",
                 str(tmp_path / "o"), "--settings", str(tmp_path / "featurize.json")])
    assert code == 2
    assert message.format(dir=tmp_path) in capsys.readouterr().err
