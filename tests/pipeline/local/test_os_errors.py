"""Real OS errors (a file-size limit set with setrlimit in a child process: every write past it
fails with EFBIG, "File too large", as a full disk fails with ENOSPC) give one line naming the
path, never a traceback wall, and leave the execution Failed and resumable with --retry."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from pipeline.local import StepState
from tests.conftest import ROOT
from tests.pipeline.local.helpers import assets, definition, run, step

# The runner in a child whose files may not grow past LIMIT bytes (its steps inherit the limit).
RUNNER = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from tests.pipeline.local.helpers import definition, run, step
    steps = [step(f"S{i}") for i in range(int(sys.argv[3]))]
    result = run(definition(*steps), Path(sys.argv[1]), progress=True)
    print(json.dumps({"error": result.error, "exit": result.exit_code, "id": result.execution_id}))
""")


def limited_run(tmp_path: Path, limit: int, steps: int) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path), str(limit), str(steps)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # the runner itself never crashes
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def record(tmp_path: Path, execution_id: str) -> dict:
    return json.loads((tmp_path / "work" / "executions" / execution_id / "execution.json").read_text())


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]


class TestInvalidDisk:
    def test_a_failed_write_in_the_runner_is_one_line_naming_the_path_then_retry_completes(self, tmp_path):
        """The code assets (the smaller, the test bundle, is about 4 kB) cannot be written under a 3 kB limit."""
        result, stderr = limited_run(tmp_path, 3000, steps=1)
        assert result["exit"] == 1 and result["error"].startswith("File too large: ")
        assert "/work/s3/bkt/code/" in result["error"] and result["error"].count("\n") == 0
        assert f"is recorded Failed; once that is fixed, resume it with local --retry {result['id']}" in result["error"]
        assert_no_traceback(stderr)
        assert record(tmp_path, result["id"])["Status"] == "Failed"
        assert not list((tmp_path / "work").rglob(".wavepipe-tmp-*")) and not list((tmp_path / "work").rglob(".tmp-*"))
        again = run(definition(step("S0")), tmp_path, retry="latest")
        assert again.ok and again.execution_id == result["id"] and again.resumed
        assert record(tmp_path, result["id"])["Status"] == "Succeeded"

    def test_a_record_that_cannot_be_written_ends_the_run_and_the_next_run_settles_it(self, tmp_path):
        """The execution record outgrows a limit just above every other file the run writes (the
        assets, definition.json) while six steps complete (written from the steps' threads): the
        run stops at once, says so in one line, and cannot record its end; the next run in the
        workdir records it Failed and --retry completes it."""
        run(definition(*[step(f"S{i}") for i in range(6)]), tmp_path / "assets")  # nothing else fails
        [folder] = (tmp_path / "assets" / "work" / "executions").iterdir()
        limit = max([len(data) for data in assets().values()] + [(folder / "definition.json").stat().st_size]) + 300
        assert (folder / "execution.json").stat().st_size > limit + 1000  # the record is what crosses it
        result, stderr = limited_run(tmp_path, limit, steps=6)
        assert result["exit"] == 1 and result["error"].startswith("File too large: ")
        assert f"executions/{result['id']}/execution.json" in result["error"]
        assert "could not record its end either" in result["error"]
        assert_no_traceback(stderr)
        assert record(tmp_path, result["id"])["Status"] == "Executing"  # as the last write left it
        again = run(definition(*[step(f"S{i}") for i in range(6)]), tmp_path, retry="latest")
        assert again.ok and again.execution_id == result["id"]
        assert all(s.state in (StepState.SUCCEEDED, StepState.REUSED) for s in again.steps.values())

    def test_the_cli_prints_one_error_line(self, tmp_path, capsys):
        """`local` on a workdir that is a file: the OS error, one line, exit 1."""
        from pipeline.cli import main
        from tests.conftest import EXAMPLE_CONFIG

        (tmp_path / "work").write_text("not a folder")
        code = main(["local", "--config", str(EXAMPLE_CONFIG), "--workdir", str(tmp_path / "work")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and err == [f"error: File exists: {tmp_path / 'work'}"]


STAGE = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from pydantic import BaseModel
    from steps.entry import run_stage, stage_parser
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    class Settings(BaseModel):
        pass

    def work(args, settings):
        with open(sys.argv[1], "wb") as fh:
            fh.write(b"x" * 1000)

    sys.exit(run_stage("demo", stage_parser("demo", "A stage.", Settings), Settings, work, []))
""")


class TestInvalidStageDisk:
    def test_a_stage_that_cannot_write_fails_with_one_line(self, tmp_path):
        proc = subprocess.run([sys.executable, "-c", STAGE, str(tmp_path / "big.bin")], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("demo: failed: File too large (at "), proc.stderr
