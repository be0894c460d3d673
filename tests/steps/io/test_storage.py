"""steps.io.storage on both backends: local folder mapping and a real S3 API (moto server)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from steps.io import storage as st


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, monkeypatch):
    if request.param == "local":
        monkeypatch.setenv(st.S3_ROOT_ENV, str(tmp_path / "root"))
        return st.from_env()
    request.getfixturevalue("aws")
    boto3.client("s3").create_bucket(Bucket="bucket")
    return st.from_env(max_connections=4)


class TestValidStorage:
    def test_from_env_picks_the_backend(self, tmp_path):
        assert isinstance(st.from_env({st.S3_ROOT_ENV: str(tmp_path)}), st.LocalStorage)
        remote = st.from_env({st.KMS_ENV: "alias/k"}, max_connections=7)
        assert isinstance(remote, st.S3Storage) and remote.kms_key_id == "alias/k"
        assert remote.client.meta.config.max_pool_connections == 7

    def test_uris(self):
        assert st.split_uri("s3://b/a/c") == ("b", "a/c")
        assert st.join_uri("s3://b/x/", "/y/", "z") == "s3://b/x/y/z"

    def test_write_read_head_list_delete(self, storage):
        storage.write_bytes("s3://bucket/a/1/x", b"hello")
        storage.write_bytes("s3://bucket/a/10/y", b"world!")
        head = storage.head("s3://bucket/a/1/x")
        assert head.size == 5 and head.etag == "5d41402abc4b2a76b9719d911017c592"
        assert storage.read_bytes("s3://bucket/a/1/x") == b"hello"
        assert [o.uri for o in storage.list("s3://bucket/a/1/")] == ["s3://bucket/a/1/x"]
        assert len(list(storage.list("s3://bucket/a/1"))) == 2  # a string prefix, as S3's
        storage.delete("s3://bucket/a/1/x")
        assert storage.head("s3://bucket/a/1/x") is None and storage.head_metadata("s3://bucket/a/1/x") is None

    def test_copy_keeps_etag_and_records_metadata(self, storage):
        storage.write_bytes("s3://bucket/src/f", b"payload")
        storage.copy("s3://bucket/src/f", "s3://bucket/dst/f", size=7, metadata={"wavepipe-source-etag": "abc"})
        storage.copy("s3://bucket/src/f", "s3://bucket/dst/g")  # the original signature still works
        src, dst = storage.head("s3://bucket/src/f"), storage.head("s3://bucket/dst/f")
        assert (dst.size, dst.etag) == (src.size, src.etag)
        assert storage.read_bytes("s3://bucket/dst/g") == b"payload"
        if isinstance(storage, st.S3Storage):
            assert storage.head_metadata("s3://bucket/dst/f") == {"wavepipe-source-etag": "abc"}
        else:
            assert storage.head_metadata("s3://bucket/dst/f") == {}

    def test_upload_download(self, storage, tmp_path):
        (tmp_path / "in.bin").write_bytes(b"\x00\x01")
        storage.upload(tmp_path / "in.bin", "s3://bucket/up/in.bin")
        storage.download("s3://bucket/up/in.bin", tmp_path / "out" / "in.bin")
        assert (tmp_path / "out" / "in.bin").read_bytes() == b"\x00\x01"


class TestValidS3Storage:
    def test_listing_paginates_past_1000_keys(self, aws):
        client = boto3.client("s3", config=Config(max_pool_connections=16))
        client.create_bucket(Bucket="many")
        with ThreadPoolExecutor(max_workers=16) as pool:  # the 1005 PutObject calls, 16 at a time
            list(pool.map(lambda i: client.put_object(Bucket="many", Key=f"p/{i:05d}", Body=b"x"), range(1005)))
        storage = st.S3Storage()
        calls = []
        storage.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(1))
        keys = [o.uri for o in storage.list("s3://many/p/")]
        assert len(keys) == 1005 and keys == sorted(keys) and len(calls) == 2

    def test_managed_copy_without_size_and_kms_on_writes(self, aws):
        key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
        boto3.client("s3").create_bucket(Bucket="enc")
        storage = st.S3Storage(kms_key_id=key_id)
        storage.write_bytes("s3://enc/a", b"abc")
        storage.copy("s3://enc/a", "s3://enc/b")  # no size: the managed (multipart-capable) copy
        for key in ("a", "b"):
            head = storage.client.head_object(Bucket="enc", Key=key)
            assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]


class TestValidLocalStorage:
    def test_no_partial_file_is_listed(self, tmp_path):
        storage = st.LocalStorage(tmp_path)
        (tmp_path / "b" / "k").mkdir(parents=True)
        (tmp_path / "b" / "k" / ".wavepipe-tmp-abc").write_bytes(b"half")
        storage.write_bytes("s3://b/k/done", b"x")
        assert [o.uri for o in storage.list("s3://b/k/")] == ["s3://b/k/done"]


class TestInvalidStorage:
    def test_bad_uris(self):
        with pytest.raises(ValueError, match="not an s3:// URI"):
            st.split_uri("/local/path")
        with pytest.raises(ValueError, match="without a bucket"):
            st.split_uri("s3:///key")

    def test_missing_objects(self, storage, tmp_path):
        with pytest.raises(FileNotFoundError, match="s3://bucket/nope"):
            storage.read_bytes("s3://bucket/nope")
        with pytest.raises(FileNotFoundError, match="s3://bucket/nope"):
            storage.copy("s3://bucket/nope", "s3://bucket/dst", size=1)
        with pytest.raises(FileNotFoundError, match="s3://bucket/nope"):
            storage.copy("s3://bucket/nope", "s3://bucket/dst")  # the managed (multipart) copy


class TestCheapListingCheck:
    """The listing client checks ListObjectsV2 bodies itself (botocore's extra parse is a
    quarter of its CPU); what botocore's check catches is still caught, other operations keep it."""

    @pytest.fixture
    def check(self):
        import boto3

        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        st._cheap_listing_check(client)
        model = client.meta.service_model

        def run(operation: str, status: int, body: bytes) -> int:
            response = {"status_code": status, "body": body, "headers": {}}
            client.meta.events.emit(f"before-parse.s3.{operation}", operation_model=model.operation_model(operation),
                                    response_dict=response, customized_response_dict={})
            return response["status_code"]

        return run

    def test_a_whole_page_passes(self, check):
        page = b'<?xml version="1.0"?><ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>\n'
        assert check("ListObjectsV2", 200, page) == 200

    @pytest.mark.parametrize("body", [
        b'<?xml version="1.0"?><ListBucketResult><Contents><Key>a</Key>',  # cut short
        b'<?xml version="1.0"?><Error><Code>InternalError</Code></Error>',  # an error sent as 200
    ])
    def test_what_botocore_would_retry_is_retried(self, check, body):
        assert check("ListObjectsV2", 200, body) == 500

    def test_other_operations_keep_botocores_check(self, check):
        error = b'<?xml version="1.0"?><Error><Code>InternalError</Code></Error>'
        assert check("CopyObject", 200, error) == 500
        assert check("CopyObject", 200, b'<?xml version="1.0"?><CopyObjectResult></CopyObjectResult>') == 200

    def test_a_listing_page_is_not_parsed_twice(self, check):
        # botocore's own check would parse this (and retry it as a 500); the listing check only
        # looks at the bytes, so the page goes straight to the one real parse.
        assert check("ListObjectsV2", 200, b"not xml </ListBucketResult>") == 200
