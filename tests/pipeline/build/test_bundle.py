"""The content-addressed code bundle: reproducible, complete, and runnable by its bootstrap."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from pipeline.build.bundle import build_assets, pack_steps, user_files
from steps import contract as c
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
        code, digest = staged(tmp_path)
        # Run from an empty folder so only the unpacked bundle can provide `steps`.
        proc = subprocess.run(
            [sys.executable, str(code / "bootstrap.py"), "steps.featurize", "--help"],
            cwd=code, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", c.ENV_CODE_SHA256: digest},
        )
        assert proc.returncode == 0, proc.stderr
        assert "--input" in proc.stdout


def staged(tmp_path: Path) -> tuple[Path, str]:
    """The code input as a job sees it, and the bundle sha256 the definition names."""
    assets = build_assets("s3://b/p", {})
    tmp_path.mkdir(exist_ok=True)
    for uri, body in assets.files.items():
        (tmp_path / uri.rsplit("/", 1)[1]).write_bytes(body)
    return tmp_path, assets.bundle_sha256


class TestInvalidBundle:
    def test_a_changed_bundle_exits_2_naming_it_before_anything_is_unpacked(self, tmp_path):
        code, digest = staged(tmp_path)
        with (code / "bundle.tar.gz").open("ab") as f:
            f.write(b"\0")
        env = {"PATH": "/usr/bin:/bin", c.ENV_CODE_SHA256: digest}
        proc = subprocess.run([sys.executable, str(code / "bootstrap.py"), "steps.featurize", "--help"],
                              cwd=code, capture_output=True, text=True, env=env)
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"error: code bundle {code / 'bundle.tar.gz'} (the code input's bundle.tar.gz) "
                                      "has sha256 ")
        assert f"but the pipeline definition names {digest} (WAVEPIPE_CODE_SHA256)" in proc.stderr
        assert not (code / "unpacked").exists()

    def test_a_wheel_not_in_the_lock_exits_2_naming_it_before_pip_runs(self, tmp_path):
        code, digest = staged(tmp_path / "code")
        wheels = tmp_path / "wheels"
        wheels.mkdir()
        (wheels / "numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl").write_bytes(b"evil")
        env = {"PATH": "/usr/bin:/bin", c.ENV_CODE_SHA256: digest, c.ENV_PIP_INSTALL: "1",
               c.ENV_WHEELHOUSE: str(wheels)}
        proc = subprocess.run([sys.executable, str(code / "bootstrap.py"), "steps.featurize", "--help"],
                              cwd=code, capture_output=True, text=True, env=env)
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: wheelhouse object numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64."
                                      "manylinux_2_28_x86_64.whl (staged at ")
        assert "uv.lock records 90f9849678c75fe7afa2d348ac842c168b0a4d3d61919687216dfc547976d853" in proc.stderr
        assert not (code / "site").exists()  # pip never ran

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
