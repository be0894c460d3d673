"""Create or update the SageMaker pipeline, and delete it.

A new pipeline version is made only when something the service stores per version differs:
the definition (compared as JSON, not text), the role, the description or the parallelism.
Tags do not make versions; config tags are kept in step on every upsert, `wavepipe:*` tags
describe the deployed version and change with it. Tags removed from the config stay on the
pipeline (another tool may have put tags there too; only keys we set are touched).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Callable

from pipeline.config import Config
from pipeline.definition.model import compact as compact_definition
from pipeline.deploy import versions
from pipeline.deploy.assets import upload
from pipeline.deploy.clients import Aws
from pipeline.deploy.errors import DeployError
from pipeline.deploy.provenance import Provenance, tag_list
from pipeline.deploy.roles import SAGEMAKER, check_trust

# Above this the SDK sends the definition by S3 location (Pipeline._create_args); so do we.
INLINE_MAX = 100 * 1024


def describe(aws: Aws, name: str) -> dict | None:
    return aws.read("sagemaker", "describe_pipeline", f"pipeline {name}", missing_ok=True, PipelineName=name)


def pipeline_arn(aws: Aws, name: str) -> str:
    current = describe(aws, name)
    if current is None:
        raise DeployError(f"pipeline {name} does not exist: run `deploy.py upsert` first")
    return current["PipelineArn"]


def definition_args(cfg: Config, definition: str) -> tuple[dict, dict[str, bytes]]:
    """The request's definition arguments and any file they need uploaded first.

    The definition is sent compact: same JSON as `deploy.py definition`, fewer bytes."""
    compact = compact_definition(definition)
    body = compact.encode()
    if len(body) < INLINE_MAX:
        return {"PipelineDefinition": compact}, {}
    key = (f"{cfg.aws.output_prefix}/{cfg.pipeline.name}/definitions/"
           f"{hashlib.sha256(body).hexdigest()[:16]}.json").lstrip("/")
    return ({"PipelineDefinitionS3Location": {"Bucket": cfg.aws.bucket, "ObjectKey": key}},
            {f"s3://{cfg.aws.bucket}/{key}": body})


def request_args(cfg: Config, definition_arg: dict) -> dict:
    return {
        "PipelineName": cfg.pipeline.name,
        "RoleArn": cfg.aws.role_arn,
        "PipelineDescription": cfg.pipeline.description,
        "ParallelismConfiguration": {"MaxParallelExecutionSteps": cfg.max_parallel_steps},
        **definition_arg,
    }


def differences(current: dict, request: dict, definition: str) -> list[str]:
    """What the deployed pipeline's latest version has that ours does not."""
    changes = []
    try:
        deployed = json.loads(current.get("PipelineDefinition") or "null")
    except json.JSONDecodeError:
        deployed = None
    if deployed != json.loads(definition):
        changes.append("definition")
    if current.get("RoleArn") != request["RoleArn"]:
        changes.append("role")
    if (current.get("PipelineDescription") or "") != request["PipelineDescription"]:
        changes.append("description")
    parallel = (current.get("ParallelismConfiguration") or {}).get("MaxParallelExecutionSteps")
    if parallel != request["ParallelismConfiguration"]["MaxParallelExecutionSteps"]:
        changes.append("max parallel steps")
    return changes


def sync_tags(aws: Aws, name: str, arn: str, wanted: dict[str, str]) -> None:
    """Set the wanted tags. A changed value is deleted then added: AddTags overwrites in AWS
    but appends a duplicate in moto; delete-then-add is right for both."""
    resource = f"pipeline {name}"
    current = {t["Key"]: t["Value"] for t in aws.paginate("sagemaker", "list_tags", "Tags", resource, ResourceArn=arn)}
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changed:
        return
    stale = sorted(k for k in changed if k in current)
    if stale:
        aws.write("sagemaker", "delete_tags", resource, ResourceArn=arn, TagKeys=stale)
    aws.write("sagemaker", "add_tags", resource, ResourceArn=arn, Tags=tag_list(changed))


def _record(aws: Aws, name: str, arn: str, version: int | None, prov: Provenance, alias: str | None) -> None:
    """Version metadata is best effort (the tags carry the same facts); a requested alias is not."""
    try:
        versions.record(aws, name, arn, version, prov, alias)
    except DeployError as err:
        if alias:
            raise
        aws.echo(f"warning: version display name/description not recorded ({err}); the tags carry them")


def upsert(aws: Aws, cfg: Config, definition: str, files: dict[str, bytes], prov: Provenance,
           alias: str | None = None, then_upload: Callable[[], None] | None = None) -> None:
    """Upload `files` (and then whatever `then_upload` uploads: the wheelhouse), then create the
    pipeline, update it, or report it unchanged."""
    check_trust(aws, cfg.aws.role_arn, (SAGEMAKER,))
    definition_arg, definition_file = definition_args(cfg, definition)
    uploaded, skipped = upload(aws, {**files, **definition_file}, cfg.aws.kms_key_id)
    aws.echo(f"assets: {uploaded} {'to upload' if aws.dry_run else 'uploaded'}, {skipped} already in place")
    if then_upload is not None:
        then_upload()
    request = request_args(cfg, definition_arg)
    current = describe(aws, cfg.pipeline.name)
    if current is None:
        _create(aws, cfg, request, prov, alias)
        return
    changes = differences(current, request, definition)
    if changes:
        _update(aws, cfg, current["PipelineArn"], request, changes, prov, alias)
    else:
        _unchanged(aws, cfg, current["PipelineArn"], alias)


def _create(aws: Aws, cfg: Config, request: dict, prov: Provenance, alias: str | None) -> None:
    name = cfg.pipeline.name
    extra = {"PipelineVersionAliases": [alias]} if alias else {}
    response = aws.write("sagemaker", "create_pipeline", f"pipeline {name}", **request,
                         ClientRequestToken=uuid.uuid4().hex,
                         Tags=tag_list({**cfg.pipeline.tags, **prov.tags()}), **extra)
    arn = response["PipelineArn"] if response else f"<arn of {name}>"
    aws.echo(f"{aws.did('create', 'created')} pipeline {name} ({prov.display_name()})")
    _record(aws, name, arn, None, prov, None)


def _update(aws: Aws, cfg: Config, arn: str, request: dict, changes: list[str], prov: Provenance,
            alias: str | None) -> None:
    name = cfg.pipeline.name
    response = aws.write("sagemaker", "update_pipeline", f"pipeline {name}", **request)
    # AWS returns the new version's id; moto does not (then the newest version is looked up).
    version = (response or {}).get("PipelineVersionId")
    aws.echo(f"{aws.did('update', 'updated')} pipeline {name}: {', '.join(changes)} changed "
             f"({prov.display_name()})")
    sync_tags(aws, name, arn, {**cfg.pipeline.tags, **prov.tags()})
    _record(aws, name, arn, version, prov, alias)


def _unchanged(aws: Aws, cfg: Config, arn: str, alias: str | None) -> None:
    """No new version; config tags still follow the config, and the alias the newest version."""
    name = cfg.pipeline.name
    aws.echo(f"unchanged: the deployed definition of {name} equals ours; no new version")
    sync_tags(aws, name, arn, dict(cfg.pipeline.tags))
    if alias:
        versions.record(aws, name, arn, versions.latest_version(aws, name), None, alias)


def delete(aws: Aws, name: str) -> None:
    aws.write("sagemaker", "delete_pipeline", f"pipeline {name}", PipelineName=name,
              ClientRequestToken=uuid.uuid4().hex)
    aws.echo(f"{aws.did('delete', 'deleted')} pipeline {name}")
