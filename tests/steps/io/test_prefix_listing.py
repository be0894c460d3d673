"""Concurrent, prefix-partitioned listing (steps/io/prefix_listing.py): the same stream as one paginator,
on a real S3 API (moto server) and on local folders."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from steps.io import prefix_listing as s3list
from steps.io import storage as st

BUCKET = "layout"


def mimic_keys(groups: int = 3, records: int = 15, segments: int = 3) -> list[str]:
    """The MIMIC-III waveform layout, plus the keys that sort around folder boundaries."""
    keys = []
    for g in range(30, 30 + groups):
        keys.append(f"{g}/RECORDS")
        for r in range(records):
            rec = f"{g}{r:05d}"
            keys += [f"{g}/{rec}/{rec}.hea", f"{g}/{rec}/{rec}_layout.hea", f"{g}/{rec}/{rec}n.hea",
                     f"{g}/{rec}/{rec}n.dat"]
            keys += [f"{g}/{rec}/{rec}_{s:04d}.{ext}" for s in range(1, segments + 1) for ext in ("hea", "dat")]
    # A file named like a folder without its slash sorts before the folder ('.' and '' < '/'),
    # a sibling with '-' between them, one with '0' after: each must land in exactly one range.
    keys += ["31/3100001", "31/3100001.txt", "31/3100001-x/a", "31/31000010/a", "31/3100001/deep/er/x.dat"]
    return sorted(set(keys))


@pytest.fixture(scope="module")
def layout(moto_server):
    """The bucket, filled once for the module (a few seconds of PutObject)."""
    import requests

    client = boto3.client("s3", endpoint_url=moto_server, config=Config(max_pool_connections=16))
    client.create_bucket(Bucket=BUCKET)
    keys = mimic_keys()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=BUCKET, Key=f"raw/{k}", Body=k.encode()), keys))
    client.put_object(Bucket=BUCKET, Key="rawish/outside", Body=b"x")  # a string prefix, not a folder
    yield keys
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)


@pytest.fixture
def bucket(layout, moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    # Small pages, so that every range spans several pages (the server reads this per request).
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "25")
    return layout


class Calls:
    def __init__(self, client) -> None:
        self.n = 0
        self.lock = threading.Lock()
        client.meta.events.register("before-call.s3.ListObjectsV2", self)

    def __call__(self, **_) -> None:
        with self.lock:
            self.n += 1


class TestValidConcurrentListing:
    @pytest.mark.parametrize("depth,workers", [(1, 4), (2, 8), (2, 32), (4, 3)])
    def test_same_stream_as_one_paginator(self, bucket, depth, workers):
        storage = st.S3Storage(max_connections=workers + 2)
        sequential = list(storage.list(f"s3://{BUCKET}/raw/"))
        assert [o.uri for o in sequential] == [f"s3://{BUCKET}/raw/{k}" for k in bucket]
        assert list(storage.list(f"s3://{BUCKET}/raw/", depth=depth, workers=workers)) == sequential

    def test_requests_stay_close_to_one_paginator(self, bucket):
        storage = st.S3Storage(max_connections=10)
        calls = Calls(storage.client)
        list(storage.list(f"s3://{BUCKET}/raw/"))
        pages, calls.n = calls.n, 0
        list(storage.list(f"s3://{BUCKET}/raw/", depth=2, workers=8))
        # The first page; discovery (the root and its 3 groups, 25 entries a page); then each
        # range at most one page more than its share (its last page reaches past its end).
        keys_per_folder = 25 / 3  # the first page: RECORDS and 3 record folders of group 30
        ranges = -(-(3 * 15 + 4) // round(s3list.KEYS_PER_RANGE / keys_per_folder))
        assert calls.n <= pages + 1 + (1 + 3) + ranges

    def test_one_page_is_one_request(self, bucket, monkeypatch):
        monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "1000")
        storage = st.S3Storage()
        calls = Calls(storage.client)
        assert len(list(storage.list(f"s3://{BUCKET}/raw/", depth=2, workers=8))) == len(bucket)
        assert calls.n == 1

    def test_a_prefix_that_is_no_folder_and_an_empty_one(self, bucket):
        storage = st.S3Storage()
        assert list(storage.list(f"s3://{BUCKET}/raw", depth=2, workers=4)) == list(storage.list(f"s3://{BUCKET}/raw"))
        assert list(storage.list(f"s3://{BUCKET}/nothing/", depth=2, workers=4)) == []

    def test_local_storage_lists_in_s3_key_order(self, bucket, tmp_path):
        local = st.LocalStorage(tmp_path)
        # A folder cannot also be a file on disk: leave out keys that are another key's folder.
        keys = [k for k in bucket if not any(o.startswith(k + "/") for o in bucket)]
        for key in keys:
            local.write_bytes(f"s3://{BUCKET}/raw/{key}", key.encode())
        remote = [o for o in st.S3Storage().list(f"s3://{BUCKET}/raw/", depth=2, workers=4)
                  if o.uri.removeprefix(f"s3://{BUCKET}/raw/") in keys]
        for workers in (1, 4):
            assert list(local.list(f"s3://{BUCKET}/raw/", depth=2, workers=workers)) == remote


class TestValidPieces:
    def test_ranges_cover_everything_past_the_first_page_once(self):
        folders = [f"g/{i:04d}/" for i in range(1000)]
        ranges = s3list.split_ranges("g/0099/x", folders, folders_per_range=90)
        assert ranges[0].start == "g/0099/x" and ranges[1].start == "g/0190/" and ranges[-1].stop is None
        assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:]))
        assert len(ranges) == 10 and s3list.split_ranges("a", [], 5) == [s3list.KeyRange("a", None)]
        assert s3list.folders_in(["g/1/a", "g/1/b", "g/2/a", "g/top"], "g/", 1) == 2

    def test_ordered_map_keeps_order_and_a_bounded_window(self):
        running, peak = [0], [0]
        lock = threading.Lock()

        def slow(i: int) -> int:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            with lock:
                running[0] -= 1
            return i * i

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(s3list.ordered_map(slow, range(100), pool, window=5)) == [i * i for i in range(100)]
        assert peak[0] <= 5
