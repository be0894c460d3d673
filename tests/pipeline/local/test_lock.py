"""One run per workdir (pipeline/local/lock.py), shown with real processes: a second `local` on
a busy workdir exits at once with one line naming the running execution, its pid and start
time, and takes nothing from it; a lock left by a killed run is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipeline.local import StepState
from pipeline.local.lock import LOCK_FILE, WorkdirBusy, workdir_lock
from tests.conftest import EXAMPLE_CONFIG, ROOT
from tests.pipeline.conftest import RAW
from tests.pipeline.local.helpers import definition, run, step, wait_for


def holder(workdir: Path) -> dict:
    try:
        return json.loads((workdir / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def local(workdir: Path, overlay: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "deploy.py", "local", "--config", str(EXAMPLE_CONFIG),
                             "--overlay", str(overlay), "--workdir", str(workdir)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class TestTwoRuns:
    def test_a_second_local_on_a_busy_workdir_exits_naming_the_first(self, tmp_path):
        """The first run is the example's raw pipeline (Listing, two Featurize jobs, Combine):
        several jobs long, so still running when the second one starts."""
        workdir = tmp_path / "work"
        overlay = tmp_path / "raw.yaml"
        overlay.write_text(RAW)
        first = local(workdir, overlay)
        try:
            wait_for(lambda: holder(workdir).get("execution") or first.poll() is not None, timeout=300)
            running = holder(workdir)
            assert first.poll() is None, first.communicate()
            second = subprocess.run([sys.executable, "deploy.py", "local", "--config", str(EXAMPLE_CONFIG),
                                     "--workdir", str(workdir)], cwd=ROOT, capture_output=True, text=True,
                                    timeout=300)
            out, err = first.communicate(timeout=600)
        finally:
            if first.poll() is None:
                first.kill()
        lines = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"execution {running['execution']} of wavepipe-example (pid {first.pid}, started " \
               f"{running['started']})" in lines[0]
        # The first run was not disturbed: it succeeded, alone, with its own record and logs.
        assert first.returncode == 0, err[-3000:]
        records = [json.loads(p.read_text()) for p in (workdir / "executions").glob("*/execution.json")]
        assert [(r["ExecutionId"], r["Status"]) for r in records] == [(running["execution"], "Succeeded")]


SLEEPER = textwrap.dedent("""
    import sys
    from tests.pipeline.local.helpers import definition, run, step
    from pathlib import Path
    run(definition(step("A", "sleep", env={"MY_PID_FILE": sys.argv[2]})), Path(sys.argv[1]))
""")


class TestKilledHolder:
    def test_a_lock_left_by_a_killed_run_is_taken_over_and_its_execution_recorded_failed(self, tmp_path):
        pid_file = tmp_path / "step.pid"
        runner = subprocess.Popen([sys.executable, "-c", SLEEPER, str(tmp_path), str(pid_file)], cwd=ROOT)
        try:
            wait_for(lambda: pid_file.is_file() and pid_file.read_text(), timeout=120)
            with pytest.raises(WorkdirBusy, match=rf"pid {runner.pid}, started"):
                run(definition(step("B")), tmp_path)
        finally:
            runner.send_signal(signal.SIGKILL)  # the runner dies without recording anything
            runner.wait()
            os.kill(int(pid_file.read_text()), signal.SIGKILL)  # and its orphaned step with it
        killed = holder(tmp_path / "work")["execution"]
        result = run(definition(step("B")), tmp_path)
        assert result.ok and result.steps["B"].state is StepState.SUCCEEDED
        record = json.loads((tmp_path / "work" / "executions" / killed / "execution.json").read_text())
        assert record["Status"] == "Failed" and "ended without recording its end" in record["FailureReason"]
        assert holder(tmp_path / "work")["execution"] == result.execution_id


class TestLockUnits:
    def test_another_thread_is_refused_the_same_thread_reenters(self, tmp_path):
        caught: list[BaseException] = []
        with workdir_lock(tmp_path) as lock:
            with workdir_lock(tmp_path) as again:
                assert again is lock
            thread = threading.Thread(target=lambda: caught.extend(_try(tmp_path)))
            thread.start()
            thread.join()
        assert len(caught) == 1 and isinstance(caught[0], WorkdirBusy)
        assert f"pid {os.getpid()}" in str(caught[0])
        with workdir_lock(tmp_path):  # released at the end of the block
            pass


def _try(workdir: Path) -> list[BaseException]:
    try:
        with workdir_lock(workdir):
            return []
    except WorkdirBusy as err:
        return [err]
