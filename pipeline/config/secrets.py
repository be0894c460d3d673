"""No secret in a config: a URL anywhere in it (any key, any depth, tags and environment
included) that carries a password in its user info or a credential in its query is refused,
naming the key. The config is written into settings files, the definition, logs and reports;
`steps.redact` keeps those clean as a second line, this keeps secrets out of the first."""

from __future__ import annotations

import re
from typing import Any, Iterator

from steps.redact import url_credentials

LABELS_URL = "stages.reconcile.labels.url"
# An environment variable named like a credential (DB_PASSWORD, API_TOKEN, AWS_SECRET_ACCESS_KEY,
# PGPASSWORD, ...): its value is written into the definition's Environment, which anyone who may
# describe the pipeline or its jobs can read.
CREDENTIAL_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _advice(path: str) -> str:
    if path == LABELS_URL:
        return ("give the URL without it and the credentials as an AWS Secrets Manager secret in "
                "stages.reconcile.labels.secret_arn (username/password JSON, as RDS writes it)")
    return ("keep credentials in AWS Secrets Manager, or let the client read them from its environment "
            "(e.g. PGPASSWORD, an IAM role), never in the config")


def _environments(data: dict) -> Iterator[tuple[str, dict]]:
    """(key path, mapping) of every `environment` section of the raw config."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "environment" and isinstance(value, dict):
                yield key, value
            for path, env in _environments(value):
                yield f"{key}.{path}", env


def secret_problems(data: dict) -> list[str]:
    """`key.path: ...` for every URL in the raw config that carries a credential, and every
    environment variable named like a credential that is given a value."""
    problems = [f"{path}: the URL carries a password ({', '.join(found)}), which would be written wherever the "
                f"config goes (settings files, the definition, logs): {_advice(path)}"
                for path, value in _strings(data, "") if "://" in value and (found := url_credentials(value))]
    for path, env in _environments(data):
        problems += [f"{path}.{name}: looks like a credential, and an environment's values are written in the "
                     f"pipeline definition (readable by whoever may describe the pipeline or its jobs): "
                     f"{_advice(path)}" for name, value in env.items()
                     if CREDENTIAL_NAME.search(str(name)) and str(value or "").strip()]
    return problems
