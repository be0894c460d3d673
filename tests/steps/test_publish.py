"""Shards published at their content address (steps/publish.py): an object already there is
verified before it is trusted, and a damaged one is rewritten; two publishers at once write the
same bytes to the same keys."""

from __future__ import annotations

import json
import threading

import boto3
import pytest

from steps.contract import INDEX_FILE
from steps.io import storage as st
from steps.publish import index_body, manifest_body, publish_shard, put_verified

EXPERIMENT = "s3://bkt/experiments/e1"
PREFIX = "s3://raw/data/"


def files(n: int = 3) -> dict[str, st.ObjectInfo]:
    return {f"r{i}/r{i}.hea": st.ObjectInfo(f"{PREFIX}r{i}/r{i}.hea", 10 + i, f"etag{i}") for i in range(n)}


@pytest.fixture
def storage(tmp_path) -> st.LocalStorage:
    return st.LocalStorage(tmp_path / "s3")


class TestValidPublish:
    def test_a_second_publish_of_intact_objects_writes_nothing(self, storage):
        first = publish_shard(storage, EXPERIMENT, "shard-0", PREFIX, files())
        before = {p: p.stat().st_mtime_ns for p in storage.path(first.uri).iterdir()}
        again = publish_shard(storage, EXPERIMENT, "shard-0", PREFIX, files())
        assert again == first and again.repaired == ()
        assert {p: p.stat().st_mtime_ns for p in storage.path(first.uri).iterdir()} == before

    def test_concurrent_publishers_of_one_shard_leave_exact_objects(self, storage):
        """Two executions (a schedule and a manual start) publishing the same shard at once: the
        same keys, the same bytes, whatever the interleaving; nothing partial is ever seen."""
        barrier, results, errors = threading.Barrier(8), [], []

        def publish() -> None:
            barrier.wait()
            try:
                for _ in range(20):
                    results.append(publish_shard(storage, EXPERIMENT, "shard-0", PREFIX, files(50)))
                    index = json.loads(storage.read_bytes(f"{results[-1].uri}/{INDEX_FILE}"))
                    assert len(index) == 50  # every read is whole
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=publish) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and len({r.uri for r in results}) == 1
        place = results[0].uri
        assert storage.read_bytes(f"{place}/{INDEX_FILE}") == index_body(files(50))
        assert storage.read_bytes(f"{place}/shard.manifest") == manifest_body(PREFIX, list(files(50)))
        assert storage.read_bytes(f"{place}/shard.json") == b'{"shard": "shard-0"}'
        assert sorted(p.name for p in storage.path(place).iterdir()) == ["index.json", "shard.json", "shard.manifest"]


class TestInvalidPublished:
    """Hostile: what is at the content address is not what the address says."""

    @pytest.mark.parametrize("damage", ["truncate", "edit_same_size", "empty", "delete"])
    @pytest.mark.parametrize("name", [INDEX_FILE, "shard.manifest", "shard.json"])
    def test_a_damaged_object_is_rewritten_and_named(self, storage, damage, name):
        first = publish_shard(storage, EXPERIMENT, "shard-0", PREFIX, files())
        path = storage.path(f"{first.uri}/{name}")
        good = path.read_bytes()
        if damage == "truncate":
            path.write_bytes(good[: len(good) // 2])
        elif damage == "edit_same_size":  # a record dropped and padded: same size, other bytes
            path.write_bytes(good.replace(b"r1/r1.hea", b"r9/r9.hea").replace(b"shard-0", b"shard-9"))
        elif damage == "empty":
            path.write_bytes(b"")
        else:
            path.unlink()
        again = publish_shard(storage, EXPERIMENT, "shard-0", PREFIX, files())
        assert path.read_bytes() == good
        assert again.repaired == (() if damage == "delete" else (f"{first.uri}/{name}",))
        assert again.as_report().get("repaired", []) == list(again.repaired)

    def test_on_s3_with_kms_etags_the_bytes_decide(self, aws):
        """Under SSE-KMS an ETag is not the MD5 of the bytes: an intact object is read and kept,
        an edited one of the same size rewritten."""
        boto3.client("s3").create_bucket(Bucket="bkt")
        s3 = st.S3Storage(boto3.client("s3"))
        uri = f"{EXPERIMENT}/x/index.json"
        body = b'{"a": 1}'
        s3.write_bytes(uri, body)
        present = {o.uri: st.ObjectInfo(o.uri, o.size, "not-an-md5") for o in s3.list(f"{EXPERIMENT}/x/")}
        assert put_verified(s3, uri, body, present) == "unchanged"
        s3.write_bytes(uri, b'{"a": 2}')
        present = {o.uri: st.ObjectInfo(o.uri, o.size, "not-an-md5") for o in s3.list(f"{EXPERIMENT}/x/")}
        assert put_verified(s3, uri, body, present) == "repaired" and s3.read_bytes(uri) == body
