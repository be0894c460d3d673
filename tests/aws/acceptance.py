"""The acceptance run's config and its own role, shared by the run on a real account
(tests/aws/test_acceptance.py) and the same flow on moto with IAM enforcement
(tests/pipeline/deploy/test_acceptance_role.py).

Each acceptance run writes under a random prefix, `wavepipe-acceptance/<name>/`: the role it
runs under is generated for exactly that prefix (`iam-policy --for role` of the run's config)
and created, used and deleted by the run itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import Config
from pipeline.deploy import iam_policy
from pipeline.deploy.roles import role_name


def overlay(tmp_path: Path, name: str, region: str, bucket: str, role: str, prefix: str,
            featurize: dict | None = None) -> Path:
    sample = f"s3://{bucket}/{prefix}/sample"
    path = tmp_path / "acceptance.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "pipeline": {"name": name, "tags": {"wavepipe-acceptance": "true"}},
        "aws": {"region": region, "role_arn": role, "bucket": bucket, "output_prefix": prefix},
        "parameters": {"input_uri": f"{sample}/mimic3wdb"},
        "schedules": [],
        "local": {"sample_data_uri": sample},
        "stages": {"reconcile": {"instance_type": "ml.m5.large",
                                 "labels": {"sqlite_uri": f"{sample}/labels.sqlite"}},
                   "featurize": {"instance_type": "ml.m5.large", **(featurize or {"macroshards": 2})},
                   "combine": {"instance_type": "ml.m5.large"},
                   "encode": {"instance_type": "ml.m5.large"}},
    }))
    return path


def role_arn(account: str, name: str, partition: str = "aws") -> str:
    """The run's own role: named after the run, under a path of its own."""
    return f"arn:{partition}:iam::{account}:role/wavepipe-acceptance/{name}"


def create_role(iam, cfg: Config) -> None:
    """The role of `aws.role_arn` with the generated trust and the permissions of exactly this config."""
    path = "/" + cfg.aws.role_arn.split(":role/", 1)[1].rsplit("/", 1)[0] + "/"
    iam.create_role(RoleName=role_name(cfg.aws.role_arn), Path=path,
                    AssumeRolePolicyDocument=json.dumps(iam_policy.trust_policy()),
                    Description=f"wavepipe acceptance run {cfg.pipeline.name} (deleted by the run)")
    iam.put_role_policy(RoleName=role_name(cfg.aws.role_arn), PolicyName="wavepipe-pipeline",
                        PolicyDocument=json.dumps(iam_policy.role_policy(cfg)))


def delete_role(iam, cfg: Config) -> None:
    name = role_name(cfg.aws.role_arn)
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    iam.delete_role(RoleName=name)
