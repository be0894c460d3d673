"""The DAG as a Mermaid diagram, drawn from the definition itself."""

from __future__ import annotations

from pipeline.definition.model import COMPLETED, upstream


def mermaid(definition: dict) -> str:
    lines = ["flowchart LR"]
    ids = {s["Name"]: f"s{i}" for i, s in enumerate(definition["Steps"])}
    for step in definition["Steps"]:
        lines.append(f'    {ids[step["Name"]]}["{step["Name"]}"]')
    for step in definition["Steps"]:
        for dep, trigger in sorted(upstream(step).items()):
            # Only a run condition other than the default is worth a label (e.g. Any).
            arrow = f"-- {trigger.lower()} -->" if trigger != COMPLETED else "-->"
            lines.append(f"    {ids[dep]} {arrow} {ids[step['Name']]}")
    return "\n".join(lines) + "\n"
