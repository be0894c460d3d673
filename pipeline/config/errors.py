"""How configuration problems are reported: one line each, naming the file and the key path."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """A configuration problem; its lines name the file and the key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def key_path(loc: tuple) -> str:
    """pydantic's error location as a YAML key path: `stages.featurize.prefixes[3].prefix`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-") or str(part) in ("literal", "str", "int", "none"):
            continue  # pydantic's names for validators and union members, not YAML keys
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def validation_problems(err: ValidationError) -> list[str]:
    return [f"{key_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()]
