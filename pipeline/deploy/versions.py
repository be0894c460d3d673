"""Pipeline versions, their display names, descriptions and aliases (boto3 only: the SDK has
no API for them). `UpdatePipelineVersion` sets them; an alias names one version at a time, so
moving it means removing it from the version that holds it first."""

from __future__ import annotations

from pipeline.deploy.clients import Aws
from pipeline.deploy.errors import DeployError
from pipeline.deploy.provenance import Provenance


def list_versions(aws: Aws, name: str) -> list[dict]:
    """Every version, newest first."""
    return aws.paginate("sagemaker", "list_pipeline_versions", "PipelineVersionSummaries",
                        f"pipeline {name}", PipelineName=name, SortOrder="Descending")


def latest_version(aws: Aws, name: str) -> int:
    page = aws.read("sagemaker", "list_pipeline_versions", f"pipeline {name}",
                    PipelineName=name, SortOrder="Descending", MaxResults=1)
    summaries = page.get("PipelineVersionSummaries", [])
    if not summaries:
        raise DeployError(f"ListPipelineVersions on pipeline {name}: no version returned")
    return int(summaries[0]["PipelineVersionId"])


def alias_holder(versions: list[dict], alias: str) -> int | None:
    for summary in versions:
        if alias in summary.get("PipelineVersionAliases", []):
            return int(summary["PipelineVersionId"])
    return None


def record(aws: Aws, name: str, arn: str, version: int | None, prov: Provenance | None,
           alias: str | None = None) -> int | None:
    """Set the display name/description (from `prov`) and/or move `alias` onto `version`
    (None: the newest version). Returns the version id, or None under --dry-run for a version
    that does not exist yet."""
    if version is None and not aws.dry_run:
        version = latest_version(aws, name)
    resource = f"pipeline {name} version {version if version is not None else '<new>'}"
    update: dict = {}
    if prov is not None:
        update.update(PipelineVersionDisplayName=prov.display_name(),
                      PipelineVersionDescription=prov.description())
    if alias:
        holder = alias_holder(list_versions(aws, name), alias)
        if holder is not None and holder == version:
            aws.echo(f"alias {alias} already points at version {version}")
        else:
            if holder is not None:
                aws.write("sagemaker", "update_pipeline_version", f"pipeline {name} version {holder}",
                          PipelineArn=arn, PipelineVersionId=holder,
                          PipelineVersionAliasOperations={"Remove": [alias]})
            update["PipelineVersionAliasOperations"] = {"Add": [alias]}
    if update:
        aws.write("sagemaker", "update_pipeline_version", resource, PipelineArn=arn,
                  PipelineVersionId=version if version is not None else "<new>", **update)
        if alias and "PipelineVersionAliasOperations" in update and not aws.dry_run:
            aws.echo(f"alias {alias} -> version {version}")
    return version


def show_versions(aws: Aws, name: str) -> None:
    """Print one line per version: id, created, display name, aliases, description."""
    versions = list_versions(aws, name)
    if not versions:
        aws.echo(f"pipeline {name} has no versions")
        return
    for v in versions:
        created = f"{v['CreationTime']:%Y-%m-%d %H:%M:%S}" if v.get("CreationTime") else "-"
        aliases = ",".join(v.get("PipelineVersionAliases", [])) or "-"
        aws.echo(f"{v['PipelineVersionId']:>4}  {created}  "
                 f"{v.get('PipelineVersionDisplayName') or '-'}  aliases: {aliases}  "
                 f"{v.get('PipelineVersionDescription') or ''}".rstrip())
