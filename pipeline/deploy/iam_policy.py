"""Least-privilege IAM policies for exactly one config: the pipeline role's, its trust policy,
and the deploying person's (`deploy.py iam-policy`).

Every resource is an exact ARN derived from the config (bucket and prefixes, the raw data and
label objects, the KMS key, the secret, the Glue database and table, the image's ECR
repository, managed or own, the processing jobs' log group); `*` only for the actions AWS
cannot scope (`ecr:GetAuthorizationToken`, `cloudwatch:PutMetricData`, the EC2 `Describe*` calls
of VPC jobs, `scheduler:ListSchedules`). S3 listing is scoped by `s3:prefix` conditions, one
statement per bucket.

The role's job permissions are the set of AWS's "CreateProcessingJob API: execution role
permissions" (https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createprocessingjob-perms),
which grants them on `*`; the image, logs, metrics and VPC statements cite the page of each
narrowing they keep. Jobs delete objects in three places only, each granted `s3:DeleteObject`
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html) on exactly that:
Combine's Glue registration replaces its table's files (awswrangler's `mode="overwrite"`: the
table's location); Combine deletes a record-cache pack whose bytes are not those its name and
index promise (`record-cache/*/objects/`, so the next run featurizes its folders again), and an
object found in a content-addressed combined folder that its report does not list
(`experiments/*/combined/`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pipeline.config import Config
from pipeline.deploy.roles import SAGEMAKER, SCHEDULER, role_name
from pipeline.deploy.schedules import group_name
from pipeline.stages.common import base_uri
from pipeline.stages.registry import S3Access
from steps import contract as c
from steps.io.inventory import report_folder
from steps.io.storage import split_uri

VERSION = "2012-10-17"
# SageMaker names a pipeline's jobs `pipelines-<execution id>-<step>-<suffix>`, and a job's log
# streams `<job name>/algo-<n>-<timestamp>` in this group.
JOB_PREFIX = "pipelines-"
JOB_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
ECR_URI = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
                     r"(?P<repo>[^:@]+)")
# A complete secret ARN ends with `-` and six random characters; a partial one matches them.
SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


@dataclass(frozen=True)
class Account:
    """Where the pipeline lives: partition and account from the role ARN, region from the config."""

    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{resource}")


def account_of(cfg: Config) -> Account:
    _, partition, _, _, account, _ = cfg.aws.role_arn.split(":", 5)
    return Account(partition, cfg.aws.region, account)


def statement(sid: str, actions: list[str], resources: list[str] | str, condition: dict | None = None) -> dict:
    out = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)),
           "Resource": sorted(set(resources)) if isinstance(resources, list) else resources}
    if condition:
        out["Condition"] = condition
    return out


def document(statements: list[dict]) -> dict:
    return {"Version": VERSION, "Statement": statements}


# --- S3 -------------------------------------------------------------------------------------

def _prefix(uri: str) -> tuple[str, str]:
    """`s3://b/a/b/` -> (`b`, `a/b`): a location and everything under it."""
    bucket, key = split_uri(uri)
    return bucket, key.strip("/")


def input_locations(cfg: Config) -> list[str]:
    """The raw data the pipeline reads: InputUri's default and every schedule's own value."""
    uris = {cfg.parameters.input_uri}
    uris |= {str(s.parameters["InputUri"]).rstrip("/") for s in cfg.schedules if "InputUri" in s.parameters}
    return sorted(uris)


def stage_access(cfg: Config) -> list[S3Access]:
    """What each stage of this config reaches beyond the pipeline's prefix (its registry entry)."""
    return [stage.access(cfg) for stage in cfg.registry.enabled(cfg)]


def inventory_locations(cfg: Config) -> list[str]:
    """The S3 Inventory reports a listing reads (e.g. `stages.reconcile.listing.inventory`,
    `stages.listing.inventory`): the report configuration's folder, which holds every dated
    manifest (listed to find the newest) and the data files."""
    return sorted({report_folder(uri) for access in stage_access(cfg) for uri in access.inventories})


def label_objects(cfg: Config) -> list[str]:
    """Single objects a stage reads (the labels' SQLite file)."""
    return [uri for access in stage_access(cfg) for uri in access.objects]


def glue_table(cfg: Config):
    """Where a stage registers a Glue table (Combine's `glue`), if one does."""
    return next((access.glue for access in stage_access(cfg) if access.glue is not None), None)


def glue_location(cfg: Config) -> str | None:
    glue = glue_table(cfg)
    return glue.location if glue is not None else None


def object_arns(acct: Account, uris: list[str], exact: bool = False) -> list[str]:
    """Object ARNs of prefixes (`.../prefix/*`) or, with `exact`, of single objects."""
    out = []
    for uri in uris:
        bucket, key = _prefix(uri)
        resource = f"{bucket}/{key}" if exact else (f"{bucket}/{key}/*" if key else f"{bucket}/*")
        out.append(acct.arn("s3", resource, region=False, account=False))
    return out


def list_statements(acct: Account, prefixes: list[str]) -> list[dict]:
    """s3:ListBucket per bucket, limited to the listed prefixes (and their subfolders)."""
    by_bucket: dict[str, set[str]] = {}
    for uri in prefixes:
        bucket, key = _prefix(uri)
        by_bucket.setdefault(bucket, set()).update({key, f"{key}/*"} if key else {"*"})
    return [statement(f"ListBucket{_sid(bucket)}", ["s3:ListBucket"],
                      [acct.arn("s3", bucket, region=False, account=False)],
                      {"StringLike": {"s3:prefix": sorted(keys)}})
            for bucket, keys in sorted(by_bucket.items())]


def _sid(text: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", text) if part)


# --- the pipeline role ----------------------------------------------------------------------

def kms_statements(acct: Account, key_id: str) -> list[dict]:
    """Use of the key for S3 objects and job volumes (grants only for AWS resources: EBS)."""
    if key_id.startswith("alias/") or ":alias/" in key_id:
        # A grant on an alias ARN does not cover the key behind it, and resolving the alias
        # needs a call to KMS: this command stays offline and asks for the key instead.
        raise ValueError(f"aws.kms_key_id is the alias {key_id!r}: IAM grants use of keys, not aliases; "
                         f"give the key ARN (`aws kms describe-key --key-id {key_id}` shows it)")
    resource = key_id if key_id.startswith("arn:") else acct.arn("kms", f"key/{key_id}")
    actions = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    return [statement("UseKmsKey", actions, [resource]),
            statement("GrantKmsKeyToJobVolumes", ["kms:CreateGrant"], [resource],
                      {"Bool": {"kms:GrantIsForAWSResource": "true"}})]


def secret_arn(arn: str) -> str:
    return arn if SECRET_SUFFIX.search(arn) else f"{arn}-??????"


# "CreateProcessingJob API: execution role permissions" (the page above) lists the image pull for
# every processing job, AWS-managed images included; the pull actions take a repository ARN
# ("Actions, resources, and condition keys for Amazon Elastic Container Registry",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html),
# GetAuthorizationToken only `*` (same page: it has no resource type).
def ecr_statements(acct: Account, image_uri: str) -> list[dict]:
    match = ECR_URI.match(image_uri)
    if match is None:
        return []  # an image outside ECR (or public): nothing the role must be allowed
    # The managed images live in an AWS-owned account of each region (the URI names it).
    repo = f"arn:{acct.partition}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"
    return [statement("PullImage", ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                                    "ecr:GetDownloadUrlForLayer"], [repo]),
            statement("GetEcrLoginToken", ["ecr:GetAuthorizationToken"], "*")]


def job_image(cfg: Config) -> str:
    """The processing image: `image.uri`, or the managed image's URI from the SDK's own tables
    (offline: pipeline/build.py resolves it the same way for the definition)."""
    from pipeline.build.compose import resolve_image

    return resolve_image(cfg)[0]


# The actions are those of "Give SageMaker Processing Jobs Access to Resources in Your Amazon VPC"
# (https://docs.aws.amazon.com/sagemaker/latest/dg/process-vpc.html) and of the CreateProcessingJob
# page above, which grant them on `*` with no condition. The one narrowing kept: the actions
# that have resource types are granted on them, as "Actions, resources, and condition keys for
# Amazon EC2" (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html)
# documents them: CreateNetworkInterface on network-interface*, subnet* and security-group;
# Create/DeleteNetworkInterfacePermission and DeleteNetworkInterface on network-interface*. The
# interfaces SageMaker makes for a job live in the subnet's account (the role's) and region (the
# config's). The Describe* calls have no resource type (same page): `*`, as the guide has them.
def vpc_statements(acct: Account, cfg: Config) -> list[dict]:
    net = cfg.aws.network
    interfaces = acct.arn("ec2", "network-interface/*")
    create = [interfaces] + [acct.arn("ec2", f"subnet/{s}") for s in net.subnets] + \
        [acct.arn("ec2", f"security-group/{g}") for g in net.security_groups]
    return [
        statement("CreateJobNetworkInterfaces", ["ec2:CreateNetworkInterface"], create),
        statement("ManageJobNetworkInterfaces", ["ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                                                 "ec2:DeleteNetworkInterfacePermission"], [interfaces]),
        statement("DescribeJobNetwork", ["ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces",
                                         "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"], "*"),
    ]


def glue_statements(acct: Account, cfg: Config) -> list[dict]:
    glue = glue_table(cfg)
    db, table = glue.database, glue.table
    resources = [acct.arn("glue", "catalog"), acct.arn("glue", f"database/{db}"),
                 acct.arn("glue", f"table/{db}/{table}")]
    # What awswrangler's create_database(exist_ok) and to_parquet(mode="overwrite") call.
    actions = ["glue:BatchDeletePartition", "glue:CreateDatabase", "glue:CreateTable", "glue:DeleteTable",
               "glue:GetDatabase", "glue:GetPartitions", "glue:GetTable", "glue:UpdateTable"]
    return [statement("RegisterGlueTable", actions, resources)]


def role_policy(cfg: Config) -> dict:
    """The permissions policy of `aws.role_arn` for this config."""
    acct = account_of(cfg)
    base = base_uri(cfg)
    reads = input_locations(cfg)
    inventories = inventory_locations(cfg)
    glue = glue_location(cfg)
    jobs = acct.arn("sagemaker", f"processing-job/{JOB_PREFIX}*")
    statements = [
        statement("RunProcessingJobs", ["sagemaker:AddTags", "sagemaker:CreateProcessingJob",
                                        "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"], [jobs]),
        statement("PassRoleToProcessingJobs", ["iam:PassRole"], [cfg.aws.role_arn],
                  {"StringEquals": {"iam:PassedToService": SAGEMAKER}}),
    ]
    if cfg.schedules:
        statements.append(statement("StartScheduledExecutions", ["sagemaker:StartPipelineExecution"],
                                    [pipeline_arn(acct, cfg)]))
    statements += list_statements(acct, reads + [base] + inventories + ([glue] if glue else []))
    statements += [
        statement("ReadInputData", ["s3:GetObject", "s3:GetObjectTagging"],
                  object_arns(acct, reads) + object_arns(acct, label_objects(cfg), exact=True)),
        *([statement("ReadInventoryReports", ["s3:GetObject"], object_arns(acct, inventories))] if inventories else []),
        statement("ReadPipelineData", ["s3:GetObject", "s3:GetObjectTagging"], object_arns(acct, [base])),
        statement("WritePipelineData", ["s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectTagging"],
                  object_arns(acct, [base])),
        statement("DeleteRefusedObjects", ["s3:DeleteObject"], object_arns(acct, [
            f"{base.rstrip('/')}/{c.RECORD_CACHE_FOLDER}/*/objects",
            f"{base.rstrip('/')}/experiments/*/{c.RECORD_CACHE_FOLDER}/*/objects",
            f"{base.rstrip('/')}/experiments/*/{c.COMBINED_FOLDER}"])),
    ]
    if glue:
        statements.append(statement("WriteGlueTableData", ["s3:AbortMultipartUpload", "s3:DeleteObject",
                                                           "s3:GetObject", "s3:PutObject"], object_arns(acct, [glue])))
        statements += glue_statements(acct, cfg)
    if cfg.aws.kms_key_id:
        statements += kms_statements(acct, cfg.aws.kms_key_id)
    secrets = [secret_arn(arn) for access in stage_access(cfg) for arn in access.secrets]
    if secrets:
        statements.append(statement("ReadLabelsSecret", ["secretsmanager:GetSecretValue"], secrets))
    statements += ecr_statements(acct, job_image(cfg))
    # The logs and metrics of the CreateProcessingJob page above. Log groups and streams are
    # resources of `logs:` ("Actions, resources, and condition keys for Amazon CloudWatch Logs",
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html);
    # DescribeLogStreams is authorized on the group. PutMetricData has no resource type ("Actions,
    # resources, and condition keys for Amazon CloudWatch",
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html):
    # `*` as the CreateProcessingJob page has it.
    statements += [
        statement("CreateJobLogGroup", ["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                  [acct.arn("logs", f"log-group:{JOB_LOG_GROUP}:*")]),
        statement("WriteJobLogs", ["logs:CreateLogStream", "logs:PutLogEvents"],
                  [acct.arn("logs", f"log-group:{JOB_LOG_GROUP}:log-stream:{JOB_PREFIX}*")]),
        statement("PutJobMetrics", ["cloudwatch:PutMetricData"], "*"),
    ]
    if cfg.aws.network.subnets:
        statements += vpc_statements(acct, cfg)
    return document(statements)


def trust_policy() -> dict:
    """Who may assume the role: SageMaker (pipeline and jobs) and EventBridge Scheduler."""
    return document([{"Sid": "AssumedBySageMakerAndScheduler", "Effect": "Allow",
                      "Principal": {"Service": [SAGEMAKER, SCHEDULER]}, "Action": "sts:AssumeRole"}])


# --- the deploying person --------------------------------------------------------------------

def pipeline_arn(acct: Account, cfg: Config) -> str:
    # SageMaker writes pipeline names in ARNs in lower case.
    return acct.arn("sagemaker", f"pipeline/{cfg.pipeline.name.lower()}")


def deployer_policy(cfg: Config) -> dict:
    """What `deploy.py upsert|start|retry|stop|status|logs|report|schedule|delete` call."""
    acct = account_of(cfg)
    pipeline = pipeline_arn(acct, cfg)
    group = group_name(cfg.pipeline.name)
    base = base_uri(cfg)
    return document([
        statement("ManagePipeline", [
            "sagemaker:AddTags", "sagemaker:CreatePipeline", "sagemaker:DeletePipeline", "sagemaker:DeleteTags",
            "sagemaker:DescribePipeline", "sagemaker:ListPipelineExecutions", "sagemaker:ListPipelineVersions",
            "sagemaker:ListTags", "sagemaker:StartPipelineExecution", "sagemaker:UpdatePipeline",
            "sagemaker:UpdatePipelineVersion"], [pipeline]),
        statement("OperateExecutions", [
            "sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutionSteps",
            "sagemaker:RetryPipelineExecution", "sagemaker:StopPipelineExecution"], [f"{pipeline}/execution/*"]),
        statement("ReadProcessingJobs", ["sagemaker:DescribeProcessingJob"],
                  [acct.arn("sagemaker", f"processing-job/{JOB_PREFIX}*")]),
        statement("ReadJobLogs", ["logs:GetLogEvents"],
                  [acct.arn("logs", f"log-group:{JOB_LOG_GROUP}:log-stream:{JOB_PREFIX}*")]),
        statement("FindJobLogStreams", ["logs:DescribeLogStreams"], [acct.arn("logs", f"log-group:{JOB_LOG_GROUP}:*")]),
        *list_statements(acct, [base]),
        statement("UploadAssetsAndReadOutputs", ["s3:GetObject", "s3:PutObject"], object_arns(acct, [base])),
        statement("CheckRoleTrust", ["iam:GetRole"], [cfg.aws.role_arn]),
        statement("PassRoleToPipelineAndSchedules", ["iam:PassRole"], [cfg.aws.role_arn],
                  {"StringEquals": {"iam:PassedToService": [SAGEMAKER, SCHEDULER]}}),
        statement("ManageSchedules", ["scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:GetSchedule",
                                      "scheduler:UpdateSchedule"], [acct.arn("scheduler", f"schedule/{group}/*")]),
        statement("ManageScheduleGroup", ["scheduler:CreateScheduleGroup", "scheduler:DeleteScheduleGroup",
                                          "scheduler:GetScheduleGroup", "scheduler:TagResource"],
                  [acct.arn("scheduler", f"schedule-group/{group}")]),
        # ListSchedules has no resource type; `schedule` and `delete` look for strays with it.
        statement("FindSchedules", ["scheduler:ListSchedules"], "*"),
        *preflight_statements(acct, cfg),
    ])


def preflight_statements(acct: Account, cfg: Config) -> list[dict]:
    """The read-only calls of `deploy.py preflight` (pipeline/deploy/preflight.py)."""
    out = [statement("PreflightSimulateRole", ["iam:SimulatePrincipalPolicy"], [cfg.aws.role_arn]),
           statement("PreflightBucketRegions", ["s3:GetBucketLocation"],
                     sorted({acct.arn("s3", split_uri(u)[0], region=False, account=False)
                             for u in [base_uri(cfg), *input_locations(cfg)]})),
           # Neither has a resource type ("Actions, resources, and condition keys for Service Quotas",
           # https://docs.aws.amazon.com/service-authorization/latest/reference/list_servicequotas.html;
           # for Amazon EC2, https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
           statement("PreflightQuotasAndNetwork", ["ec2:DescribeRouteTables", "ec2:DescribeSubnets",
                                                   "ec2:DescribeVpcEndpoints", "servicequotas:ListServiceQuotas"], "*")]
    if cfg.aws.kms_key_id and not cfg.aws.kms_key_id.startswith("alias/") and ":alias/" not in cfg.aws.kms_key_id:
        key = cfg.aws.kms_key_id
        out.append(statement("PreflightReadKey", ["kms:DescribeKey", "kms:GetKeyPolicy"],
                             [key if key.startswith("arn:") else acct.arn("kms", f"key/{key}")]))
    return out


# --- output -----------------------------------------------------------------------------------

def cloudformation(cfg: Config, who: str) -> dict:
    """A template creating the role (with its trust and permissions) or the deployer's managed policy."""
    name = cfg.pipeline.name
    if who == "deployer":
        resource = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {
            "ManagedPolicyName": f"{name}-deployer", "Description": f"Deploy and operate pipeline {name}",
            "PolicyDocument": deployer_policy(cfg)}}
        return {"AWSTemplateFormatVersion": "2010-09-09", "Description": f"wavepipe: deployer policy of {name}",
                "Resources": {"DeployerPolicy": resource}, "Outputs": {"PolicyArn": {"Value": {"Ref": "DeployerPolicy"}}}}
    path = "/" + cfg.aws.role_arn.split(":role/", 1)[1].rsplit("/", 1)[0] + "/" if "/" in \
        cfg.aws.role_arn.split(":role/", 1)[1] else "/"
    resource = {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": role_name(cfg.aws.role_arn), "Path": path, "AssumeRolePolicyDocument": trust_policy(),
        "Description": f"Execution role of pipeline {name} and its processing jobs",
        "Policies": [{"PolicyName": f"{name}-pipeline", "PolicyDocument": role_policy(cfg)}]}}
    return {"AWSTemplateFormatVersion": "2010-09-09", "Description": f"wavepipe: execution role of {name}",
            "Resources": {"PipelineRole": resource}, "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["PipelineRole", "Arn"]}}}}


def render(cfg: Config, who: str = "role", fmt: str = "json") -> str:
    """`who`: role (permissions), trust (the role's trust policy) or deployer."""
    if fmt == "cloudformation":
        body = cloudformation(cfg, "deployer" if who == "deployer" else "role")
    else:
        body = {"role": role_policy, "deployer": deployer_policy}.get(who, lambda _: trust_policy())(cfg)
    return json.dumps(body, indent=2) + "\n"
