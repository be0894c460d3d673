"""One YAML config file read as untrusted input: a size limit, then a pass over the parser's
events that bounds what aliases expand to and how deep the values nest, then the safe loader.

Why before loading: YAML aliases let a few hundred bytes stand for billions of values (the
"billion laughs": `b: [*a, *a, ...]` over `a: [...]`, nine levels deep), which PyYAML builds as
shared references but every consumer (pydantic, `copy.deepcopy`, JSON, the settings file) then
walks in full: 5.6 GB before this check. The events are counted with each anchor's expanded size
remembered, so the pass costs what the file's text costs, never what its aliases expand to.
A legitimate config holds a few hundred values; the limits are two orders of magnitude above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.config.errors import ConfigError

MAX_BYTES = 1024 * 1024  # a config is a few kB; 1 MiB leaves room for long queries and options
MAX_VALUES = 100_000  # scalars, mappings and sequences, with every alias expanded
MAX_DEPTH = 64  # nested mappings and sequences

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when present: ~10x faster


@dataclass
class _Node:
    """A mapping or sequence being read: where it is, and what it expands to so far."""

    path: str
    anchor: str | None
    mapping: bool
    start_values: int
    depth: int
    deepest: int = 0  # levels below this node, aliases expanded
    items: int = 0  # events read in it (a mapping alternates key, value)
    key: str = "?"


@dataclass
class _Count:
    values: int = 0
    anchors: dict[str, tuple[int, int]] = field(default_factory=dict)  # anchor -> (values, levels below)
    stack: list[_Node] = field(default_factory=list)


def _child_path(parent: _Node | None) -> str:
    if parent is None:
        return ""
    if parent.mapping:
        return f"{parent.path}.{parent.key}".lstrip(".") if parent.items % 2 else parent.path
    return f"{parent.path}[{parent.items}]"


def _named(path: str) -> str:
    """The key path a reader finds in the file: without the trailing list indexes."""
    while path.endswith("]"):
        path = path[:path.rfind("[")]
    return path or "<root>"


def _advance(parent: _Node | None, event) -> None:
    if parent is None:
        return
    if parent.mapping and parent.items % 2 == 0:
        parent.key = event.value if isinstance(event, yaml.ScalarEvent) else "?"
    parent.items += 1


def shape_problems(text: bytes | str) -> list[str]:
    """Aliases expanding past MAX_VALUES, nesting past MAX_DEPTH, recursive aliases: the first
    one found, as `key.path: problem` (an empty list otherwise; YAML syntax errors are left to the
    loader, which names the line)."""
    count = _Count()
    try:
        for event in yaml.parse(text, Loader=Loader):
            if problem := _step(count, event):
                return [problem]
    except yaml.YAMLError:
        return []
    return []


def _step(count: _Count, event) -> str | None:
    parent = count.stack[-1] if count.stack else None
    if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
        path = _child_path(parent)
        _advance(parent, event)
        node = _Node(path, event.anchor, isinstance(event, yaml.MappingStartEvent), count.values, len(count.stack) + 1)
        count.values += 1
        count.stack.append(node)
        if node.depth > MAX_DEPTH:
            return f"{_named(path)}: nested more than {MAX_DEPTH} levels deep (the limit of a config file)"
    elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
        node = count.stack.pop()
        if node.anchor:
            count.anchors[node.anchor] = (count.values - node.start_values, node.deepest)
        if count.stack:
            count.stack[-1].deepest = max(count.stack[-1].deepest, node.deepest + 1)
    elif isinstance(event, yaml.ScalarEvent):
        path = _child_path(parent)
        _advance(parent, event)
        count.values += 1
        if event.anchor:
            count.anchors[event.anchor] = (1, 0)
    elif isinstance(event, yaml.AliasEvent):
        path = _child_path(parent)
        _advance(parent, event)
        if any(node.anchor == event.anchor for node in count.stack):
            return f"{_named(path)}: alias *{event.anchor} refers to a value that contains it (recursive)"
        values, deepest = count.anchors.get(event.anchor, (1, 0))
        count.values += values
        depth = len(count.stack) + deepest
        if parent is not None:
            parent.deepest = max(parent.deepest, deepest + 1)
        if depth > MAX_DEPTH:
            return (f"{_named(path)}: alias *{event.anchor} nests the config more than {MAX_DEPTH} levels deep "
                    "(the limit of a config file)")
    else:
        return None
    if count.values > MAX_VALUES:
        return (f"{_named(path)}: aliases expand the config past {MAX_VALUES:,} values (the limit of a config "
                "file; a few nested aliases can stand for billions): write the values out, or use fewer aliases")
    return None


def read_yaml(path: Path) -> dict:
    """The mapping in one config file; ConfigError naming the file otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(str(path), [f"<root>: {size:,} bytes, more than the limit of {MAX_BYTES:,} bytes "
                                          "(1 MiB) for a config file"])
        with path.open("rb") as fh:
            text = fh.read(MAX_BYTES + 1)  # stat says nothing for a device or a pipe
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except OSError as err:
        raise ConfigError(str(path), [f"cannot read: {err.strerror or err}"]) from None
    if len(text) > MAX_BYTES:
        raise ConfigError(str(path), [f"<root>: more than the limit of {MAX_BYTES:,} bytes (1 MiB) for a config file"])
    if problems := shape_problems(text):
        raise ConfigError(str(path), problems)
    try:
        data = yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError as err:
        raise ConfigError(str(path), [f"not valid YAML: {err}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["<root>: expected a mapping"])
    return data
