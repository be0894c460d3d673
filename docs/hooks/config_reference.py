"""MkDocs hook: the configuration reference, generated at build time from the config's own JSON
Schema (`pipeline.config.json_schema`, the models of `pipeline/config/models.py` joined with each
stage's settings through the stage registry: the same schema `deploy.py schema` writes to
config/schema.json). One table per section (key path under the section, type, default,
description); nested models are flattened into dotted key paths, list items into `key[]`.

docs/configuration.md holds the prose and the marker below, which this hook replaces. Nothing
here describes a key by hand: a key without a description in its model shows an empty cell.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

MARKER = "<!-- config-reference -->"
PAGE = "configuration.md"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"docs/{PAGE} has no {MARKER} line for the generated configuration reference")
    from pipeline.config import json_schema

    return markdown.replace(MARKER, reference(json_schema()))


def reference(schema: dict) -> str:
    """Markdown: one `###` section per top-level key (per stage under `stages`), each a table."""
    defs = schema.get("$defs", {})
    out = []
    for path, node, default in sections(schema, defs):
        model = resolve(node, defs)
        out.append(f"### `{path}`\n")
        if model.get("description"):
            out.append(cell(model["description"]) + "\n")
        rows = list(fields(model, path, defs, default))
        if rows:
            out.append("| key | type | default | description |\n|---|---|---|---|")
            out.extend(f"| `{relative(key, path)}` | {kind} | {dflt} | {desc} |" for key, kind, dflt, desc in rows)
        out.append("")
    return "\n".join(out)


def sections(schema: dict, defs: dict) -> Iterator[tuple[str, dict, Any]]:
    """(key, schema, default) of each section: every top-level key, each stage apart."""
    loose = {}
    for key, node in schema.get("properties", {}).items():
        if key == "stages":
            for stage, stage_node in resolve(node, defs).get("properties", {}).items():
                yield f"stages.{stage}", object_of(stage_node, defs), None
        elif object_of(node, defs) is not None:
            yield key + ("[]" if in_list(node, defs) else ""), object_of(node, defs), node.get("default")
        else:
            loose[key] = node
    if loose:
        yield "top level", {"properties": loose, "required": schema.get("required", [])}, None


def relative(key: str, section: str) -> str:
    """`stages.featurize.stream.threads` under `stages.featurize`: `stream.threads`."""
    return key.removeprefix(section).lstrip(".") if section != "top level" else key


def fields(model: dict, path: str, defs: dict, default: Any) -> Iterator[tuple[str, str, str, str]]:
    """Rows for every key of `model`, nested models flattened under their key."""
    required = set(model.get("required", []))
    for key, node in model.get("properties", {}).items():
        key_path = key if path == "top level" else f"{path}.{key}"
        inherited = default.get(key, MISSING) if isinstance(default, dict) else MISSING
        nested = object_of(node, defs)
        if nested is not None and is_plain_object(node, defs):
            yield from fields(nested, key_path, defs, node.get("default", inherited))
            continue
        value = "required" if key in required else show_default(node.get("default", inherited))
        yield key_path, cell(type_of(node, defs)), value, cell(node.get("description", ""))
        if nested is not None:  # a model inside a list, a mapping or a choice: its keys below it
            yield from fields(nested, key_path + ("[]" if in_list(node, defs) else ""), defs, MISSING)


MISSING = object()


def resolve(node: dict, defs: dict) -> dict:
    while "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def object_of(node: dict, defs: dict) -> dict | None:
    """The model (object schema with properties) this key holds, directly or in a list/choice."""
    node = resolve(node, defs)
    if "properties" in node:
        return node
    for part in node.get("anyOf", []) + ([node["items"]] if isinstance(node.get("items"), dict) else []):
        found = object_of(part, defs)
        if found is not None:
            return found
    return None


def in_list(node: dict, defs: dict) -> bool:
    """The model is reached as a list's items (`schedules[]`, `prefixes[]`)."""
    node = resolve(node, defs)
    return node.get("type") == "array" or any(in_list(part, defs) for part in node.get("anyOf", []))


def is_plain_object(node: dict, defs: dict) -> bool:
    """A nested model (possibly optional), not a list of models or a choice of a value or a model."""
    parts = [p for p in resolve(node, defs).get("anyOf", []) if p.get("type") != "null"]
    return "properties" in resolve(node, defs) or (len(parts) == 1 and "properties" in resolve(parts[0], defs))


def type_of(node: dict, defs: dict) -> str:
    node = resolve(node, defs)
    if "anyOf" in node:
        return " or ".join(dict.fromkeys(type_of(part, defs) for part in node["anyOf"]))
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "any")
    if "properties" in node:
        return "mapping (keys below)"
    if kind == "array":
        return f"list of {type_of(node.get('items', {}), defs)}"
    if kind == "object":
        values = node.get("additionalProperties")
        return f"mapping of string to {type_of(values, defs)}" if isinstance(values, dict) else "mapping"
    return kind + bounds(node)


def bounds(node: dict) -> str:
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    strict = ("exclusiveMinimum" in node, "exclusiveMaximum" in node)
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if strict[0] else '≥'} {low}"
    if low is None:
        return f" {'<' if strict[1] else '≤'} {high}"
    return f" {low} to {high}"


def show_default(value: Any) -> str:
    if value is MISSING:
        return ""
    if value is None:
        return "empty"
    if isinstance(value, (dict, list)) and not value:
        return "`{}`" if isinstance(value, dict) else "`[]`"
    return cell(f"`{json.dumps(value)}`")


def cell(text: str) -> str:
    """One table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")
