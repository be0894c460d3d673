"""Labels from SQL: a SQLite file or any SQLAlchemy URL, with credentials from Secrets Manager.

Every error names the source as configured (path or URL without credentials) and never
shows a username or password the secret supplied."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import pandas as pd

from steps.io import storage as st
from steps.reconcile.settings import LabelsSource
from steps.redact import redact_text, redact_url

log = logging.getLogger(__name__)


class LabelsError(Exception):
    """The labels could not be read (bad source, unreachable database, bad query)."""


def describe(source: LabelsSource) -> str:
    """A printable name of the source: never carries credentials."""
    if source.sqlite_uri:
        return f"sqlite {redact_url(source.sqlite_uri)}"
    if source.url:
        from sqlalchemy.engine import make_url

        # SQLAlchemy hides the user info's password; a `?password=` in the query it keeps.
        url = redact_url(make_url(source.url).render_as_string(hide_password=True))
        return f"{url} (credentials from secret {source.secret_arn})" if source.secret_arn else url
    return "no labels source"


def _secret(arn: str) -> dict:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        raw = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    except (BotoCoreError, ClientError) as err:
        raise LabelsError(f"cannot read secret {arn}: {err}") from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise LabelsError(f"secret {arn} is not a JSON object (expected username/password/host/port/dbname)") from None
    if not isinstance(value, dict):
        raise LabelsError(f"secret {arn} is not a JSON object")
    return value


def database_url(source: LabelsSource, secret: dict | None = None):
    """The SQLAlchemy URL to connect with: the configured one, completed from the secret
    (username/password always from the secret; host/port/dbname where the URL has none)."""
    from sqlalchemy.engine import make_url

    url = make_url(source.url)
    if url.drivername == "postgresql":
        # SQLAlchemy 2.1 picks psycopg 3 for a bare `postgresql://`; psycopg2 is what ships here.
        try:
            import psycopg  # noqa: F401
        except ImportError:
            url = url.set(drivername="postgresql+psycopg2")
    if secret:
        port = secret.get("port")
        url = url.set(
            username=secret.get("username", url.username),
            password=secret.get("password", url.password),
            host=url.host or secret.get("host"),
            port=url.port or (int(port) if port not in (None, "") else None),
            database=url.database or secret.get("dbname") or secret.get("database"),
        )
    return url


def _scrub(text: str, secret: dict | None) -> str:
    text = redact_text(text)
    for key in ("password", "username"):
        value = (secret or {}).get(key)
        if value:
            text = text.replace(str(value), "***")
    return text


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


def _query(engine, source: LabelsSource, params: dict[str, str], name: str, secret: dict | None) -> pd.DataFrame:
    from sqlalchemy import exc, text

    clause = text(source.query)
    wanted = set(clause.compile().params)
    missing = sorted(wanted - set(params))
    if missing:
        raise LabelsError(
            f"query of {name} uses :{', :'.join(missing)} but no --sql-param gives "
            f"{', '.join(missing)}"
        )
    bound = {key: value for key, value in params.items() if key in wanted}
    try:
        conn = engine.connect()
    except exc.SQLAlchemyError as err:
        raise LabelsError(f"cannot connect to {name}: {_scrub(_first_line(err), secret)}") from None
    try:
        with conn:
            result = conn.execute(clause, bound)
            columns = list(result.keys())
            rows = result.fetchall()
    except exc.SQLAlchemyError as err:
        raise LabelsError(f"query failed on {name}: {_scrub(_first_line(err), secret)}") from None
    finally:
        engine.dispose()
    for column in (source.id_column, source.label_column):
        if column not in columns:
            raise LabelsError(f"query of {name} returns no column {column!r} (it returns {columns})")
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)
    # Integer ids next to a NULL would become floats ("100.0"): keep the database's values.
    position = columns.index(source.id_column)
    frame[source.id_column] = pd.Series([r[position] for r in rows], dtype=object)
    return frame


def _sqlite_engine(path: Path):
    from sqlalchemy import create_engine

    # Read-only URI mode: a wrong path must fail, not create an empty database.
    return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")


def read_labels(source: LabelsSource, params: dict[str, str], storage: st.Storage | None = None) -> pd.DataFrame:
    """Run the configured query with `params` bound; returns its rows as a frame."""
    name = describe(source)
    if source.sqlite_uri:
        uri = source.sqlite_uri
        if uri.startswith("s3://"):
            storage = storage or st.from_env()
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "labels.sqlite"
                try:
                    storage.download(uri, path)
                except Exception as err:  # noqa: BLE001 - missing object or access denied
                    raise LabelsError(f"cannot read {name}: {_first_line(err)}") from None
                return _query(_sqlite_engine(path), source, params, name, None)
        path = Path(uri).expanduser()
        if not path.is_file():
            raise LabelsError(f"cannot read {name}: no such file")
        return _query(_sqlite_engine(path.resolve()), source, params, name, None)
    if source.url:
        from sqlalchemy import create_engine

        secret = _secret(source.secret_arn) if source.secret_arn else None
        url = database_url(source, secret)
        connect_args = {}
        if url.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = source.connect_timeout_seconds
        elif url.get_backend_name() == "sqlite":
            connect_args["timeout"] = source.connect_timeout_seconds
        try:
            engine = create_engine(url, connect_args=connect_args)
        except Exception as err:  # noqa: BLE001 - missing driver, bad URL
            raise LabelsError(f"cannot use {name}: {_scrub(_first_line(err), secret)}") from None
        return _query(engine, source, params, name, secret)
    raise LabelsError("no labels source: set labels.sqlite_uri or labels.url")


def clean_labels(frame: pd.DataFrame, source: LabelsSource, sample: int = 20) -> tuple[pd.DataFrame, dict]:
    """Ids as strings; rows without id or label dropped; one row per id.

    Policy for an id given more than once: with one label, the first row is kept (a join
    that repeats rows is harmless); with different labels, the artifact is dropped, never
    labelled by whichever row came first. Those ids are counted and sampled in the report
    (`database_ids_with_conflicting_labels[_sample]`) and logged. Raises LabelsError, naming
    the column, when the query returned rows but none is usable (a NULL id or label column)
    or every id is in conflict: "no artifact matched" would be the wrong reason."""
    counts = {"database_rows": int(len(frame))}
    frame = frame.rename(columns={source.id_column: "artifact_id", source.label_column: "label"})
    has_id, has_label = frame["artifact_id"].notna(), frame["label"].notna()
    usable = has_id & has_label
    counts["database_rows_without_id_or_label"] = int((~usable).sum())
    counts["database_rows_without_id"] = int((~has_id).sum())
    counts["database_rows_without_label"] = int((has_id & ~has_label).sum())
    if len(frame) and not usable.any():
        where = f"of the query on {describe(source)}"
        for column, key, present in ((source.id_column, "labels.id_column", has_id),
                                     (source.label_column, "labels.label_column", has_label)):
            if not present.any():
                raise LabelsError(f"column {column!r} ({key}) {where} is NULL in every one of its {len(frame)} rows")
        raise LabelsError(f"no row {where} has both an id ({source.id_column!r}) and a label "
                          f"({source.label_column!r}): {len(frame)} rows")
    frame = frame[usable].copy()
    frame["artifact_id"] = frame["artifact_id"].map(lambda v: str(v).strip())
    repeated = frame["artifact_id"].duplicated(keep="first")
    counts["database_repeated_ids"] = int(repeated.sum())
    labels_per_id = frame.groupby("artifact_id", sort=True)["label"].nunique()
    conflicting = labels_per_id[labels_per_id > 1].index
    counts["database_ids_with_conflicting_labels"] = int(len(conflicting))
    examples = frame[frame["artifact_id"].isin(conflicting[:sample])]
    counts["database_ids_with_conflicting_labels_sample"] = [
        {"artifact_id": aid, "labels": sorted({str(v) for v in group["label"]})}
        for aid, group in examples.groupby("artifact_id", sort=True)]
    if len(conflicting):
        log.warning("labels: %d artifact id(s) have conflicting labels and are dropped, e.g. %s", len(conflicting),
                    ", ".join(conflicting[:5]))
    frame = frame[~repeated & ~frame["artifact_id"].isin(conflicting)].reset_index(drop=True)
    if counts["database_rows"] and frame.empty:
        raise LabelsError(f"every artifact id of the query on {describe(source)} has conflicting labels "
                          f"({len(conflicting)} ids, e.g. {', '.join(conflicting[:5])})")
    return frame, counts


def parse_sql_params(items: list[str] | None) -> dict[str, str]:
    """`["k=v", ...]` -> dict; raises ValueError naming the bad item."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--sql-param wants NAME=VALUE, got {item!r}")
        out[key] = value
    return out


__all__ = ["LabelsError", "clean_labels", "database_url", "describe", "parse_sql_params", "read_labels"]
