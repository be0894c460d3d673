"""Keys stay inside their folder (steps/io/storage.py): `..`, `.`, absolute keys, NUL and
backslashes are refused by the local storage everywhere and by S3 storage for writes."""

from __future__ import annotations

import boto3
import pytest

from steps.io import storage as st

HOSTILE = ["../escape", "a/../../escape", "a/./b", "/etc/passwd", "a\x00b", "a\\..\\b", ".."]


class TestValidKeys:
    @pytest.mark.parametrize("key", ["a", "a/b.hea", "30/3000003/3000003_0001.dat", "a..b/c", "...", "a/b/"])
    def test_ordinary_keys_pass(self, key):
        assert st.key_problem(key) is None and st.check_key(key, "k") == key


class TestInvalidKeys:
    @pytest.mark.parametrize("key", HOSTILE)
    def test_local_storage_refuses_every_operation_and_writes_nothing_outside(self, tmp_path, key):
        storage = st.LocalStorage(tmp_path / "root" / "s3")
        uri = f"s3://bkt/{key}"
        for call in (lambda: storage.write_bytes(uri, b"x"), lambda: storage.read_bytes(uri),
                     lambda: list(storage.list(uri)), lambda: storage.head(uri), lambda: storage.delete(uri)):
            with pytest.raises(st.UnsafeKey, match="outside its folder"):
                call()
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []

    @pytest.mark.parametrize("bucket", ["..", "."])
    def test_a_bucket_that_is_a_dot_segment_is_refused(self, tmp_path, bucket):
        with pytest.raises(st.UnsafeKey):
            st.LocalStorage(tmp_path / "s3").write_bytes(f"s3://{bucket}/x", b"x")
        assert not (tmp_path / "x").exists()

    def test_s3_refuses_writes_to_hostile_keys_and_reads_them(self, aws, tmp_path):
        """S3 keeps `a/../b` literally: a source may hold one (reads work), no write makes one."""
        client = boto3.client("s3")
        client.create_bucket(Bucket="bkt")
        client.put_object(Bucket="bkt", Key="src/../x.hea", Body=b"h")
        s3 = st.S3Storage(client)
        assert s3.read_bytes("s3://bkt/src/../x.hea") == b"h"
        (tmp_path / "f").write_bytes(b"y")
        for call in (lambda: s3.write_bytes("s3://bkt/exp/../../x", b"x"),
                     lambda: s3.upload(tmp_path / "f", "s3://bkt/exp/../x"),
                     lambda: s3.copy("s3://bkt/src/../x.hea", "s3://bkt/exp/../x.hea", size=1)):
            with pytest.raises(st.UnsafeKey):
                call()
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="bkt")["Contents"]]
        assert keys == ["src/../x.hea"]
