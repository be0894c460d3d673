"""URI-typed keys accept only their schemes, and no key holds a URL with a password."""

from __future__ import annotations

import pytest

from pipeline.config import validate_config
from tests.pipeline.config.conftest import problems_of

SECRET = "hunter2-Zq"


def labels(example: dict, **source) -> dict:
    example["stages"]["reconcile"]["labels"] = {"query": "SELECT artifact_id, label FROM t", **source}
    return example


class TestValidUris:
    @pytest.mark.parametrize("source", [
        {"sqlite_uri": "s3://bucket/labels.sqlite"}, {"sqlite_uri": "data/labels.sqlite"},
        {"url": "postgresql+psycopg2://db.internal:5432/labels?sslmode=require",
         "secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:labels-AbCdEf"},
        {"url": "sqlite:///labels.sqlite"},
    ])
    def test_labels_sources(self, example, source):
        assert validate_config(labels(example, **source)).stages.reconcile.labels


class TestInvalidUris:
    def test_sqlite_uri_over_http(self, example):
        assert problems_of(labels(example, sqlite_uri="http://example.com/labels.sqlite")) == [
            "stages.reconcile.labels.sqlite_uri: sqlite_uri is a local path or an s3:// URI of a SQLite file, not "
            "http://; a database server is given as url"]

    def test_url_that_is_no_database(self, example):
        assert problems_of(labels(example, url="http://example.com/labels")) == [
            "stages.reconcile.labels.url: url: http:// is not a SQLAlchemy database URL (e.g. "
            "postgresql+psycopg2://host:5432/db, mysql+pymysql://host/db)"]

    @pytest.mark.parametrize("key, value", [
        ("input_uri", "https://bucket.s3.amazonaws.com/raw"), ("input_uri", "ftp://host/raw"),
    ])
    def test_input_uri_is_s3_or_a_folder(self, example, key, value):
        """A folder (a path or file://) is an input of local runs (tests/pipeline/local/test_folders.py)."""
        example["parameters"][key] = value
        (line,) = problems_of(example)
        assert line.startswith(f"parameters.{key}: String should match pattern")

    def test_sample_data_uri_is_s3(self, example):
        example["local"]["sample_data_uri"] = "ftp://host/sample"
        assert problems_of(example)[0].startswith("local.sample_data_uri: String should match pattern")

    def test_image_uri_has_no_scheme(self, example):
        example["image"]["uri"] = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/wavepipe:1"
        assert problems_of(example)[0].startswith("image.uri: String should match pattern")

    def test_labels_without_a_source(self, example):
        labels(example)
        assert problems_of(example) == [
            "stages.reconcile.labels: no source of labels: set sqlite_uri (a SQLite file: a path or s3:// URI) or "
            "url (a SQLAlchemy URL, credentials in secret_arn)"]

    def test_reconcile_without_labels_section(self, example):
        del example["stages"]["reconcile"]["labels"]
        assert problems_of(example)[0].startswith("stages.reconcile.labels: no source of labels")


class TestInvalidSecrets:
    @pytest.mark.parametrize("url, where", [
        (f"postgresql://alice:{SECRET}@db/labels", "user info"),
        (f"postgresql://db/labels?password={SECRET}", "query key password"),
        (f"postgresql://db/labels?sslmode=require&sslpassword={SECRET}", "query key sslpassword"),
    ])
    def test_password_in_the_database_url(self, example, url, where):
        (line,) = problems_of(labels(example, url=url))
        assert line == (f"stages.reconcile.labels.url: the URL carries a password ({where}), which would be written "
                        "wherever the config goes (settings files, the definition, logs): give the URL without it and "
                        "the credentials as an AWS Secrets Manager secret in stages.reconcile.labels.secret_arn "
                        "(username/password JSON, as RDS writes it)")
        assert SECRET not in line

    def test_password_in_the_sqlite_uri_query(self, example):
        (line,) = problems_of(labels(example, sqlite_uri=f"s3://bucket/labels.sqlite?password={SECRET}"))
        assert line.startswith("stages.reconcile.labels.sqlite_uri: the URL carries a password (query key password)")

    def test_password_anywhere_else(self, example):
        example["image"]["pip_index_url"] = f"https://aws:{SECRET}@d-1.codeartifact.us-east-1.amazonaws.com/pypi/r/simple/"
        example["stages"]["featurize"]["environment"] = {"DB": f"mysql://u:{SECRET}@h/d"}
        example["parameters"]["input_uri"] = f"s3://bucket/raw?X-Amz-Security-Token={SECRET}"
        problems = problems_of(example)
        assert [p.split(":")[0] for p in problems] == ["image.pip_index_url", "parameters.input_uri",
                                                       "stages.featurize.environment.DB"]
        assert all("Secrets Manager" in p and SECRET not in p for p in problems)

    def test_a_credential_named_environment_variable_is_refused(self, example):
        example["stages"]["featurize"]["environment"] = {"DB_PASSWORD": SECRET, "OMP_NUM_THREADS": "1",
                                                          "API_TOKEN": SECRET}
        problems = problems_of(example)
        assert [p.split(":")[0] for p in problems] == ["stages.featurize.environment.DB_PASSWORD",
                                                       "stages.featurize.environment.API_TOKEN"]
        assert all("Secrets Manager" in p and SECRET not in p for p in problems)

    def test_validate_names_the_key_and_never_echoes_it(self, example, tmp_path, capsys):
        import yaml

        from pipeline.cli import main

        path = tmp_path / "wavepipe.yaml"
        path.write_text(yaml.safe_dump(labels(example, url=f"postgresql://db/labels?password={SECRET}")))
        assert main(["validate", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}: stages.reconcile.labels.url: the URL carries a password" in err and SECRET not in err
