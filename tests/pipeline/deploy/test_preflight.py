"""`deploy.py preflight` end to end on the moto server: an account made ready for the config
(role, trust, bucket, KMS key, a VPC whose subnet has an S3 gateway endpoint and a Secrets
Manager interface endpoint) has no findings; each seeded problem is one finding naming what to
change, and the command exits 1.

moto serves neither IAM's policy simulator (SimulatePrincipalPolicy) nor Service Quotas: those
two clients are botocore Stubbers, answered from the generated role policy itself (the account
allows everything it asks, except what a test denies) and from a quota table.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pipeline.cli import main
from pipeline.deploy import iam_policy, preflight
from pipeline.deploy.preflight import Finding, concrete, contexts
from tests.conftest import REGION
from tests.pipeline.deploy.conftest import make_role, variant

SECRET = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:wavepipe/labels"
QUOTAS = {"ml.m5.xlarge": 20, "ml.m5.4xlarge": 20, "ml.m5.2xlarge": 20, "ml.g4dn.xlarge": 20, "ml.c5.2xlarge": 20}


def client(name: str):
    return boto3.client(name, region_name=REGION)


@pytest.fixture
def ready(aws, example_cfg, monkeypatch):
    """The account, ready: what `iam-policy --format cloudformation` and a network team would make."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    group = ec2.create_security_group(GroupName="jobs", Description="jobs", VpcId=vpc)["GroupId"]
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Gateway",
                            RouteTableIds=[table])
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.secretsmanager",
                            VpcEndpointType="Interface", SubnetIds=[subnet], PrivateDnsEnabled=True)
    key = client("kms").create_key()["KeyMetadata"]["Arn"]
    data = example_cfg.model_dump(mode="json", exclude_none=True)
    data["stages"]["reconcile"]["labels"] = {"url": "postgresql://db.internal/labels", "secret_arn": SECRET,
                                             "query": data["stages"]["reconcile"]["labels"]["query"]}
    cfg = variant(example_cfg, aws={"kms_key_id": key, "network": {"subnets": [subnet], "security_groups": [group]}},
                  stages=data["stages"])
    client("s3").create_bucket(Bucket=cfg.aws.bucket)
    iam = client("iam")
    iam.create_role(RoleName="wavepipe-pipeline", AssumeRolePolicyDocument=json.dumps(iam_policy.trust_policy()))
    iam.put_role_policy(RoleName="wavepipe-pipeline", PolicyName="p",
                        PolicyDocument=json.dumps(iam_policy.role_policy(cfg)))
    return cfg, {"vpc": vpc, "subnet": subnet, "table": table, "key": key}


def simulator(cfg, deny: set[tuple[str, str]] = frozenset()) -> Stubber:
    """IAM's simulator for the role, answering each call preflight makes: allowed, except the
    (statement, action) pairs in `deny`."""
    stub = Stubber(client("iam"))
    for st in iam_policy.role_policy(cfg)["Statement"]:
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        for context in contexts(st.get("Condition", {})):
            results = [{"EvalActionName": a, "EvalResourceName": concrete(r),
                        "EvalDecision": "implicitDeny" if (st["Sid"], a) in deny else "allowed"}
                       for a in st["Action"] for r in resources]
            stub.add_response("simulate_principal_policy", {"EvaluationResults": results, "IsTruncated": False},
                              {"PolicySourceArn": cfg.aws.role_arn, "ActionNames": st["Action"],
                               "ResourceArns": [concrete(r) for r in resources], "ContextEntries": ANY})
    return stub


def quota_table(limits: dict[str, float]) -> Stubber:
    stub = Stubber(client("service-quotas"))
    stub.add_response("list_service_quotas", {"Quotas": [
        {"QuotaName": f"{kind} for processing job usage", "Value": value, "ServiceCode": "sagemaker"}
        for kind, value in limits.items()]}, {"ServiceCode": "sagemaker"})
    return stub


def findings(cfg, deny=frozenset(), limits=None) -> list[str]:
    """Every finding line, the two unserved APIs answered by their Stubbers."""
    from pipeline.build.compose import build

    sim, quotas = simulator(cfg, deny), quota_table(QUOTAS if limits is None else limits)
    made = {"simulate": sim.client, "service-quotas": quotas.client}
    with sim, quotas:
        found = preflight.run_checks(cfg, json.loads(build(cfg).definition), lambda n: made.get(n) or client(n))
    sim.assert_no_pending_responses()
    return [f.line() for f in found]


class TestValidAccount:
    def test_a_ready_account_has_no_findings_and_exits_0(self, ready):
        cfg, _ = ready
        sim, quotas = simulator(cfg), quota_table(QUOTAS)
        made = {"simulate": sim.client, "service-quotas": quotas.client}
        lines: list[str] = []
        with sim, quotas:
            assert preflight.preflight(cfg, lambda n: made.get(n) or client(n), echo=lines.append) == 0
        assert lines == [f"preflight: no findings for pipeline {cfg.pipeline.name} in {REGION}"]

    def test_every_statement_of_the_role_policy_is_simulated_on_its_resources(self, ready):
        cfg, _ = ready
        sim = simulator(cfg)
        with sim:
            assert preflight.permission_findings(cfg, sim.client) == []
        sim.assert_no_pending_responses()  # one call per statement (per listed s3:prefix)

    def test_the_fan_out_counts_instances_at_once(self, example_cfg):
        from pipeline.build.compose import build

        definition = json.loads(build(example_cfg).definition)
        need = preflight.concurrent_instances(definition)
        assert need["FeaturizeInstanceType"] == 2 and need["ReconcileInstanceType"] == 1  # 2 macroshards


class TestSeededProblems:
    def test_a_missing_role(self, ready):
        cfg, _ = ready
        client("iam").delete_role_policy(RoleName="wavepipe-pipeline", PolicyName="p")
        client("iam").delete_role(RoleName="wavepipe-pipeline")
        lines = [f.line() for f in preflight.role_findings(cfg, client("iam"))]
        (line,) = lines
        assert line.startswith("aws.role_arn: cannot read role wavepipe-pipeline (NoSuchEntity: ")
        assert line.endswith("): create it from `deploy.py iam-policy --format cloudformation`, or fix the ARN")

    def test_a_trust_policy_without_scheduler(self, ready):
        cfg, _ = ready
        client("iam").update_assume_role_policy(RoleName="wavepipe-pipeline", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}))
        (line,) = findings(cfg)
        assert line.startswith("trust policy of the role (statement AssumedBySageMakerAndScheduler): role "
                               "wavepipe-pipeline does not trust scheduler.amazonaws.com")

    def test_a_denied_image_pull(self, ready):
        cfg, _ = ready
        (line,) = findings(cfg, deny={("PullImage", "ecr:BatchGetImage")})
        assert line == ("policy statement PullImage: the role may not ecr:BatchGetImage on "
                        "arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-scikit-learn (implicitDeny): give "
                        "the role this statement as `iam-policy --for role` prints it")

    def test_a_quota_below_the_fan_out(self, ready):
        cfg, _ = ready
        (line,) = findings(cfg, limits={**QUOTAS, "ml.m5.4xlarge": 1})
        assert line == ("stages.featurize.instance_type: ml.m5.4xlarge for processing job usage is 1 in us-east-1, "
                        "and the pipeline runs up to 2 at once (FeaturizeInstanceType): request an increase in "
                        "Service Quotas, or lower the concurrency (macroshards, max_concurrency, instance_count)")

    def test_a_bucket_in_another_region(self, ready):
        cfg, _ = ready
        client("s3").delete_bucket(Bucket=cfg.aws.bucket)
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket=cfg.aws.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        (line,) = findings(cfg)
        assert line.startswith("aws.bucket: bucket wavepipe-example is in eu-west-1, the pipeline in us-east-1")

    def test_a_disabled_key_whose_policy_leaves_out_the_role(self, ready):
        cfg, made = ready
        kms = client("kms")
        key_id = made["key"].rsplit("/", 1)[1]
        kms.disable_key(KeyId=key_id)
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                                   "Principal": {"AWS": "arn:aws:iam::123456789012:role/admin"}}]}))
        assert findings(cfg) == [
            f"aws.kms_key_id: key {made['key']} is Disabled: enable it or use another",
            f"aws.kms_key_id: the key policy of {made['key']} lets neither {cfg.aws.role_arn} nor the account's IAM "
            "policies use the key: add a statement allowing the role kms:Decrypt, kms:Encrypt, kms:GenerateDataKey, "
            "kms:DescribeKey and kms:CreateGrant"]

    def test_a_subnet_without_s3_or_secrets_manager(self, ready):
        cfg, made = ready
        ec2 = client("ec2")
        ids = [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]]
        ec2.delete_vpc_endpoints(VpcEndpointIds=ids)
        subnet, vpc, table = made["subnet"], made["vpc"], made["table"]
        assert findings(cfg) == [
            f"aws.network.subnets[0]: {subnet} ({vpc}, route table {table}) reaches no S3: add a gateway endpoint "
            f"com.amazonaws.us-east-1.s3 to route table {table}, or a 0.0.0.0/0 route to a NAT gateway (an internet "
            "gateway route does not do: job interfaces have no public address)",
            f"aws.network.subnets[0]: {subnet} ({vpc}) reaches no Secrets Manager, which "
            "stages.reconcile.labels.secret_arn makes the jobs call: add an interface endpoint "
            f"com.amazonaws.us-east-1.secretsmanager with private DNS to {vpc}, or a NAT route"]

    def test_a_nat_route_reaches_everything(self, ready):
        cfg, made = ready
        ec2 = client("ec2")
        ec2.delete_vpc_endpoints(VpcEndpointIds=[e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]])
        public = ec2.create_subnet(VpcId=made["vpc"], CidrBlock="10.0.2.0/24")["Subnet"]["SubnetId"]
        nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"])
        ec2.create_route(RouteTableId=made["table"], DestinationCidrBlock="0.0.0.0/0",
                         NatGatewayId=nat["NatGateway"]["NatGatewayId"])
        assert findings(cfg) == []

    def test_a_definition_over_the_limits(self, example_cfg):
        from pipeline.build.compose import build

        definition = json.loads(build(example_cfg).definition)
        step = definition["Steps"][0]
        step["Arguments"]["Environment"]["PADDING"] = "x" * (1024 * 1024)
        lines = [f.line() for f in preflight.definition_findings(definition)]
        assert any(line.startswith("definition: definition: ") and "1 MiB" in line for line in lines), lines

    def test_the_command_exits_1_naming_each_finding(self, ready, monkeypatch, capsys):
        cfg, _ = ready
        sim, quotas = simulator(cfg, deny={("PutJobMetrics", "cloudwatch:PutMetricData")}), quota_table(QUOTAS)
        made = {"simulate": sim.client, "service-quotas": quotas.client}
        real = preflight.preflight
        monkeypatch.setattr(preflight, "preflight", lambda c: real(cfg, lambda n: made.get(n) or client(n)))
        with sim, quotas:
            assert main(["preflight"]) == 1
        out = capsys.readouterr().out.splitlines()
        assert out == ["policy statement PutJobMetrics: the role may not cloudwatch:PutMetricData on * (implicitDeny): "
                       "give the role this statement as `iam-policy --for role` prints it", "1 finding(s)"]


def test_finding_line():
    assert Finding("aws.bucket", "x").line() == "aws.bucket: x"
