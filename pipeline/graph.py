"""The DAG as a Mermaid diagram, drawn from the definition itself."""

from __future__ import annotations

from pipeline.validate import step_dependencies


def mermaid(definition: dict) -> str:
    lines = ["flowchart LR"]
    ids = {s["Name"]: f"s{i}" for i, s in enumerate(definition["Steps"])}
    for step in definition["Steps"]:
        lines.append(f'    {ids[step["Name"]]}["{step["Name"]}"]')
    for step in definition["Steps"]:
        conditions = {d["Step"]: d["Trigger"] for d in step.get("DependsOn", []) if isinstance(d, dict)}
        for dep in sorted(step_dependencies(step)):
            arrow = f"-- {conditions[dep].lower()} -->" if dep in conditions else "-->"
            lines.append(f"    {ids[dep]} {arrow} {ids[step['Name']]}")
    return "\n".join(lines) + "\n"
