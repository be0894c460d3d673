"""A folder of the user's own WFDB records as the input of a local run, end to end through the
command line a new user types: `wavepipe init DIR --raw FOLDER`, `wavepipe local` in the project,
the results opened with pandas. Records: a few written with `wfdb.wrsamp` and real PhysioNet ones
copied to a temporary folder."""

from __future__ import annotations

import json
import os
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest
import wfdb

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.local.folders import localized, mirror, mirror_uri
from steps.io.storage import LocalStorage
from tests.conftest import EXAMPLE_CONFIG as EXAMPLE
from tests.conftest import PHYSIONET


def write_records(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(0, 20, 1 / 125)
    for i, name in enumerate(names):
        signals = np.stack([np.sin(2 * np.pi * (1 + i / 10) * t), 80 + 10 * np.sin(2 * np.pi * 0.2 * t)], axis=1)
        wfdb.wrsamp(name, fs=125, units=["mV", "mmHg"], sig_name=["II", "ABP"], p_signal=signals,
                    fmt=["16", "16"], write_dir=str(folder))


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "my data"
    write_records(folder / "generated", ["gen0", "gen1", "gen2"])
    if PHYSIONET.is_dir():  # a real record too, where the shared data is (a user's clone has none)
        shutil.copytree(PHYSIONET / "mimic3wdb" / "30" / "3000003", folder / "physionet" / "3000003")
    return folder


REAL = {"3000003"} if PHYSIONET.is_dir() else set()


def s3_project(tmp_path, data):
    """A project over `data` whose bucket is on the moto server: (config, its S3 storage, the
    mirror's record folder in a workdir, the mirror's URI)."""
    import boto3

    from steps.io.storage import S3Storage

    assert main(["init", str(tmp_path), "--raw", str(data)]) == 0
    cfg = load_config(tmp_path / "wavepipe.yaml")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=cfg.aws.bucket)
    return cfg, S3Storage(client=s3), tmp_path / "w" / "local-inputs", mirror_uri(cfg, data)


class TestValidFolderInput:
    def test_init_raw_then_local_featurizes_the_folder(self, tmp_path, data, monkeypatch, capsys):
        assert main(["init", str(tmp_path / "my-waves"), "--raw", str(data)]) == 0
        monkeypatch.chdir(tmp_path / "my-waves")
        capsys.readouterr()
        assert main(["local"]) == 0
        out = capsys.readouterr().out
        opener = next(line.strip() for line in out.splitlines() if "waveform_summary.parquet" in line
                      and line.strip().startswith("pd.read_parquet"))
        summary = eval(opener, {"pd": pd})  # the line the run prints to open its table
        assert set(summary.record) == {"gen0", "gen1", "gen2"} | REAL
        assert set(summary[summary.record == "gen1"].signal) == {"II", "ABP"}

    def test_the_last_lines_work_from_the_folder_the_run_was_started_in(self, tmp_path, data, monkeypatch, capsys):
        """A config and a workdir elsewhere: the opener and the `report` command still find them."""
        assert main(["init", str(tmp_path / "p"), "--raw", str(data)]) == 0
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        capsys.readouterr()
        assert main(["local", "--config", str(tmp_path / "p" / "wavepipe.yaml"), "--workdir", "../w"]) == 0
        out = capsys.readouterr().out
        opener = next(line.strip() for line in out.splitlines() if line.strip().startswith("pd.read_parquet")
                      and "waveform_summary.parquet" in line)
        assert opener.startswith(f'pd.read_parquet("{tmp_path / "w"}/')  # absolute, never ../
        assert set(eval(opener, {"pd": pd}).record) == {"gen0", "gen1", "gen2"} | REAL
        words = shlex.split(next(line for line in out.splitlines() if line.startswith("report:")).split("`")[1])
        assert words[3:] == ["--config", str(tmp_path / "p" / "wavepipe.yaml"), "--workdir", str(tmp_path / "w")]
        assert main(words[1:]) == 0  # the command as printed, typed in the same folder
        assert (tmp_path / "w" / "executions" / words[2] / "report.html").is_file()

    def test_labelled_records_and_their_sqlite_file_on_this_machine(self, tmp_path, capsys):
        """Every data input of the example, as file:// URIs: the records folder (mirrored) and the
        labels' SQLite file (read where it is) run through Reconcile to the encoded dataset."""
        from pipeline.local.sample_data import write_sample_data

        sample = tmp_path / "sample"
        write_sample_data(sample, size="small", seed=0)
        overlay = tmp_path / "local-data.yaml"
        overlay.write_text(f"parameters:\n  input_uri: file://{sample}/mimic3wdb\n"
                           f"stages:\n  reconcile:\n    labels:\n      sqlite_uri: file://{sample}/labels.sqlite\n"
                           "local:\n  sample_data_uri: null\n")
        workdir = tmp_path / "w"
        assert main(["local", "--config", str(EXAMPLE), "--overlay", str(overlay), "--workdir", str(workdir)]) == 0
        run = next((workdir / "s3" / "wavepipe-example" / "wavepipe" / "wavepipe-example").glob("local-*"))
        assert json.loads((run / "reconcile" / "report.json").read_text())["matched"] == 24
        assert (run / "encode" / "full_dataset").is_dir()
        assert not (workdir / "s3" / "wavepipe-example" / "sample").exists()  # nothing of the S3 sample

    def test_the_mirror_follows_the_folder(self, tmp_path, data):
        """Added, changed and removed files are seen by the next run; nothing else is rewritten."""
        config = tmp_path / "wavepipe.yaml"
        assert main(["init", str(tmp_path), "--raw", str(data)]) == 0
        cfg = load_config(config)
        store = LocalStorage(tmp_path / "w" / "s3")
        uri = mirror_uri(cfg, data)
        assert cfg.parameters.input_uri == f"file://{data}" and localized(cfg).parameters.input_uri == uri
        files = sum(1 for p in data.rglob("*") if p.is_file())  # 3 generated records (6 files) and the real one's
        assert mirror(cfg, store, note=lambda _: None) == files
        assert mirror(cfg, store, note=lambda _: None) == 0
        write_records(data / "generated", ["gen3"])
        (data / "generated" / "gen0.hea").unlink()
        assert mirror(cfg, store, note=lambda _: None) == 3  # two added, one removed
        keys = {info.uri[len(uri) + 1:] for info in store.list(uri + "/")}
        assert "generated/gen3.hea" in keys and "generated/gen0.hea" not in keys

    def test_an_edit_that_keeps_the_size_reaches_the_mirror(self, tmp_path, data):
        """On local storage: a new file of the same size, written within the same second as the
        one it replaces (an editor's save), is linked again."""
        assert main(["init", str(tmp_path), "--raw", str(data)]) == 0
        cfg = load_config(tmp_path / "wavepipe.yaml")
        store = LocalStorage(tmp_path / "w" / "s3")
        mirror(cfg, store, note=lambda _: None)
        source = data / "generated" / "gen1.dat"
        before = source.stat()
        edited = bytearray(source.read_bytes())
        edited[100] ^= 0xFF
        fresh = source.with_name("gen1.dat.new")
        fresh.write_bytes(bytes(edited))
        os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns // 10**9 * 10**9 + (before.st_mtime_ns + 1) % 10**9))
        fresh.replace(source)
        assert mirror(cfg, store, note=lambda _: None) == 1
        assert store.read_bytes(f"{mirror_uri(cfg, data)}/generated/gen1.dat") == bytes(edited)

    def test_the_s3_mirror_follows_edits_that_keep_the_size(self, tmp_path, data, aws):
        """On S3 (the moto server): what was uploaded is recorded in the workdir with the object's
        ETag; a same-size edit, or an object changed on S3, is uploaded again; nothing else is."""
        cfg, store, state, uri = s3_project(tmp_path, data)
        files = sum(1 for p in data.rglob("*") if p.is_file())
        assert mirror(cfg, store, note=lambda _: None, state=state) == files
        assert mirror(cfg, store, note=lambda _: None, state=state) == 0
        source = data / "generated" / "gen1.dat"
        edited = bytearray(source.read_bytes())
        edited[100] ^= 0xFF
        source.write_bytes(bytes(edited))  # the same size
        assert mirror(cfg, store, note=lambda _: None, state=state) == 1
        assert store.read_bytes(f"{uri}/generated/gen1.dat") == bytes(edited)
        store.write_bytes(f"{uri}/generated/gen2.hea", b"changed on S3")
        assert mirror(cfg, store, note=lambda _: None, state=state) == 1
        assert store.read_bytes(f"{uri}/generated/gen2.hea") == (data / "generated" / "gen2.hea").read_bytes()
        # The record lost (another workdir): each object whose ETag is its file's MD5 stays.
        shutil.rmtree(state)
        assert mirror(cfg, store, note=lambda _: None, state=state) == 0
        # The command line keeps the record in the workdir it runs on.
        source.write_bytes(bytes(edited[:100]) + bytes([edited[100] ^ 0xFF]) + bytes(edited[101:]))
        workdir = tmp_path / "other"
        assert main(["plan", "--config", str(tmp_path / "wavepipe.yaml"), "--workdir", str(workdir),
                     "--s3-endpoint", aws]) == 0
        assert store.read_bytes(f"{uri}/generated/gen1.dat") == source.read_bytes()
        assert set(json.loads((workdir / "local-inputs" / f"{uri.rsplit('/', 1)[1]}.json").read_text())) == \
            {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}

    def test_the_s3_mirror_keeps_big_files_and_the_record_of_what_it_did_not_reach(self, tmp_path, data, aws,
                                                                                   monkeypatch):
        """A file of several parts (its ETag is not its MD5) is recognised without a record; an
        upload that fails keeps the record of every file it did not reach."""
        from steps.io.storage import S3Storage, upload_etag

        big = data / "big" / "big.dat"
        big.parent.mkdir()
        big.write_bytes(np.random.default_rng(0).bytes(9 * 2**20))  # 2 parts of boto3's 8 MiB
        cfg, store, state, uri = s3_project(tmp_path, data)
        mirror(cfg, store, note=lambda _: None, state=state)
        assert store.head(f"{uri}/big/big.dat").etag.endswith("-2") and upload_etag(big) == \
            store.head(f"{uri}/big/big.dat").etag
        assert mirror(cfg, store, note=lambda _: None, state=tmp_path / "another") == 0  # no record: not sent again
        [record] = state.iterdir()
        before = json.loads(record.read_text())
        for path in data.rglob("*"):
            if path.is_file():
                path.write_bytes(path.read_bytes() + b"\0")  # every file changes
        monkeypatch.setattr(S3Storage, "upload", lambda *a: (_ for _ in ()).throw(OSError("network down")))
        with pytest.raises(OSError, match="network down"):
            mirror(cfg, store, note=lambda _: None, state=state)
        assert json.loads(record.read_text()) == before  # nothing was uploaded: every entry as it was

    def test_a_relative_folder_is_relative_to_the_config(self, tmp_path, data):
        (tmp_path / "p").mkdir()
        assert main(["init", str(tmp_path / "p"), "--raw", str(data)]) == 0
        config = tmp_path / "p" / "wavepipe.yaml"
        config.write_text(config.read_text().replace(f'input_uri: "{data}"', "input_uri: '../my data'"))
        assert load_config(config).parameters.input_uri == f"file://{data}"


class TestInvalidFolderInput:
    @pytest.mark.parametrize("command", ["upsert", "start", "schedule", "preflight"])
    def test_what_deploys_refuses_a_folder_naming_the_key(self, tmp_path, data, monkeypatch, capsys, command):
        assert main(["init", str(tmp_path / "p"), "--raw", str(data)]) == 0
        monkeypatch.chdir(tmp_path / "p")
        capsys.readouterr()
        assert main([command]) == 2
        err = capsys.readouterr().err
        assert f"parameters.input_uri: {data} is a folder on this machine" in err and "upload it to S3" in err

    @pytest.mark.parametrize("command", ["upsert", "iam-policy"])
    def test_what_deploys_refuses_a_local_labels_file_naming_the_key(self, tmp_path, capsys, command):
        overlay = tmp_path / "labels.yaml"
        overlay.write_text(f"stages:\n  reconcile:\n    labels:\n      sqlite_uri: {tmp_path}/labels.sqlite\n")
        assert main([command, "--config", str(EXAMPLE), "--overlay", str(overlay)]) == 2
        err = capsys.readouterr().err
        assert f"stages.reconcile.labels.sqlite_uri: {tmp_path}/labels.sqlite is a file on this machine" in err
        assert "parameters.input_uri" not in err and "upload it to S3" in err

    def test_init_raw_needs_wfdb_headers(self, tmp_path, capsys):
        (tmp_path / "empty").mkdir()
        assert main(["init", str(tmp_path / "p"), "--raw", str(tmp_path / "empty")]) == 2
        assert "no WFDB header (*.hea)" in capsys.readouterr().err

    def test_a_missing_folder_is_named(self, tmp_path, data, monkeypatch, capsys):
        assert main(["init", str(tmp_path / "p"), "--raw", str(data)]) == 0
        shutil.rmtree(data)
        monkeypatch.chdir(tmp_path / "p")
        assert main(["local"]) == 2
        assert f"parameters.input_uri: {data} is not a folder" in capsys.readouterr().err
