"""Which required files each artifact lacks, and how each can be repaired."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable

from steps.reconcile.production import Artifact

FIRST_N = 50


def missing_files(present: dict[str, set[str]], artifacts: dict[str, Artifact], required: Iterable[str],
                  copy_files: bool) -> dict[str, list[str]]:
    """artifact id -> what it lacks: required names (or globs) none of its files satisfies,
    and, when copying, the production files it should have received."""
    required = tuple(required)
    out = {}
    for aid in sorted(artifacts):
        names = present.get(aid, set())
        lacking = [r for r in required if not any(fnmatch.fnmatchcase(n, r) for n in names)]
        if copy_files:
            lacking += [n for n in sorted(artifacts[aid].files) if n not in names and n not in lacking]
        if lacking:
            out[aid] = lacking
    return out


@dataclass
class RepairPlan:
    recopy: dict[str, list[str]] = field(default_factory=dict)  # artifact -> production files
    regenerate: set[str] = field(default_factory=set)  # artifacts to run process_func on again
    unrepairable: dict[str, list[str]] = field(default_factory=dict)


def plan_repairs(missing: dict[str, list[str]], artifacts: dict[str, Artifact], copy_files: bool,
                 has_process: bool) -> RepairPlan:
    """A missing file production has is copied again; any other one is process_func's to make."""
    plan = RepairPlan()
    for aid, lacking in missing.items():
        art = artifacts[aid]
        for pattern in lacking:
            prod = sorted(n for n in art.all_files if n == pattern or fnmatch.fnmatchcase(n, pattern))
            if prod and copy_files:
                plan.recopy.setdefault(aid, []).extend(p for p in prod if p not in plan.recopy.get(aid, []))
            elif has_process:
                plan.regenerate.add(aid)
            else:
                plan.unrepairable.setdefault(aid, []).append(pattern)
    return plan


def failure_message(missing: dict[str, list[str]], path: str) -> str:
    first = list(missing.items())[:FIRST_N]
    lines = [f"  {aid}: {', '.join(names)}" for aid, names in first]
    more = f"\n  ... and {len(missing) - FIRST_N} more" if len(missing) > FIRST_N else ""
    return (f"{len(missing)} artifacts still miss required files after repair "
            f"(full list in {path}):\n" + "\n".join(lines) + more)
