"""How configuration problems are reported: one line each, naming the file and the key path."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError


class ConfigError(Exception):
    """A configuration problem; its lines name the file and the key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))

    @classmethod
    def combine(cls, errors: list["ConfigError"]) -> "ConfigError":
        """Several files' problems as one error, each line still naming its own file."""
        if len(errors) == 1:
            return errors[0]
        combined = cls(" + ".join(e.source for e in errors), [p for e in errors for p in e.problems])
        combined.args = ("\n".join(str(e) for e in errors),)
        return combined


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


def _resolve(node: dict, defs: dict) -> list[dict]:
    """A schema node with its `$ref` followed and its unions flattened."""
    if "$ref" in node:
        return _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    out = [sub for key in ("anyOf", "oneOf", "allOf") for item in node.get(key, []) for sub in _resolve(item, defs)]
    return out or [node]


def keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys a mapping at `loc` may hold, from the model's JSON Schema (every union member's)."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    nodes = _resolve(schema, defs)
    for part in loc:
        found = []
        for node in nodes:
            if isinstance(part, int) and isinstance(node.get("items"), dict):
                found += _resolve(node["items"], defs)
            elif part in node.get("properties", {}):
                found += _resolve(node["properties"][part], defs)
            elif isinstance(node.get("additionalProperties"), dict):
                found += _resolve(node["additionalProperties"], defs)
        nodes = found or nodes  # a part that is no key (pydantic's name of a union member) is skipped
    return sorted({key for node in nodes for key in node.get("properties", {})})


def unknown_key(model: type[BaseModel] | None, loc: tuple) -> str:
    """`unknown key; did you mean macroshards?`, with the closest valid key when one is close."""
    known = keys_at(model, loc[:-1]) if model is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    return f"unknown key; the keys here are {', '.join(known)}" if known else "unknown key"


def validation_problems(err: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One line per error, `key.path: message`; a misspelt key gets the closest valid one."""
    return [f"{key_path(e['loc'])}: "
            + (unknown_key(model, e["loc"]) if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, "))
            for e in err.errors()]
