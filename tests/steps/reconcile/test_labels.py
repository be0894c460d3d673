"""Labels from SQL: SQLite files (local and on S3), a real PostgreSQL (pgserver), credentials
from Secrets Manager (moto server), bound parameters, and errors that name the source."""

from __future__ import annotations

import json
import tempfile

import boto3
import pytest
import sqlalchemy as sa

from steps.io import storage as st
from steps.reconcile.labels import LabelsError, clean_labels, read_labels
from steps.reconcile.settings import LabelsSource
from tests.conftest import free_port
from steps.reconcile.__main__ import main
from steps.settings_file import write_settings
from tests.steps.reconcile.fixtures import make_sqlite, put_tree, record_files

SECRET_PASSWORD = "s3cr3t-Pa55-do-not-print"
QUERY = "SELECT artifact_id, label, site FROM labels WHERE experiment = :experiment_name ORDER BY artifact_id"


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL from the pgserver package, with a labels table; yields its URL object."""
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tempfile.mkdtemp(prefix="reconcile-pg-"), cleanup_mode="delete")
    url = sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE labels (artifact_id INTEGER, label TEXT, site TEXT, experiment TEXT)"))
        conn.execute(sa.text("INSERT INTO labels VALUES (:a, :l, :s, :e)"), [
            {"a": 100 + i, "l": "AF" if i % 3 == 0 else "N", "s": f"site{i % 2}", "e": "exp1" if i < 8 else "exp2"}
            for i in range(10)
        ])
        conn.execute(sa.text(f"CREATE ROLE reader LOGIN PASSWORD '{SECRET_PASSWORD}'"))
        conn.execute(sa.text("GRANT SELECT ON labels TO reader"))
    engine.dispose()
    yield url
    server.cleanup()


@pytest.fixture
def sqlite_file(tmp_path):
    return make_sqlite(tmp_path / "labels.sqlite", [
        ("r1", "N", "exp1"), ("r2", "AF", "exp1"), ("r3", "N", "exp2"), ("r2", "AF", "exp1"), (None, "N", "exp1"),
    ], columns=("artifact_id", "label", "experiment"))


class TestValidSqlite:
    def test_bound_parameter_selects_rows(self, sqlite_file):
        source = LabelsSource(sqlite_uri=str(sqlite_file), query="SELECT * FROM labels WHERE experiment = :experiment_name")
        frame = read_labels(source, {"experiment_name": "exp1", "unused": "x"})
        assert len(frame) == 4 and list(frame.columns) == ["artifact_id", "label", "experiment"]
        clean, counts = clean_labels(frame, source)
        assert list(clean["artifact_id"]) == ["r1", "r2"]
        assert counts == {"database_rows": 4, "database_rows_without_id_or_label": 1, "database_rows_without_id": 1,
                          "database_rows_without_label": 0, "database_repeated_ids": 1,
                          "database_ids_with_conflicting_labels": 0, "database_ids_with_conflicting_labels_sample": []}

    def test_parameter_value_is_never_sql(self, sqlite_file):
        source = LabelsSource(sqlite_uri=str(sqlite_file), query="SELECT * FROM labels WHERE experiment = :experiment_name")
        assert read_labels(source, {"experiment_name": "x' OR '1'='1"}).empty

    def test_sqlite_file_on_s3(self, aws, sqlite_file):
        boto3.client("s3").create_bucket(Bucket="labels-db")
        storage = st.S3Storage()
        storage.upload(sqlite_file, "s3://labels-db/labels/labels.sqlite")
        frame = read_labels(LabelsSource(sqlite_uri="s3://labels-db/labels/labels.sqlite"), {}, storage)
        assert len(frame) == 5

    def test_custom_columns_are_renamed(self, sqlite_file):
        source = LabelsSource(sqlite_uri=str(sqlite_file), query="SELECT artifact_id AS rid, label AS y FROM labels",
                              id_column="rid", label_column="y")
        clean, _ = clean_labels(read_labels(source, {}), source)
        assert list(clean.columns) == ["artifact_id", "label"]


class TestInvalidSqlite:
    def test_conflicting_labels_drop_the_artifact_and_are_reported(self, tmp_path, caplog):
        # r2 twice with one label is a harmless repeat; r1 and r3 disagree with themselves.
        db = make_sqlite(tmp_path / "labels.sqlite", [
            ("r1", "N", "e"), ("r2", "AF", "e"), ("r1", "AF", "e"), ("r2", "AF", "e"), ("r3", "N", "e"),
            ("r3", "VT", "e"), ("r3", "N", "e"), ("r4", "N", "e"),
        ])
        source = LabelsSource(sqlite_uri=str(db))
        clean, counts = clean_labels(read_labels(source, {}), source)
        assert clean.values.tolist() == [["r2", "AF"], ["r4", "N"]]  # never the first row's label
        assert counts["database_ids_with_conflicting_labels"] == 2 and counts["database_repeated_ids"] == 4
        assert counts["database_ids_with_conflicting_labels_sample"] == [
            {"artifact_id": "r1", "labels": ["AF", "N"]}, {"artifact_id": "r3", "labels": ["N", "VT"]}]
        assert "2 artifact id(s) have conflicting labels and are dropped, e.g. r1, r3" in caplog.text

    def test_ids_that_all_conflict_name_the_reason(self, tmp_path):
        db = make_sqlite(tmp_path / "labels.sqlite", [("r1", "N", "e"), ("r1", "AF", "e")])
        source = LabelsSource(sqlite_uri=str(db))
        with pytest.raises(LabelsError, match=r"every artifact id of the query on sqlite .* has conflicting labels "
                                              r"\(1 ids, e.g. r1\)"):
            clean_labels(read_labels(source, {}), source)

    @pytest.mark.parametrize("rows, message", [
        ([("r1", None, "e"), ("r2", None, "e")], "column 'label' (labels.label_column) of the query on sqlite .* "
                                                 "is NULL in every one of its 2 rows"),
        ([(None, "N", "e")], "column 'artifact_id' (labels.id_column) of the query on sqlite .* is NULL in every"),
        ([(None, "N", "e"), ("r1", None, "e")], "no row of the query on sqlite .* has both an id"),
    ])
    def test_a_null_column_is_named_not_called_a_mismatch(self, tmp_path, rows, message):
        source = LabelsSource(sqlite_uri=str(make_sqlite(tmp_path / "labels.sqlite", rows)))
        with pytest.raises(LabelsError, match=message.replace("(", r"\(").replace(")", r"\)")):
            clean_labels(read_labels(source, {}), source)

    def test_entry_with_an_all_null_label_column_exits_2_naming_it(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setenv(st.S3_ROOT_ENV, str(tmp_path / "s3"))
        put_tree(st.from_env(), "s3://prod/raw", {a: record_files(a) for a in ("r1", "r2")})
        db = make_sqlite(tmp_path / "labels.sqlite", [("r1", None, "e"), ("r2", None, "e")])
        cfg = tmp_path / "settings.json"
        write_settings(cfg, "reconcile", {"labels": {"sqlite_uri": str(db)}})
        code = main(["--source-uri", "s3://prod/raw", "--experiment-uri", "s3://research/exp1", "--output",
                     str(tmp_path / "out"), "--settings", str(cfg)])
        assert code == 2
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert "column 'label' (labels.label_column)" in report["error"] and "no artifact is both" not in report["error"]

    def test_missing_file_names_it(self, tmp_path):
        with pytest.raises(LabelsError, match=f"sqlite {tmp_path}/nope.sqlite: no such file"):
            read_labels(LabelsSource(sqlite_uri=str(tmp_path / "nope.sqlite")), {})
        assert not (tmp_path / "nope.sqlite").exists()

    def test_bad_query_names_the_source(self, sqlite_file):
        with pytest.raises(LabelsError, match=r"query failed on sqlite .*labels.sqlite: no such table: nope"):
            read_labels(LabelsSource(sqlite_uri=str(sqlite_file), query="SELECT * FROM nope"), {})

    def test_missing_parameter(self, sqlite_file):
        source = LabelsSource(sqlite_uri=str(sqlite_file), query="SELECT * FROM labels WHERE experiment = :experiment_name")
        with pytest.raises(LabelsError, match="no --sql-param gives experiment_name"):
            read_labels(source, {})

    def test_missing_columns(self, sqlite_file):
        source = LabelsSource(sqlite_uri=str(sqlite_file), query="SELECT artifact_id FROM labels")
        with pytest.raises(LabelsError, match="no column 'label'"):
            read_labels(source, {})


class TestValidPostgres:
    def test_url(self, postgres):
        source = LabelsSource(url=postgres.render_as_string(hide_password=False), query=QUERY)
        frame = read_labels(source, {"experiment_name": "exp1"})
        assert len(frame) == 8 and frame["artifact_id"].tolist()[:2] == [100, 101]
        clean, _ = clean_labels(frame, source)
        assert clean["artifact_id"].tolist()[0] == "100"

    def test_credentials_from_secrets_manager(self, aws, postgres):
        arn = boto3.client("secretsmanager").create_secret(Name="rds/labels", SecretString=json.dumps({
            "username": "reader", "password": SECRET_PASSWORD, "engine": "postgres",
            "host": postgres.query["host"], "port": postgres.port or 5432, "dbname": postgres.database,
        }))["ARN"]
        # A bare `postgresql://` with no host: everything but the driver comes from the secret.
        source = LabelsSource(url="postgresql://", secret_arn=arn, query=QUERY)
        assert len(read_labels(source, {"experiment_name": "exp2"})) == 2


    def test_conflicting_labels_are_dropped(self, postgres):
        source = LabelsSource(url=postgres.render_as_string(hide_password=False),
                              query="SELECT artifact_id, label FROM labels UNION ALL SELECT 100, 'VT' ORDER BY 1")
        clean, counts = clean_labels(read_labels(source, {}), source)
        assert "100" not in clean["artifact_id"].tolist() and len(clean) == 9
        assert counts["database_ids_with_conflicting_labels_sample"] == [{"artifact_id": "100", "labels": ["AF", "VT"]}]

    def test_integer_ids_next_to_null_stay_integers(self, postgres):
        source = LabelsSource(url=postgres.render_as_string(hide_password=False),
                              query="SELECT artifact_id, label FROM labels UNION ALL SELECT NULL, 'N'")
        clean, counts = clean_labels(read_labels(source, {}), source)
        assert clean["artifact_id"].tolist()[:2] == ["100", "101"] and counts["database_rows_without_id_or_label"] == 1

    def test_entry_keeps_the_secret_out_of_logs_and_outputs(self, aws, postgres, tmp_path, monkeypatch, caplog, capfd):
        monkeypatch.setenv(st.S3_ROOT_ENV, str(tmp_path / "s3"))
        put_tree(st.from_env(), "s3://prod/raw", {str(100 + i): record_files(str(100 + i)) for i in range(10)})
        arn = boto3.client("secretsmanager").create_secret(Name="rds/entry", SecretString=json.dumps({
            "username": "reader", "password": SECRET_PASSWORD, "host": postgres.query["host"], "dbname": postgres.database,
        }))["ARN"]
        cfg = tmp_path / "settings.json"
        write_settings(cfg, "reconcile", {"labels": {"url": "postgresql://", "secret_arn": arn, "query": QUERY}})
        out = tmp_path / "out"
        code = main(["--source-uri", "s3://prod/raw", "--experiment-uri", "s3://research/exp1", "--output", str(out),
                     "--sql-param", "experiment_name=exp1", "--settings", str(cfg)])
        assert code == 0
        assert json.loads((out / "report.json").read_text())["kept"] == 8
        captured = capfd.readouterr()
        texts = [caplog.text, captured.out, captured.err] + [p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file()]
        assert not any(SECRET_PASSWORD in t for t in texts)


class TestInvalidPostgres:
    def test_unreachable_database_names_the_source_not_the_secret(self, aws):
        port = free_port()
        arn = boto3.client("secretsmanager").create_secret(Name="rds/down", SecretString=json.dumps({
            "username": "reader", "password": SECRET_PASSWORD}))["ARN"]
        source = LabelsSource(url=f"postgresql+psycopg2://127.0.0.1:{port}/labels", secret_arn=arn,
                              connect_timeout_seconds=5)
        with pytest.raises(LabelsError) as err:
            read_labels(source, {})
        text = str(err.value)
        assert f"cannot connect to postgresql+psycopg2://127.0.0.1:{port}/labels" in text
        assert SECRET_PASSWORD not in text and "reader" not in text.split("secret")[0]

    def test_bad_query(self, postgres):
        source = LabelsSource(url=postgres.render_as_string(hide_password=False), query="SELECT nope FROM labels")
        with pytest.raises(LabelsError, match=r"query failed on postgresql\+psycopg2://.*column \"nope\" does not exist"):
            read_labels(source, {})

    def test_all_null_label_column(self, postgres):
        source = LabelsSource(url=postgres.render_as_string(hide_password=False),
                              query="SELECT artifact_id, NULL AS label FROM labels")
        with pytest.raises(LabelsError, match=r"column 'label' \(labels.label_column\) .* NULL in every one of its 10"):
            clean_labels(read_labels(source, {}), source)

    def test_missing_secret(self, aws):
        source = LabelsSource(url="postgresql://db/x", secret_arn="rds/absent")
        with pytest.raises(LabelsError, match="cannot read secret rds/absent"):
            read_labels(source, {})
