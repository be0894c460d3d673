"""Function references in the config (`module:function`), checked before anything fans out.

Only `steps/` is shipped to the jobs (the code bundle). A reference into it is checked here by
finding the module and the function's definition in its source, without importing it (some
recipes import `datasets`, which takes seconds). A reference elsewhere can only work with an
image that installs it (`image.uri`); on the managed image it would fail in every job."""

from __future__ import annotations

import ast
import importlib.util
from pipeline.config.models import Config


def references(cfg: Config) -> dict[str, str]:
    """Key path -> `module:function`, for every function the config's stages will call."""
    refs = {}
    for stage in cfg.registry.enabled(cfg):
        section = stage.section_of(cfg)
        for name in stage.functions:
            if ref := getattr(section, name):
                refs[f"stages.{stage.name}.{name}"] = ref
    return refs


def defined_names(path: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.ImportFrom, ast.Import)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def problem(ref: str, own_image: bool) -> str | None:
    module, _, name = ref.partition(":")
    if module.split(".")[0] != "steps":
        if own_image:
            return None  # provided by the user's image: it cannot be seen from here
        return (f"{ref!r} is not in the code bundle (only steps/ is shipped) and the managed image does "
                "not have it: put the module under steps/, or set image.uri to an image that installs it")
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return f"{ref!r}: no module {module!r} under steps/"
    if name not in defined_names(spec.origin):
        return f"{ref!r}: module {module!r} defines no {name!r}"
    return None


def function_problems(cfg: Config) -> list[str]:
    own_image = bool(cfg.image.uri)
    return [f"{key}: {msg}" for key, ref in references(cfg).items() if (msg := problem(ref, own_image))]
