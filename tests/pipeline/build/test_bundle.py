"""The content-addressed code bundle: reproducible, complete, and runnable by its bootstrap."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from pipeline.build.bundle import build_assets, pack_steps, user_files
from steps.contract import USER_REQUIREMENTS


class TestValidBundle:
    def test_byte_identical_on_rebuild(self):
        assert pack_steps() == pack_steps()

    def test_contains_steps_package_without_caches(self):
        with tarfile.open(fileobj=io.BytesIO(pack_steps())) as tar:
            names = tar.getnames()
        assert "steps/__init__.py" in names and "steps/io/storage.py" in names
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


def user_package(root: Path, body: str = "VALUE = 1\n") -> Path:
    """`<root>/mypkg/` with a module, a data file, and what must never ship (caches, hidden files)."""
    pkg = root / "mypkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tool.py").write_text(body)
    (pkg / "table.json").write_text("{}")
    (pkg / "__pycache__" / "tool.cpython-311.pyc").write_bytes(b"\0")
    (pkg / ".secret").write_text("x")
    (root / "README.md").write_text("# my project\n")
    return pkg


class TestValidUserCode:
    def test_shipped_under_user_with_requirements_file(self, tmp_path):
        pkg = user_package(tmp_path)
        bundle = pack_steps(user_files([str(pkg), str(tmp_path / "mypkg" / "tool.py")], ["scipy==1.13.1"]))
        with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
            names = set(tar.getnames())
            requirements = tar.extractfile(USER_REQUIREMENTS).read()
        assert {"user/mypkg/__init__.py", "user/mypkg/tool.py", "user/mypkg/table.json", "user/tool.py"} <= names
        assert not [n for n in names if "__pycache__" in n or "/." in n or n.startswith("user/README")]
        assert requirements == b"scipy==1.13.1\n"

    def test_hash_follows_shipped_files_only(self, tmp_path):
        pkg = user_package(tmp_path)
        code = lambda: build_assets("s3://b/p", {}, user_files([str(pkg)])).code_uri  # noqa: E731
        first = code()
        (tmp_path / "README.md").write_text("# edited\n")  # beside the package: not shipped
        (pkg / "__pycache__" / "tool.cpython-311.pyc").write_bytes(b"\1")
        assert code() == first
        (pkg / "tool.py").write_text("VALUE = 2\n")
        assert code() != first
        assert code() != build_assets("s3://b/p", {}).code_uri

    def test_bootstrap_makes_user_code_importable_in_the_job_and_its_children(self, tmp_path):
        # The module checks both ways a job reaches user code: this process, and a child process
        # (joblib and Dataset.map workers start Pythons that only see PYTHONPATH).
        pkg = user_package(tmp_path, body=(
            "import subprocess, sys\n"
            "import mypkg\n"
            "child = subprocess.run([sys.executable, '-c', 'import mypkg.helper, steps.contract'], timeout=60)\n"
            "print('ok' if child.returncode == 0 else 'child failed')\n"))
        (pkg / "helper.py").write_text("VALUE = 1\n")
        job = tmp_path / "job"
        job.mkdir()
        for uri, body in build_assets("s3://b/p", {}, user_files([str(pkg)])).files.items():
            (job / uri.rsplit("/", 1)[1]).write_bytes(body)
        proc = subprocess.run([sys.executable, str(job / "bootstrap.py"), "mypkg.tool"], cwd=job,
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "ok"
