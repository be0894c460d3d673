"""EventBridge Scheduler schedules that start the pipeline, kept equal to `cfg.schedules`.

Ownership: the schedules of a pipeline live in a schedule group named after it (the pipeline
name, or for names over 64 characters a shortened name plus a hash). Everything in that group
is ours: `schedule` creates, updates and deletes there, `delete` empties and removes it.
Schedules elsewhere that start this pipeline (e.g. made by the SDK's `put_triggers` in the
default group) are reported by `schedule` and deleted by `delete`, so none is left orphaned.

The Scheduler API is used directly because it takes per-schedule `SageMakerPipelineParameters`;
the SDK's `put_triggers` sends none. A schedule starts the pipeline's latest version (the
target is the pipeline ARN, which takes no version or alias).
"""

from __future__ import annotations

import hashlib

from pipeline.config import Config, Schedule
from pipeline.deploy import pipelines
from pipeline.deploy.clients import Aws
from pipeline.deploy.provenance import TAG_PREFIX
from pipeline.deploy.roles import SAGEMAKER, SCHEDULER, check_trust

GROUP_MAX = 64
COMPARED = ("ScheduleExpression", "ScheduleExpressionTimezone", "State", "Description", "FlexibleTimeWindow")


def group_name(pipeline: str) -> str:
    if len(pipeline) <= GROUP_MAX:
        return pipeline
    return f"{pipeline[:GROUP_MAX - 17]}-{hashlib.sha256(pipeline.encode()).hexdigest()[:16]}"


def param_value(value) -> str:
    """Pipeline parameters are text; booleans as the pipeline's `true`/`false`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def desired(cfg: Config, schedule: Schedule, pipeline_arn: str) -> dict:
    """The CreateSchedule/UpdateSchedule request for one configured schedule."""
    # Always sent, empty when the schedule sets none: the SDK's put_triggers does the same, and
    # EventBridge Scheduler reads it to tell a SageMaker pipeline target from a universal one.
    target = {"Arn": pipeline_arn, "RoleArn": cfg.aws.role_arn,
              "SageMakerPipelineParameters": {"PipelineParameterList": [
                  {"Name": k, "Value": param_value(v)} for k, v in sorted(schedule.parameters.items())]}}
    return {
        "Name": schedule.name,
        "GroupName": group_name(cfg.pipeline.name),
        "ScheduleExpression": schedule.expression,
        "ScheduleExpressionTimezone": schedule.timezone,
        "State": "ENABLED" if schedule.enabled else "DISABLED",
        "Description": schedule.description,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": target,
    }


def _comparable(schedule: dict) -> dict:
    target = schedule.get("Target", {})
    params = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
    out = {k: schedule.get(k) or None for k in COMPARED}
    out.update(target=(target.get("Arn"), target.get("RoleArn")),
               parameters=sorted((p["Name"], p["Value"]) for p in params))
    return out


def changed_fields(current: dict, wanted: dict) -> list[str]:
    have, want = _comparable(current), _comparable(wanted)
    return [k for k in want if have.get(k) != want[k]]


def _summary(request: dict) -> str:
    params = request["Target"].get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
    values = ", ".join(f"{p['Name']}={p['Value']}" for p in params) or "defaults"
    return f"{request['ScheduleExpression']} {request['ScheduleExpressionTimezone']}, {request['State']}, {values}"


def _group_schedules(aws: Aws, group: str) -> list[dict]:
    return aws.paginate("scheduler", "list_schedules", "Schedules", f"schedule group {group}", GroupName=group)


def _targeting(aws: Aws, pipeline_arn: str) -> list[dict]:
    """Schedules in any group whose target is this pipeline."""
    every = aws.paginate("scheduler", "list_schedules", "Schedules", "schedules")
    return [s for s in every if s.get("Target", {}).get("Arn") == pipeline_arn]


def ensure_group(aws: Aws, cfg: Config) -> None:
    group = group_name(cfg.pipeline.name)
    if aws.read("scheduler", "get_schedule_group", f"schedule group {group}", missing_ok=True, Name=group):
        return
    aws.write("scheduler", "create_schedule_group", f"schedule group {group}", Name=group,
              Tags=[{"Key": f"{TAG_PREFIX}pipeline", "Value": cfg.pipeline.name}])
    aws.echo(f"{aws.did('create', 'created')} schedule group {group}")


def sync(aws: Aws, cfg: Config) -> dict[str, int]:
    """Make the pipeline's schedule group hold exactly the configured schedules.

    The role's trust and the schedules' parameter names are checked before any change."""
    check_trust(aws, cfg.aws.role_arn, (SCHEDULER, SAGEMAKER))
    pipeline_arn = pipelines.pipeline_arn(aws, cfg.pipeline.name)
    group = group_name(cfg.pipeline.name)
    ensure_group(aws, cfg)
    existing = {s["Name"] for s in _group_schedules(aws, group)}
    wanted = {s.name: desired(cfg, s, pipeline_arn) for s in cfg.schedules}
    counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
    for name, request in wanted.items():
        resource = f"schedule {group}/{name}"
        if name not in existing:
            aws.write("scheduler", "create_schedule", resource, **request)
            aws.echo(f"{aws.did('create', 'created')} schedule {name} ({_summary(request)})")
            counts["created"] += 1
            continue
        current = aws.read("scheduler", "get_schedule", resource, Name=name, GroupName=group)
        fields = changed_fields(current, request)
        if not fields:
            counts["unchanged"] += 1
            aws.echo(f"unchanged schedule {name}")
            continue
        aws.write("scheduler", "update_schedule", resource, **request)
        aws.echo(f"{aws.did('update', 'updated')} schedule {name}: {', '.join(fields)} changed ({_summary(request)})")
        counts["updated"] += 1
    for name in sorted(existing - set(wanted)):
        aws.write("scheduler", "delete_schedule", f"schedule {group}/{name}", Name=name, GroupName=group)
        aws.echo(f"{aws.did('delete', 'deleted')} schedule {name} (no longer in the config)")
        counts["deleted"] += 1
    for other in _targeting(aws, pipeline_arn):
        if other.get("GroupName") != group:
            aws.echo(f"note: schedule {other.get('GroupName')}/{other['Name']} also starts this pipeline "
                     "and is not managed here (`deploy.py delete` removes it)")
    return counts


def delete_all(aws: Aws, cfg: Config, pipeline_arn: str | None) -> int:
    """Delete every schedule of the pipeline (its group's and any other targeting it) and the group."""
    group = group_name(cfg.pipeline.name)
    has_group = aws.read("scheduler", "get_schedule_group", f"schedule group {group}", missing_ok=True, Name=group)
    doomed = {(group, s["Name"]) for s in _group_schedules(aws, group)} if has_group else set()
    if pipeline_arn:
        doomed |= {(s.get("GroupName") or "default", s["Name"]) for s in _targeting(aws, pipeline_arn)}
    for schedule_group, name in sorted(doomed):
        aws.write("scheduler", "delete_schedule", f"schedule {schedule_group}/{name}", Name=name,
                  GroupName=schedule_group)
        aws.echo(f"{aws.did('delete', 'deleted')} schedule {schedule_group}/{name}")
    if has_group:
        aws.write("scheduler", "delete_schedule_group", f"schedule group {group}", Name=group)
        aws.echo(f"{aws.did('delete', 'deleted')} schedule group {group}")
    return len(doomed)
