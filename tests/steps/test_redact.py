"""Credentials never leave in what is printed or written: the shared redaction, and its writers
(the Reconcile log and report, the local runner's execution.json)."""

from __future__ import annotations

import json
import logging

import pytest

from pipeline.local.state import ExecutionStore
from steps.io import storage as st
from steps.reconcile.labels import describe
from steps.reconcile.run import reconcile
from steps.reconcile.settings import LabelsSource, ReconcileSettings
from steps.redact import redact, redact_text, redact_url, url_credentials
from tests.steps.reconcile.fixtures import make_sqlite, put_tree, record_files

SECRET = "hunter2-Zq"


class TestValidRedaction:
    @pytest.mark.parametrize("url, expected", [
        (f"postgresql://alice:{SECRET}@db:5432/labels", "postgresql://alice:***@db:5432/labels"),
        (f"postgresql://db/labels?sslmode=require&password={SECRET}", "postgresql://db/labels?sslmode=require&password=***"),
        (f"sqlite:///tmp/l.db?PWD={SECRET}#x", "sqlite:///tmp/l.db?PWD=***#x"),
        (f"s3://b/k?X-Amz-Signature={SECRET}&X-Amz-Security-Token={SECRET}",
         "s3://b/k?X-Amz-Signature=***&X-Amz-Security-Token=***"),
        (f"https://aws:{SECRET}@my-domain.d.codeartifact.us-east-1.amazonaws.com/pypi/r/simple/",
         "https://aws:***@my-domain.d.codeartifact.us-east-1.amazonaws.com/pypi/r/simple/"),
    ])
    def test_password_masked_rest_kept(self, url, expected):
        assert redact_url(url) == expected
        assert SECRET not in redact_text(f"cannot connect to {url}: refused")

    @pytest.mark.parametrize("url", ["s3://bucket/key", "postgresql+psycopg2://alice@db/labels?sslmode=require",
                                     "/local/labels.sqlite", "https://pypi.org/simple/"])
    def test_no_credential_unchanged(self, url):
        assert redact_url(url) == url and url_credentials(url) == []

    def test_where_the_credential_is(self):
        assert url_credentials(f"postgresql://a:{SECRET}@h/d?sslpassword=x&sslmode=y") == \
            ["user info", "query key sslpassword"]

    def test_nested_values(self):
        assert SECRET not in json.dumps(redact({"a": [f"x postgresql://u:{SECRET}@h/d"], "n": 1}))


def _source(**kw) -> LabelsSource:
    # model_construct: validate refuses these URLs; the writers must still never print them.
    return LabelsSource.model_construct(**{**LabelsSource().model_dump(), **kw})


class TestValidWriters:
    @pytest.mark.parametrize("source", [
        {"url": f"postgresql://alice:{SECRET}@db/labels"},
        {"url": f"postgresql://db/labels?password={SECRET}"},
        {"sqlite_uri": f"s3://bucket/labels.sqlite?password={SECRET}"},
    ])
    def test_describe_hides_the_password(self, source):
        assert SECRET not in describe(_source(**source))

    def test_reconcile_log_and_report_hide_the_password(self, tmp_path, monkeypatch, caplog):
        monkeypatch.setenv(st.S3_ROOT_ENV, str(tmp_path / "s3"))
        storage = st.from_env()
        put_tree(storage, "s3://prod/w", {"r1": record_files("r1")})
        db = make_sqlite(tmp_path / "labels.sqlite", [("r1", "N", "e")])
        labels = _source(url=f"sqlite:///{db}?password={SECRET}", query="SELECT * FROM labels")
        settings = ReconcileSettings.model_construct(**{**ReconcileSettings().model_dump(), "labels": labels})
        caplog.set_level(logging.INFO)
        try:
            reconcile(settings, "s3://prod/w", "s3://research/e", tmp_path / "out", storage=storage)
        except Exception as err:  # noqa: BLE001 - a failure's message is written too
            assert SECRET not in str(err)
        assert "reading labels from" in caplog.text and SECRET not in caplog.text
        written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
        assert written and all(SECRET.encode() not in p.read_bytes() for p in written)

    def test_execution_record_hides_the_password(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PGPASSWORD", SECRET)  # the environment's password: never copied into a record
        store = ExecutionStore(tmp_path)
        store.save({"ExecutionId": "local-1", "Parameters": {"InputUri": f"s3://b/k?token={SECRET}"},
                    "Steps": {"Reconcile": {"Reason": f"cannot connect to postgresql://u:{SECRET}@h/d"}}})
        text = (tmp_path / "local-1" / "execution.json").read_text()
        assert SECRET not in text and "postgresql://u:***@h/d" in text
