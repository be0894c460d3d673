"""The one entry helper every `python -m steps.<stage>` uses: exit codes and settings files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import BaseModel, ConfigDict

from steps.contract import (CONTRACT_VERSION, ENV_FAILURE_MESSAGE, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK,
                            FAILURE_MESSAGE_BYTES)
from steps.entry import BadInput, StageFailed, run_stage, stage_parser, write_failure_message
from steps.settings_file import write_settings
from tests.conftest import ROOT


class ToySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1


def run(argv, work):
    return run_stage("toy", stage_parser("toy", "A toy stage.", ToySettings), ToySettings, work, argv)


class TestValidEntry:
    def test_settings_reach_the_work(self, tmp_path):
        seen = []
        path = write_settings(tmp_path / "toy.json", "toy", ToySettings(level=7))
        assert run(["--settings", str(path)], lambda args, s: seen.append(s.level)) == EXIT_OK
        assert seen == [7]

    def test_defaults_without_a_settings_file(self):
        assert run([], lambda args, s: EXIT_OK if s.level == 1 else 99) == EXIT_OK

    def test_help_exits_0(self, capsys):
        assert run(["--help"], lambda a, s: None) == EXIT_OK
        assert "Exit 0 ok, 1 the stage ran and failed, 2 bad arguments" in capsys.readouterr().out

    @pytest.mark.parametrize("stage", ["reconcile", "featurize", "combine", "encode"])
    def test_every_stage_entry_documents_its_arguments(self, stage):
        done = subprocess.run([sys.executable, "-m", f"steps.{stage}", "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0 and "--settings SETTINGS" in done.stdout, done.stderr


class TestInvalidEntry:
    def test_bad_input_is_2(self, capsys):
        def work(args, settings):
            raise BadInput("no records under /x")

        assert run([], work) == EXIT_BAD_INPUT
        assert capsys.readouterr().err == "toy: no records under /x\n"

    def test_failure_is_1(self, capsys):
        def work(args, settings):
            raise StageFailed("3/4 records failed")

        assert run([], work) == EXIT_FAILED
        assert capsys.readouterr().err == "toy: failed: 3/4 records failed\n"

    def test_unknown_argument_is_2(self):
        assert run(["--nope"], lambda a, s: None) == EXIT_BAD_INPUT

    def test_settings_of_another_contract_version(self, tmp_path, capsys):
        path = tmp_path / "toy.json"
        path.write_text(json.dumps({"contract_version": CONTRACT_VERSION + 1, "stage": "toy", "settings": {}}))
        assert run(["--settings", str(path)], lambda a, s: None) == EXIT_BAD_INPUT
        assert capsys.readouterr().err == (
            f"toy: settings {path} were written for contract version {CONTRACT_VERSION + 1}, this code speaks "
            f"version {CONTRACT_VERSION}: the definition and the code bundle come from different releases; "
            "deploy the pipeline again\n")

    def test_settings_without_a_version(self, tmp_path, capsys):
        path = tmp_path / "toy.json"
        path.write_text(json.dumps({"level": 2}))
        assert run(["--settings", str(path)], lambda a, s: None) == EXIT_BAD_INPUT
        assert f"settings {path}: no 'contract_version'" in capsys.readouterr().err

    def test_settings_of_another_stage(self, tmp_path, capsys):
        path = write_settings(tmp_path / "x.json", "combine", {})
        assert run(["--settings", str(path)], lambda a, s: None) == EXIT_BAD_INPUT
        assert capsys.readouterr().err == f"toy: settings {path} are for stage 'combine', not 'toy'\n"

    def test_invalid_settings_name_the_key_not_the_value(self, tmp_path, capsys):
        path = write_settings(tmp_path / "toy.json", "toy", {"level": "secret-password"})
        assert run(["--settings", str(path)], lambda a, s: None) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert f"invalid settings in {path}:\n  level: Input should be a valid integer" in err
        assert "secret-password" not in err


class TestFailureMessage:
    """SageMaker's failure-reason file (`/opt/ml/output/message`, 1 KiB): the reason a stage
    prints is written there too, so FailureReason says why, not only an exit code."""

    def test_stage_failed_is_written(self, tmp_path, monkeypatch):
        message = tmp_path / "output" / "message"
        monkeypatch.setenv(ENV_FAILURE_MESSAGE, str(message))

        def work(args, settings):
            raise StageFailed("3/4 records failed")

        assert run([], work) == EXIT_FAILED
        assert message.read_text() == "toy: 3/4 records failed"

    def test_an_unexpected_error_is_its_last_line_after_the_traceback(self, tmp_path, monkeypatch, capsys):
        message = tmp_path / "message"
        monkeypatch.setenv(ENV_FAILURE_MESSAGE, str(message))

        def work(args, settings):
            raise KeyError("signal 'II'")

        assert run([], work) == EXIT_FAILED
        assert message.read_text() == "toy: KeyError: \"signal 'II'\""
        assert "Traceback" in capsys.readouterr().err

    def test_truncated_to_the_documented_kib(self, tmp_path, monkeypatch):
        monkeypatch.setenv(ENV_FAILURE_MESSAGE, str(tmp_path / "message"))
        path = write_failure_message("é" * 2000)
        assert len(path.read_bytes()) <= FAILURE_MESSAGE_BYTES and path.read_text().startswith("é")

    def test_success_writes_nothing(self, tmp_path, monkeypatch):
        monkeypatch.setenv(ENV_FAILURE_MESSAGE, str(tmp_path / "message"))
        assert run([], lambda a, s: None) == EXIT_OK and not (tmp_path / "message").exists()
