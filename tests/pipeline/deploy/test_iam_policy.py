"""`deploy.py iam-policy`: every generated policy linted by parliament, and the role policy proven
on the moto server with IAM enforcement on (`/moto-api/reset-auth`, the server side of
`INITIAL_NO_AUTH_ACTION_COUNT`): a local run holding only the role's credentials succeeds, and
without any one of its S3 statements a step fails with AccessDenied on an operation that needs
that statement's action.

S3 is authorized by tests/moto_iam.py (moto 5.2.6 asks for the operation's name, `s3:ListObjectsV2`,
instead of the IAM action AWS checks, `s3:ListBucket`, and has no `s3:prefix` context): each
operation's documented IAM action, and the policy's `s3:prefix` conditions evaluated against the
request the step made. Where moto does not enforce (said in the tests below): it authorizes every
non-S3 call against the resource `*`, so a statement scoped to a secret, key, table or log group can
never be matched there; CopyObject is authorized on its destination only; SageMaker's own calls for
the jobs (CreateProcessingJob, PassRole, the job's logs, ECR pulls, VPC interfaces) are not made by
a local run at all.
"""

from __future__ import annotations

import copy
import json

import boto3
import parliament
import pytest
import requests

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.deploy import iam_policy
from tests.conftest import REGION, ROOT
from tests.moto_iam import S3_ACTIONS, s3_authorization
from tests.pipeline.deploy.conftest import variant

# Its expensive fixture (a whole local run) made once: these tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("iam_enforced")

EXAMPLE = ROOT / "config" / "example.yaml"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wavepipe/labels"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/wavepipe/processing:1.2"
# parliament 1.6.4's bundled IAM database predates these two SageMaker actions; they are added to
# it (resource type `pipeline`, like DescribePipeline) so that they are checked, not skipped.
NEWER_THAN_PARLIAMENT = ("ListPipelineVersions", "UpdatePipelineVersion")


def _teach_parliament() -> None:
    sagemaker = next(s for s in parliament.iam_definition if s["prefix"] == "sagemaker")
    known = {p["privilege"] for p in sagemaker["privileges"]}
    template = next(p for p in sagemaker["privileges"] if p["privilege"] == "DescribePipeline")
    for name in NEWER_THAN_PARLIAMENT:
        if name not in known:
            sagemaker["privileges"].append({**copy.deepcopy(template), "privilege": name})


def findings(policy: dict, resource: str | None = None, community: bool = False) -> list[str]:
    """parliament's findings (its default auditors; `community`: its community auditors too).
    A trust policy (a resource policy of the role, without Resource by definition) is linted
    with the role as its Resource."""
    _teach_parliament()
    if resource:
        policy = {**policy, "Statement": [{**s, "Resource": resource} for s in policy["Statement"]]}
    analysed = parliament.analyze_policy_string(json.dumps(policy), include_community_auditors=community)
    return [f"{f.issue}: {f.detail} {f.location}" for f in analysed.findings]


def everything(cfg):
    """The example with every optional resource: KMS key, VPC, ECR image, Glue, secret, schedules."""
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["stages"]["reconcile"]["labels"] = {"url": "postgresql://db.internal/labels", "secret_arn": SECRET,
                                             "query": data["stages"]["reconcile"]["labels"]["query"]}
    data["stages"]["combine"]["glue"] = {"database": "wavepipe", "table": "waveform_summary",
                                         "location": "s3://wavepipe-lake/tables/waveform_summary/"}
    data["schedules"][0]["parameters"]["InputUri"] = "s3://wavepipe-raw-2/mimic3wdb"
    return variant(variant(cfg, aws={"kms_key_id": KEY_ARN,
                                     "network": {"subnets": ["subnet-0a1"], "security_groups": ["sg-0b2"]}},
                           image={"uri": IMAGE}), stages=data["stages"], schedules=data["schedules"])


def actions(policy: dict) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def resources(policy: dict, prefix: str) -> set[str]:
    return {r for s in policy["Statement"] if any(a.startswith(prefix) for a in s["Action"])
            for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])}


CONFIGS = ["example", "mimic3wdb", "documents", "everything"]


@pytest.fixture(params=CONFIGS)
def any_cfg(request, example_cfg):
    if request.param == "everything":
        return everything(example_cfg)
    return load_config(ROOT / "config" / f"{request.param}.yaml")


class TestValidPolicy:
    @pytest.mark.parametrize("who", ["role", "deployer"])
    def test_parliament_has_no_findings(self, any_cfg, who):
        policy = iam_policy.role_policy(any_cfg) if who == "role" else iam_policy.deployer_policy(any_cfg)
        assert findings(policy) == []

    def test_community_auditors_flag_only_actions_the_jobs_need(self, any_cfg):
        """parliament's community auditors list sensitive actions whatever their scope; each one
        flagged here is required: the role passes itself to its jobs, SageMaker grants EBS the
        volume key, attaches the VPC interfaces and logs in to ECR for the image."""
        required = {"iam:passrole", "kms:creategrant", "ec2:createnetworkinterfacepermission",
                    "ecr:getauthorizationtoken"}
        for policy in (iam_policy.role_policy(any_cfg), iam_policy.deployer_policy(any_cfg)):
            _teach_parliament()
            analysed = parliament.analyze_policy_string(json.dumps(policy), include_community_auditors=True)
            extra = [f for f in analysed.findings if f.issue not in ("PERMISSIONS_MANAGEMENT_ACTIONS",
                                                                     "CREDENTIALS_EXPOSURE")]
            flagged = {a for f in analysed.findings for a in f.location.get("actions", [])}
            assert extra == [] and flagged <= required, (extra, flagged)

    def test_trust_policy_has_no_findings_and_names_both_services(self, example_cfg):
        trust = iam_policy.trust_policy()
        assert findings(trust, example_cfg.aws.role_arn) == []
        assert trust["Statement"][0]["Principal"]["Service"] == ["sagemaker.amazonaws.com", "scheduler.amazonaws.com"]

    def test_the_example_grants_s3_on_its_exact_prefixes_and_labels_only(self, example_cfg):
        policy = iam_policy.role_policy(example_cfg)
        base = "arn:aws:s3:::wavepipe-example/wavepipe/wavepipe-example"
        assert resources(policy, "s3:") == {
            "arn:aws:s3:::wavepipe-example",
            "arn:aws:s3:::wavepipe-example/sample/mimic3wdb/*",
            "arn:aws:s3:::wavepipe-example/sample/labels.sqlite",
            f"{base}/*",
            # Combine deletes a refused record-cache pack, or a stray object in a combined folder.
            f"{base}/record-cache/*/objects/*", f"{base}/experiments/*/record-cache/*/objects/*",
            f"{base}/experiments/*/combined/*",
        }
        [listing] = [s for s in policy["Statement"] if s["Action"] == ["s3:ListBucket"]]
        assert listing["Condition"]["StringLike"]["s3:prefix"] == [
            "sample/mimic3wdb", "sample/mimic3wdb/*", "wavepipe/wavepipe-example", "wavepipe/wavepipe-example/*"]
        assert not any(a.startswith(("ec2:", "kms:", "secretsmanager:", "glue:")) for a in actions(policy))
        [delete] = [s for s in policy["Statement"] if "s3:DeleteObject" in s["Action"]]
        assert delete["Action"] == ["s3:DeleteObject"] and all("/objects/" in r or "/combined/" in r
                                                               for r in delete["Resource"])

    def test_the_documented_job_permissions_are_granted_for_the_managed_image(self, example_cfg):
        """"CreateProcessingJob API: execution role permissions" lists the image pull (for AWS's
        images too), the logs including DescribeLogStreams, and PutMetricData. The pull is scoped
        to the managed image's repository, in the AWS-owned account the SDK's tables name."""
        policy = iam_policy.role_policy(example_cfg)
        assert {"ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage", "cloudwatch:PutMetricData", "logs:CreateLogGroup", "logs:CreateLogStream",
                "logs:PutLogEvents", "logs:DescribeLogStreams"} <= actions(policy)
        assert resources(policy, "ecr:Batch") == {
            "arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-scikit-learn"}
        assert resources(policy, "ecr:GetAuthorizationToken") == {"*"}

    def test_every_configured_resource_is_named_exactly(self, example_cfg):
        cfg = everything(example_cfg)
        policy = iam_policy.role_policy(cfg)
        assert resources(policy, "kms:") == {KEY_ARN}
        assert resources(policy, "secretsmanager:") == {SECRET + "-??????"}
        assert resources(policy, "glue:") == {"arn:aws:glue:us-east-1:123456789012:catalog",
                                              "arn:aws:glue:us-east-1:123456789012:database/wavepipe",
                                              "arn:aws:glue:us-east-1:123456789012:table/wavepipe/waveform_summary"}
        assert "arn:aws:s3:::wavepipe-raw-2/mimic3wdb/*" in resources(policy, "s3:GetObject")  # a schedule's InputUri
        assert "arn:aws:s3:::wavepipe-lake/tables/waveform_summary/*" in resources(policy, "s3:PutObject")
        assert {"arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0a1",
                "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0b2"} <= resources(policy, "ec2:Create")
        assert resources(policy, "ecr:Batch") == {"arn:aws:ecr:us-east-1:123456789012:repository/wavepipe/processing"}
        assert resources(policy, "logs:") == {
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/ProcessingJobs:*",
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/ProcessingJobs:log-stream:pipelines-*"}
        star = {a for s in policy["Statement"] if s["Resource"] == "*" for a in s["Action"]}
        assert star == {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"}

    def test_an_inventory_report_is_listed_and_read_in_its_configuration_folder(self, example_cfg):
        data = example_cfg.model_dump(mode="json", exclude_none=True)["stages"]
        data["reconcile"]["listing"] = {"inventory": "s3://inv-bucket/reports/wavepipe-example/all/"
                                                     "2026-11-30T00-00Z/manifest.json"}
        policy = iam_policy.role_policy(variant(example_cfg, stages=data))
        [read] = [s for s in policy["Statement"] if s["Sid"] == "ReadInventoryReports"]
        assert read["Action"] == ["s3:GetObject"]
        assert read["Resource"] == ["arn:aws:s3:::inv-bucket/reports/wavepipe-example/all/*"]
        [listing] = [s for s in policy["Statement"] if s["Sid"] == "ListBucketInvBucket"]
        assert listing["Condition"]["StringLike"]["s3:prefix"] == ["reports/wavepipe-example/all",
                                                                   "reports/wavepipe-example/all/*"]
        assert findings(policy) == []
        assert "ReadInventoryReports" not in {s["Sid"] for s in iam_policy.role_policy(example_cfg)["Statement"]}

    def test_role_passes_only_itself_to_sagemaker(self, example_cfg):
        [passing] = [s for s in iam_policy.role_policy(example_cfg)["Statement"] if s["Action"] == ["iam:PassRole"]]
        assert passing["Resource"] == [example_cfg.aws.role_arn]
        assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}

    def test_deployer_covers_every_call_the_deploy_commands_make(self, example_cfg):
        """Each AWS operation named in pipeline/deploy/*.py (and the deploy and operate commands of
        pipeline/cli/) maps to an action the deployer holds."""
        import re

        from pipeline.deploy import clients

        files = [*(ROOT / "pipeline" / "deploy").glob("*.py"), *(ROOT / "pipeline" / "cli" / f for f in ("deploy.py", "operate.py"))]
        source = "".join(p.read_text() for p in files)
        calls = set(re.findall(r'"(sagemaker|scheduler|iam|logs)", "([a-z_]+)"', source))
        aws = clients.Aws(REGION)
        needed = {f"{svc}:{aws.client(svc).meta.method_to_api_mapping[m]}" for svc, m in calls}
        assert needed - actions(iam_policy.deployer_policy(example_cfg)) == set()

    def test_cloudformation_template_makes_the_role_with_both_policies(self, example_cfg, capsys):
        assert main(["iam-policy", "--config", str(EXAMPLE), "--format", "cloudformation"]) == 0
        role = json.loads(capsys.readouterr().out)["Resources"]["PipelineRole"]
        assert role["Type"] == "AWS::IAM::Role" and role["Properties"]["RoleName"] == "wavepipe-pipeline"
        assert role["Properties"]["AssumeRolePolicyDocument"] == iam_policy.trust_policy()
        assert role["Properties"]["Policies"][0]["PolicyDocument"] == iam_policy.role_policy(example_cfg)

    def test_cli_prints_deployer_and_trust_json(self, example_cfg, capsys):
        assert main(["iam-policy", "--config", str(EXAMPLE), "--for", "deployer"]) == 0
        assert json.loads(capsys.readouterr().out) == iam_policy.deployer_policy(example_cfg)
        assert main(["iam-policy", "--config", str(EXAMPLE), "--for", "trust"]) == 0
        assert json.loads(capsys.readouterr().out) == iam_policy.trust_policy()


class TestInvalidPolicy:
    def test_a_kms_alias_exits_2_asking_for_the_key(self, tmp_path, capsys):
        overlay = tmp_path / "kms.yaml"
        overlay.write_text("aws:\n  kms_key_id: alias/wavepipe\n")
        assert main(["iam-policy", "--config", str(EXAMPLE), "--overlay", str(overlay)]) == 2
        assert "alias/wavepipe" in capsys.readouterr().err


# --- the proof on the moto server ------------------------------------------------------------------

# The S3 operations a run makes and the action each needs (HEAD has no error body: S3 answers
# `403 Forbidden` there, elsewhere `AccessDenied`).
S3_OPERATION_ACTION = S3_ACTIONS
S3_STATEMENTS = ["ListBucketWavepipeExample", "ReadInputData", "ReadPipelineData", "WritePipelineData"]
# Statements a local run cannot exercise: SageMaker makes these calls itself for the jobs.
NOT_CALLED_LOCALLY = {"RunProcessingJobs", "PassRoleToProcessingJobs", "StartScheduledExecutions",
                      "CreateJobLogGroup", "WriteJobLogs", "PutJobMetrics", "PullImage", "GetEcrLoginToken"}


def set_auth(endpoint: str, count: str) -> None:
    """0: every request from now on is authenticated and authorized; inf: none is."""
    requests.post(f"{endpoint}/moto-api/reset-auth", data=count.encode(), timeout=10).raise_for_status()


def put_role_policy(cfg, policy: dict, endpoint: str | None = None) -> None:
    boto3.client("iam", endpoint_url=endpoint).put_role_policy(RoleName=cfg.aws.role_arn.rsplit("/", 1)[-1],
                                        PolicyName="wavepipe-pipeline", PolicyDocument=json.dumps(policy))


@pytest.fixture(scope="module")
def enforced(moto_server, tmp_path_factory):
    """The example's bucket with its sample data and assets (uploaded with the deployer policy's
    credentials), its role made from the generated trust and role policies, and that role's
    temporary credentials; IAM enforcement is on while the tests use it."""
    import os
    from types import SimpleNamespace

    from pipeline.build.compose import build
    from pipeline.local.backend import open_backend, write_assets
    from pipeline.local.command import ensure_sample_data

    cfg = load_config(EXAMPLE)
    workdir = tmp_path_factory.mktemp("enforced")
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_SESSION_TOKEN")}
    os.environ["AWS_ENDPOINT_URL"] = moto_server
    boto3.client("s3").create_bucket(Bucket=cfg.aws.bucket)
    ensure_sample_data(cfg, workdir, moto_server)  # the raw data: there before the pipeline
    iam = boto3.client("iam")
    iam.create_role(RoleName="wavepipe-pipeline", AssumeRolePolicyDocument=json.dumps(iam_policy.trust_policy()))
    put_role_policy(cfg, iam_policy.role_policy(cfg))
    iam.create_user(UserName="deployer")
    iam.put_user_policy(UserName="deployer", PolicyName="deploy", PolicyDocument=json.dumps(
        iam_policy.deployer_policy(cfg)))
    deployer = iam.create_access_key(UserName="deployer")["AccessKey"]
    role = boto3.client("sts").assume_role(RoleArn=cfg.aws.role_arn, RoleSessionName="run")["Credentials"]
    set_auth(moto_server, "0")
    authorization = s3_authorization()
    authorization.__enter__()
    try:
        os.environ.update(AWS_ACCESS_KEY_ID=deployer["AccessKeyId"], AWS_SECRET_ACCESS_KEY=deployer["SecretAccessKey"])
        os.environ.pop("AWS_SESSION_TOKEN")
        boto3.DEFAULT_SESSION = None  # it caches the credentials it found first
        assets = build(cfg).assets.files
        assert write_assets(open_backend(moto_server, workdir), assets) == len(assets)
        yield SimpleNamespace(cfg=cfg, endpoint=moto_server, workdir=workdir, credentials={
            "AWS_ACCESS_KEY_ID": role["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": role["SecretAccessKey"],
            "AWS_SESSION_TOKEN": role["SessionToken"]})
    finally:
        authorization.__exit__(None, None, None)
        set_auth(moto_server, "inf")
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        boto3.DEFAULT_SESSION = None
        requests.post(f"{moto_server}/moto-api/reset", timeout=10)


def run_as_role(enforced, monkeypatch, tmp_path) -> int:
    """`deploy.py local` on the moto server with the role's credentials (the sample data is in
    place already: the run is not asked to check for it)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", enforced.endpoint)
    for key, value in enforced.credentials.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it found first
    overlay = tmp_path / "no-sample.yaml"
    overlay.write_text("local:\n  sample_data_uri: null\n")
    return main(["local", "--config", str(EXAMPLE), "--overlay", str(overlay), "--workdir", str(tmp_path / "w"),
                 "--s3-endpoint", enforced.endpoint])


class TestEnforcedOnMoto:
    def test_a_local_run_with_only_the_role_policy_succeeds(self, enforced, monkeypatch, tmp_path, capsys):
        assert run_as_role(enforced, monkeypatch, tmp_path) == 0
        assert "succeeded" in capsys.readouterr().out
        set_auth(enforced.endpoint, "inf")
        try:
            keys = [o["Key"] for page in boto3.client("s3", aws_access_key_id="testing", aws_secret_access_key="x")
                    .get_paginator("list_objects_v2").paginate(Bucket="wavepipe-example", Prefix="wavepipe/")
                    for o in page.get("Contents", [])]
        finally:
            set_auth(enforced.endpoint, "0")
        assert any(k.endswith("combine/waveform_summary.parquet") for k in keys)
        assert any(k.endswith("encode/full_dataset/dataset_dict.json") for k in keys)
        assert not (tmp_path / "w" / "s3").exists()

    def test_the_statements_left_unproven_are_only_those_sagemaker_itself_uses(self, enforced):
        sids = {s["Sid"] for s in iam_policy.role_policy(enforced.cfg)["Statement"]}
        assert sids - NOT_CALLED_LOCALLY == set(S3_STATEMENTS) | {"DeleteRefusedObjects"}

    @pytest.mark.parametrize("sid", S3_STATEMENTS)
    def test_without_one_statement_a_step_fails_with_access_denied_on_its_action(
            self, enforced, monkeypatch, tmp_path, capsys, sid):
        policy = iam_policy.role_policy(enforced.cfg)
        [removed] = [s for s in policy["Statement"] if s["Sid"] == sid]
        denied = run_with_statements(enforced, monkeypatch, tmp_path, capsys,
                                     [s for s in policy["Statement"] if s is not removed])
        assert {S3_OPERATION_ACTION[op] for op in denied} <= set(removed["Action"]), (denied, removed)

    def test_the_listing_prefixes_are_enforced_against_the_requests_the_steps_make(
            self, enforced, monkeypatch, tmp_path, capsys):
        policy = iam_policy.role_policy(enforced.cfg)
        [listing] = [s for s in policy["Statement"] if s["Sid"] == "ListBucketWavepipeExample"]
        prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
        narrowed = {**listing, "Condition": {"StringLike": {"s3:prefix": [p for p in prefixes
                                                                            if not p.startswith("sample/")]}}}
        denied = run_with_statements(enforced, monkeypatch, tmp_path, capsys,
                                     [narrowed if s is listing else s for s in policy["Statement"]])
        assert denied == ["ListObjectsV2"]


    def test_combine_may_delete_a_refused_pack_and_nothing_else(self, enforced, monkeypatch):
        """DeleteRefusedObjects is exercised only when a pack is damaged between the plan and
        Combine (a race no run here makes), so it is proven by the call Combine makes
        (steps/combine/assemble.py), as the role: allowed on a pack, denied beside it, and
        denied on the pack once the statement is gone."""
        from botocore.exceptions import ClientError

        from steps.io.storage import S3Storage

        monkeypatch.setenv("AWS_ENDPOINT_URL", enforced.endpoint)
        for key, value in enforced.credentials.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        base = "s3://wavepipe-example/wavepipe/wavepipe-example"
        pack, other = f"{base}/record-cache/0123456789abcdef/objects/{'0' * 64}.parquet", f"{base}/labels-x"
        storage = S3Storage()
        for uri in (pack, other):
            storage.write_bytes(uri, b"damaged")
        storage.delete(pack)
        assert storage.head(pack) is None
        with pytest.raises(ClientError, match="AccessDenied|Forbidden|403"):
            storage.delete(other)
        policy = iam_policy.role_policy(enforced.cfg)
        storage.write_bytes(pack, b"damaged")
        set_auth(enforced.endpoint, "inf")
        put_role_policy(enforced.cfg, {**policy, "Statement": [s for s in policy["Statement"]
                                                                if s["Sid"] != "DeleteRefusedObjects"]},
                        enforced.endpoint)
        set_auth(enforced.endpoint, "0")
        try:
            with pytest.raises(ClientError, match="AccessDenied|Forbidden|403"):
                S3Storage().delete(pack)
        finally:
            set_auth(enforced.endpoint, "inf")
            put_role_policy(enforced.cfg, policy, enforced.endpoint)
            set_auth(enforced.endpoint, "0")


def run_with_statements(enforced, monkeypatch, tmp_path, capsys, statements: list[dict]) -> list[str]:
    """A local run as the role holding only `statements`: it must fail; returns the S3 operations
    denied, as the failed steps' reasons and logs name them."""
    policy = iam_policy.role_policy(enforced.cfg)
    set_auth(enforced.endpoint, "inf")
    put_role_policy(enforced.cfg, {**policy, "Statement": statements}, enforced.endpoint)
    set_auth(enforced.endpoint, "0")
    try:
        assert run_as_role(enforced, monkeypatch, tmp_path) == 1
    finally:
        set_auth(enforced.endpoint, "inf")
        put_role_policy(enforced.cfg, policy, enforced.endpoint)
        set_auth(enforced.endpoint, "0")
    record = next((tmp_path / "w" / "executions").glob("*/execution.json"))
    failed = {n: s for n, s in json.loads(record.read_text())["Steps"].items() if s["State"] == "Failed"}
    assert failed, capsys.readouterr().out
    text = " ".join((s["Reason"] or "") + open(s["Log"]).read() for s in failed.values() if s["Log"])
    denied = [op for op in S3_OPERATION_ACTION
              if f"when calling the {op} operation: Access Denied" in text
              or f"(403) when calling the {op} operation: Forbidden" in text]
    assert denied, text[-2000:]
    return denied
