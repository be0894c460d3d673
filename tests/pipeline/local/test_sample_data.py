"""The sample dataset: deterministic, readable by wfdb, laid out like MIMIC-III."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import numpy as np
import pytest
import wfdb

from pipeline.local.sample_data import write_sample_data


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    return write_sample_data(out, "small", seed=0)


def test_same_seed_same_bytes_other_seed_differs(sample, tmp_path):
    again = write_sample_data(tmp_path / "again", seed=0)
    assert digest(sample.out) == digest(again.out)
    other = write_sample_data(tmp_path / "other", seed=1)
    assert digest(other.out) != digest(sample.out)


def test_small_is_small(sample):
    assert 20 <= len(sample.records) <= 40
    assert sample.bytes < 20_000_000


def test_mimic_layout_and_records_files(sample):
    root = sample.out / "mimic3wdb"
    assert (root / "RECORDS").read_text().splitlines() == [f"{r}/" for r in sample.records]
    groups = sorted({r.split("/")[0] for r in sample.records})
    assert groups == ["30", "31"]
    for entry in sample.records:
        group, record = entry.split("/")
        folder = root / group / record
        assert len(record) == 7 and record.startswith(group)
        assert f"{record}/" in (root / group / "RECORDS").read_text().splitlines()
        assert (folder / "RECORDS").read_text().splitlines() == [record, f"{record}n"]
        master = wfdb.rdheader(str(folder / record))
        assert master.layout == "variable" and master.fs == 125
        assert master.seg_name[0] == f"{record}_layout" and master.seg_len[0] == 0
        layout = wfdb.rdheader(str(folder / f"{record}_layout"))
        assert layout.sig_len == 0 and len(layout.sig_name) == master.n_sig
        for seg in master.seg_name[1:]:
            if seg != "~":
                header = wfdb.rdheader(str(folder / seg))
                assert set(header.fmt) == {"80"} and set(header.sig_name) <= set(layout.sig_name)
        numerics = wfdb.rdheader(str(folder / f"{record}n"))
        assert set(numerics.fmt) == {"16"}


def test_records_read_back_with_nan_runs(sample):
    broken = sample.defects["missing_segment_data"].rsplit("/", 1)[0]
    readable = [r for r in sample.records if r != broken][:3]
    for entry in readable:
        group, record = entry.split("/")
        rec = wfdb.rdrecord(str(sample.out / "mimic3wdb" / group / record / record), m2s=True)
        assert rec.p_signal.shape[0] == rec.sig_len and np.isnan(rec.p_signal).any()
    lengths = [wfdb.rdheader(str(sample.out / "mimic3wdb" / e / e.split("/")[1])).sig_len
               for e in sample.records]
    assert np.mean(lengths) > np.median(lengths)  # right-skewed, like ICU stays


def test_defects_are_there(sample):
    assert not (sample.out / "mimic3wdb" / sample.defects["missing_segment_data"]).exists()
    dup = sample.defects["duplicate_document"]
    texts = [json.loads((sample.out / "documents" / d / "raw_text.json").read_text())["text"]
             for d in sample.documents]
    assert texts.count(json.loads((sample.out / "documents" / dup / "raw_text.json")
                                  .read_text())["text"]) == 2
    with sqlite3.connect(sample.out / "labels.sqlite") as db:
        ids = {r[0] for r in db.execute("SELECT artifact_id FROM waveform_labels")}
        docs = dict(db.execute("SELECT artifact_id, label FROM document_labels"))
    assert sample.defects["label_without_files"] in ids
    assert {e.split("/")[1] for e in sample.records} <= ids
    assert set(docs) == set(sample.documents)


class TestKeptCopy:
    """`local` copies the sample from this machine's kept copy: the same bytes as generating it,
    and a damaged copy is never what a run gets."""

    def test_the_copy_is_the_generated_sample_and_its_labels_come_last(self, sample, tmp_path, monkeypatch):
        from pipeline.local import sample_cache

        cache = tmp_path / "cache"
        assert sample_cache.write_cached_sample_data(tmp_path / "a", cache=cache) == sample.bytes
        assert digest(tmp_path / "a") == digest(sample.out)
        copied = []
        real = sample_cache.shutil.copyfile
        monkeypatch.setattr(sample_cache.shutil, "copyfile", lambda src, dst: copied.append(dst.name) or real(src, dst))
        sample_cache.write_cached_sample_data(tmp_path / "b", cache=cache)  # from the kept copy
        assert digest(tmp_path / "b") == digest(sample.out)
        assert copied[-1] == ".labels.sqlite.part" and len(copied) == len(digest(sample.out))

    @pytest.mark.parametrize("damage", ["edited", "missing", "extra", "manifest"])
    def test_a_damaged_copy_is_dropped_and_made_again(self, sample, tmp_path, damage):
        from pipeline.local import sample_cache

        cache = tmp_path / "cache"
        sample_cache.write_cached_sample_data(tmp_path / "a", cache=cache)
        [entry] = cache.iterdir()
        record = next((entry / "files" / "mimic3wdb").rglob("*.dat"))
        if damage == "edited":
            record.write_bytes(b"\0" + record.read_bytes()[1:])
        elif damage == "missing":
            record.unlink()
        elif damage == "extra":
            (entry / "files" / "stray.txt").write_text("stray")
        else:
            (entry / "manifest.json").write_text("{not json")
        sample_cache.write_cached_sample_data(tmp_path / "b", cache=cache)
        assert digest(tmp_path / "b") == digest(sample.out)
        assert sample_cache._copy_verified(entry, tmp_path / "c") == sample.bytes  # made again, whole

    def test_a_cache_that_cannot_be_written_still_gives_the_sample(self, sample, tmp_path):
        from pipeline.local import sample_cache

        blocked = tmp_path / "file"
        blocked.write_text("a file where the cache folder would be")
        assert sample_cache.write_cached_sample_data(tmp_path / "a", cache=blocked / "cache") == sample.bytes
        assert digest(tmp_path / "a") == digest(sample.out)
