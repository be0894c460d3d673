"""The content-addressed code bundle: reproducible, complete, and runnable by its bootstrap."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile

from pipeline.bundle import build_assets, pack_steps


class TestValidBundle:
    def test_byte_identical_on_rebuild(self):
        assert pack_steps() == pack_steps()

    def test_contains_steps_package_without_caches(self):
        with tarfile.open(fileobj=io.BytesIO(pack_steps())) as tar:
            names = tar.getnames()
        assert "steps/__init__.py" in names and "steps/storage.py" in names
        assert "steps/requirements.txt" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    def test_settings_change_moves_only_that_stage(self):
        a = build_assets("s3://b/p", {"featurize": {"x": 1}, "combine": {"y": 1}})
        b = build_assets("s3://b/p", {"featurize": {"x": 2}, "combine": {"y": 1}})
        assert a.code_uri == b.code_uri
        assert a.settings_uri("combine") == b.settings_uri("combine")
        assert a.settings_uri("featurize") != b.settings_uri("featurize")

    def test_bootstrap_runs_a_stage_from_the_bundle(self, tmp_path):
        assets = build_assets("s3://b/p", {})
        for uri, body in assets.files.items():
            (tmp_path / uri.rsplit("/", 1)[1]).write_bytes(body)
        # Run from an empty folder so only the unpacked bundle can provide `steps`.
        proc = subprocess.run(
            [sys.executable, str(tmp_path / "bootstrap.py"), "steps.featurize", "--help"],
            cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
        )
        assert proc.returncode == 0, proc.stderr
        assert "--input" in proc.stdout


class TestInvalidBundle:
    def test_bootstrap_without_module(self, tmp_path):
        assets = build_assets("s3://b/p", {})
        for uri, body in assets.files.items():
            (tmp_path / uri.rsplit("/", 1)[1]).write_bytes(body)
        proc = subprocess.run([sys.executable, str(tmp_path / "bootstrap.py")], capture_output=True, text=True)
        assert proc.returncode == 2
