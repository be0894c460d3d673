"""`deploy.py preflight`: what a first deploy would trip over in this account, found with
read-only calls and the user's own credentials, before anything is created.

Each check returns findings; a finding names what to change (a config key, or a statement of
the role's policy as `iam-policy --for role` prints it) and why. Checks:

- the role exists and trusts the services the config needs (SageMaker; Scheduler with schedules);
- `iam:SimulatePrincipalPolicy` of every statement `iam-policy --for role` generates, on its exact
  resources (the image pull, logs and metrics included): what the jobs will do, allowed;
- Service Quotas: `<type> for processing job usage` of each instance type (defaults and schedule
  values) against the most instances the definition can run at once;
- the bucket's (and the raw data's) region against the pipeline's;
- the KMS key: enabled, in the region, and its key policy lets the role (or the account's IAM
  policies) use it;
- each subnet reaches S3 (a gateway endpoint on its route table, or a NAT route) and every other
  service the jobs call from it (Secrets Manager with a labels secret, Glue with a Glue table);
- the definition: its size (1 MiB) and every step's argument limits (pipeline/validate.py).

The jobs call no other AWS service from the subnet: their credentials come from the container's
credentials endpoint (no STS call) and SageMaker ships their logs and metrics itself, so STS and
CloudWatch Logs endpoints are needed only by code of your own that calls them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.config import Config
from pipeline.deploy import iam_policy
from pipeline.deploy.roles import SAGEMAKER, SCHEDULER, missing_trust, role_name
from steps.io.storage import split_uri


@dataclass(frozen=True)
class Finding:
    fix: str  # the config key or policy statement to change
    problem: str

    def line(self) -> str:
        return f"{self.fix}: {self.problem}"


def _error(err: Exception) -> str:
    if isinstance(err, ClientError):
        e = err.response.get("Error", {})
        return f"{e.get('Code')}: {e.get('Message')}"
    return str(err)


# --- the role ---------------------------------------------------------------------------------

def needed_services(cfg: Config) -> tuple[str, ...]:
    return (SAGEMAKER, SCHEDULER) if cfg.schedules else (SAGEMAKER,)


def role_findings(cfg: Config, iam) -> list[Finding]:
    name = role_name(cfg.aws.role_arn)
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as err:
        return [Finding("aws.role_arn", f"cannot read role {name} ({_error(err)}): create it from "
                        "`deploy.py iam-policy --format cloudformation`, or fix the ARN")]
    if role["Arn"] != cfg.aws.role_arn:
        return [Finding("aws.role_arn", f"the role named {name} is {role['Arn']}, not {cfg.aws.role_arn}")]
    missing = missing_trust(role["AssumeRolePolicyDocument"], needed_services(cfg))
    if not missing:
        return []
    statement = {"Effect": "Allow", "Principal": {"Service": missing}, "Action": "sts:AssumeRole"}
    return [Finding("trust policy of the role (statement AssumedBySageMakerAndScheduler)",
                    f"role {name} does not trust {', '.join(missing)}, which the config needs: add "
                    f"{json.dumps(statement)} (`iam-policy --for trust` prints the whole policy)")]


# --- the role's permissions, simulated ---------------------------------------------------------

def concrete(resource: str) -> str:
    """A resource the pipeline will really use, inside a policy's pattern (`prefix/*` -> an object)."""
    return resource if resource == "*" else resource.replace("*", "wavepipe-preflight").replace("?", "x")


def contexts(condition: dict) -> list[list[dict]]:
    """The request contexts a statement's condition stands for: one per listed value (each
    `s3:prefix` is a listing the pipeline makes), wildcard patterns left out."""
    keys = []
    for operator, entries in condition.items():
        kind = "boolean" if operator == "Bool" else "string"
        for key, values in entries.items():
            values = [values] if isinstance(values, str) else list(values)
            keys.append([(key, v, kind) for v in values if "*" not in v])
    out: list[list[dict]] = [[]]
    for options in keys:
        out = [ctx + [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": t}] for ctx in out
               for k, v, t in options]
    return out


def permission_findings(cfg: Config, iam) -> list[Finding]:
    """Every statement of the generated role policy, simulated for the role as it is in the account."""
    findings = []
    for st in iam_policy.role_policy(cfg)["Statement"]:
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        for context in contexts(st.get("Condition", {})):
            try:
                pages = iam.get_paginator("simulate_principal_policy").paginate(
                    PolicySourceArn=cfg.aws.role_arn, ActionNames=st["Action"],
                    ResourceArns=[concrete(r) for r in resources], ContextEntries=context)
                results = [r for page in pages for r in page["EvaluationResults"]]
            except (ClientError, BotoCoreError) as err:
                return findings + [Finding("aws.role_arn", f"cannot simulate the role's policies ({_error(err)}): "
                                           "preflight needs iam:SimulatePrincipalPolicy on the role "
                                           "(`iam-policy --for deployer`)")]
            for r in results:
                if r["EvalDecision"] != "allowed":
                    where = " with " + ", ".join(f"{c['ContextKeyName']}={c['ContextKeyValues'][0]}"
                                                 for c in context) if context else ""
                    findings.append(Finding(
                        f"policy statement {st['Sid']}",
                        f"the role may not {r['EvalActionName']} on {r.get('EvalResourceName', '*')}{where} "
                        f"({r['EvalDecision']}): give the role this statement as `iam-policy --for role` prints it"))
    return findings


# --- quotas ------------------------------------------------------------------------------------

def concurrent_instances(definition: dict) -> dict[str, int]:
    """Instance-type parameter -> the most instances its steps run at once: every top-level step
    of a parameter runs in parallel (the Featurize fan-out), a ForEach's body `MaxConcurrency` times."""
    from pipeline.definition.model import body_steps

    out: dict[str, int] = {}
    for step in definition["Steps"]:
        body = body_steps(step)
        times = int(step["Arguments"].get("MaxConcurrency", 1)) if body else 1
        for job in body or [step]:
            cluster = (job.get("Arguments") or {}).get("ProcessingResources", {}).get("ClusterConfig")
            if not cluster or not isinstance(cluster.get("InstanceType"), dict):
                continue
            param = cluster["InstanceType"]["Get"].split(".", 1)[1]
            out[param] = out.get(param, 0) + times * int(cluster["InstanceCount"])
    return out


def instance_types(cfg: Config, definition: dict) -> dict[tuple[str, str], str]:
    """(parameter, instance type) -> the config key it comes from: defaults and schedules' values."""
    out = {}
    for p in definition["Parameters"]:
        if p["Name"] in concurrent_instances(definition):
            out[(p["Name"], p["DefaultValue"])] = "stages.<stage>.instance_type".replace(
                "<stage>", p["Name"].removesuffix("InstanceType").lower())
    for i, schedule in enumerate(cfg.schedules):
        for name, value in schedule.parameters.items():
            if name.endswith("InstanceType"):
                out.setdefault((name, str(value)), f"schedules[{i}].parameters.{name}")
    return out


def quota_findings(cfg: Config, definition: dict, quotas) -> list[Finding]:
    try:
        pages = quotas.get_paginator("list_service_quotas").paginate(ServiceCode="sagemaker")
        limits = {q["QuotaName"]: q["Value"] for page in pages for q in page["Quotas"]}
    except (ClientError, BotoCoreError) as err:
        return [Finding("aws.region", f"cannot read the SageMaker quotas ({_error(err)}): preflight needs "
                        "servicequotas:ListServiceQuotas")]
    need = concurrent_instances(definition)
    findings = []
    for (param, kind), key in sorted(instance_types(cfg, definition).items()):
        name = f"{kind} for processing job usage"
        if name not in limits:
            findings.append(Finding(key, f"no SageMaker quota {name!r} in {cfg.aws.region}: the instance type is "
                                    "not offered for processing jobs there; pick another"))
        elif limits[name] < need[param]:
            findings.append(Finding(key, f"{name} is {limits[name]:g} in {cfg.aws.region}, and the pipeline runs up "
                                    f"to {need[param]} at once ({param}): request an increase in Service Quotas, or "
                                    "lower the concurrency (macroshards, max_concurrency, instance_count)"))
    return findings


# --- S3 and KMS --------------------------------------------------------------------------------

def bucket_findings(cfg: Config, s3) -> list[Finding]:
    buckets = {cfg.aws.bucket: "aws.bucket"}
    for uri in iam_policy.input_locations(cfg):
        buckets.setdefault(split_uri(uri)[0], "parameters.input_uri")
    findings = []
    for bucket, key in buckets.items():
        try:
            where = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        except ClientError as err:
            findings.append(Finding(key, f"cannot read bucket {bucket} ({_error(err)}): create it in "
                                    f"{cfg.aws.region}, or fix the name"))
            continue
        where = "eu-west-1" if where == "EU" else where
        if where != cfg.aws.region:
            findings.append(Finding(key, f"bucket {bucket} is in {where}, the pipeline in {cfg.aws.region} "
                                    "(aws.region): jobs pay cross-region transfer and a VPC endpoint reaches only "
                                    "its own region; use a bucket in the pipeline's region"))
    return findings


def _principals(statement: dict) -> set[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return {"*"}
    values = (principal or {}).get("AWS", []) if isinstance(principal, dict) else []
    return {values} if isinstance(values, str) else set(values)


def _allows_use(statement: dict) -> bool:
    actions = statement.get("Action", [])
    actions = {actions} if isinstance(actions, str) else set(actions)
    return statement.get("Effect") == "Allow" and bool(actions & {"kms:*", "kms:Decrypt", "kms:GenerateDataKey", "*"})


def kms_findings(cfg: Config, kms) -> list[Finding]:
    key_id = cfg.aws.kms_key_id
    if not key_id:
        return []
    try:
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        policy = json.loads(unquote(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]))
    except ClientError as err:
        return [Finding("aws.kms_key_id", f"cannot read key {key_id} ({_error(err)}): fix the key, or give "
                        "yourself kms:DescribeKey and kms:GetKeyPolicy on it")]
    findings = []
    if meta["KeyState"] != "Enabled":
        findings.append(Finding("aws.kms_key_id", f"key {key_id} is {meta['KeyState']}: enable it or use another"))
    if meta["Arn"].split(":")[3] != cfg.aws.region:
        findings.append(Finding("aws.kms_key_id", f"key {key_id} is in {meta['Arn'].split(':')[3]}, the pipeline "
                                f"in {cfg.aws.region}: S3 and EBS take keys of their own region only"))
    account = cfg.aws.role_arn.split(":")[4]
    accepted = {cfg.aws.role_arn, f"arn:{cfg.aws.role_arn.split(':')[1]}:iam::{account}:root", account, "*"}
    if not any(_allows_use(st) and _principals(st) & accepted for st in policy.get("Statement", [])):
        findings.append(Finding("aws.kms_key_id", f"the key policy of {key_id} lets neither {cfg.aws.role_arn} nor "
                                "the account's IAM policies use the key: add a statement allowing the role "
                                "kms:Decrypt, kms:Encrypt, kms:GenerateDataKey, kms:DescribeKey and kms:CreateGrant"))
    return findings


# --- the network -------------------------------------------------------------------------------

def interface_services(cfg: Config) -> list[tuple[str, str, str]]:
    """(endpoint service, its name, the config key that makes the jobs call it)."""
    stages = cfg.stages.enabled()
    out = []
    reconcile = stages.get("reconcile")
    if reconcile is not None and reconcile.labels.secret_arn:
        out.append(("secretsmanager", "Secrets Manager", "stages.reconcile.labels.secret_arn"))
    if iam_policy.glue_location(cfg):
        out.append(("glue", "Glue", "stages.combine.glue"))
    return out


EGRESS = ("NatGatewayId", "TransitGatewayId", "NetworkInterfaceId", "InstanceId")


def _route_table(ec2, subnet: dict) -> dict | None:
    by_subnet = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                    "Values": [subnet["SubnetId"]]}])["RouteTables"]
    if by_subnet:
        return by_subnet[0]
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    return main[0] if main else None


def network_findings(cfg: Config, ec2) -> list[Finding]:
    region = cfg.aws.region
    findings = []
    for i, subnet_id in enumerate(cfg.aws.network.subnets):
        key = f"aws.network.subnets[{i}]"
        try:
            (subnet,) = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
            table = _route_table(ec2, subnet)
            endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]}]
                                                   )["VpcEndpoints"]
        except ClientError as err:
            findings.append(Finding(key, f"cannot read subnet {subnet_id} ({_error(err)})"))
            continue
        vpc, table_id = subnet["VpcId"], (table or {}).get("RouteTableId")
        egress = any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and any(r.get(k) for k in EGRESS)
                     for r in (table or {}).get("Routes", []))
        live = [e for e in endpoints if e.get("State", "available").lower() == "available"]
        s3 = any(e["ServiceName"] == f"com.amazonaws.{region}.s3" and e.get("VpcEndpointType") == "Gateway"
                 and table_id in e.get("RouteTableIds", []) for e in live)
        if not (s3 or egress):
            findings.append(Finding(key, f"{subnet_id} ({vpc}, route table {table_id}) reaches no S3: add a gateway "
                                    f"endpoint com.amazonaws.{region}.s3 to route table {table_id}, or a 0.0.0.0/0 route "
                                    "to a NAT gateway (an internet gateway route does not do: job interfaces "
                                    "have no public address)"))
        for service, title, why in interface_services(cfg):
            name = f"com.amazonaws.{region}.{service}"
            if egress or any(e["ServiceName"] == name and e.get("VpcEndpointType") == "Interface"
                             and e.get("PrivateDnsEnabled") for e in live):
                continue
            findings.append(Finding(key, f"{subnet_id} ({vpc}) reaches no {title}, which {why} makes the jobs "
                                    f"call: add an interface endpoint {name} with private DNS to {vpc}, or a NAT route"))
    return findings


# --- all of it ---------------------------------------------------------------------------------

def definition_findings(definition: dict) -> list[Finding]:
    from pipeline.definition.validate import check_definition

    return [Finding("definition", p) for p in check_definition(definition)]


def run_checks(cfg: Config, definition: dict, client: Callable[[str], object]) -> list[Finding]:
    """Every check; `client(name)`: boto3 clients `iam`, `simulate` (IAM's policy simulator),
    `service-quotas`, `s3`, `kms`, `ec2`."""
    return (role_findings(cfg, client("iam")) + permission_findings(cfg, client("simulate"))
            + quota_findings(cfg, definition, client("service-quotas")) + bucket_findings(cfg, client("s3"))
            + kms_findings(cfg, client("kms")) + network_findings(cfg, client("ec2"))
            + definition_findings(definition))


def preflight(cfg: Config, client: Callable[[str], object] | None = None, echo=print) -> int:
    """Print every finding; 1 when there is any, else 0."""
    from pipeline.build.compose import build

    if client is None:
        import boto3

        session = boto3.session.Session(region_name=cfg.aws.region)
        made: dict = {}
        client = lambda name: made.setdefault(name, session.client("iam" if name == "simulate" else name))  # noqa: E731
    definition = json.loads(build(cfg).definition)
    findings = run_checks(cfg, definition, client)
    for finding in findings:
        echo(finding.line())
    echo(f"{len(findings)} finding(s)" if findings else
         f"preflight: no findings for pipeline {cfg.pipeline.name} in {cfg.aws.region}")
    return 1 if findings else 0
