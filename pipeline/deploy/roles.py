"""The pipeline role's trust policy, checked before anything is changed.

SageMaker assumes the role to run the jobs (`sagemaker.amazonaws.com`); EventBridge Scheduler
assumes it to start scheduled executions (`scheduler.amazonaws.com`). A missing principal only
shows up later as "could not assume role", so it is reported here, naming what to add.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from pipeline.deploy.clients import Aws
from pipeline.deploy.errors import DeployError

SAGEMAKER = "sagemaker.amazonaws.com"
SCHEDULER = "scheduler.amazonaws.com"
ASSUME_ACTIONS = {"sts:AssumeRole", "sts:*", "*"}


def role_name(role_arn: str) -> str:
    """`arn:aws:iam::1:role/path/name` -> `name` (GetRole takes the name without its path)."""
    return role_arn.rsplit("/", 1)[-1]


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def trusted_services(document: dict | str) -> set[str]:
    """Service principals an Allow statement lets `sts:AssumeRole` (conditions ignored)."""
    if isinstance(document, str):
        document = json.loads(unquote(document))
    trusted: set[str] = set()
    for statement in _as_list(document.get("Statement")):
        if statement.get("Effect") != "Allow" or not ASSUME_ACTIONS & set(_as_list(statement.get("Action"))):
            continue
        principal = statement.get("Principal")
        if isinstance(principal, dict):
            trusted.update(_as_list(principal.get("Service")))
    return trusted


def missing_trust(document: dict | str, services: tuple[str, ...]) -> list[str]:
    found = trusted_services(document)
    return [s for s in services if s not in found]


def check_trust(aws: Aws, role_arn: str, services: tuple[str, ...]) -> None:
    """Raise a DeployError naming the principals the role's trust policy lacks.

    Without permission to read the role (iam:GetRole) the check is skipped with a warning:
    the deploy itself may still be allowed."""
    name = role_name(role_arn)
    try:
        role = aws.read("iam", "get_role", f"role {name}", RoleName=name)
    except DeployError as err:
        if "AccessDenied" in str(err):
            aws.echo(f"warning: cannot read the trust policy of role {name} ({err}); not checked")
            return
        raise
    missing = missing_trust(role["Role"]["AssumeRolePolicyDocument"], services)
    if missing:
        statement = {"Effect": "Allow", "Principal": {"Service": missing}, "Action": "sts:AssumeRole"}
        raise DeployError(
            f"role {name} does not trust {', '.join(missing)}: add this statement to its trust "
            f"policy: {json.dumps(statement)}")
