"""Function references in the config (`module:function`), checked before anything fans out.

The code bundle ships `steps/` and the user's `code.paths`. A reference into either is checked
here by finding the module's source file and the function's definition in it, without importing
anything: some recipes import `datasets`, which takes seconds, and user code is never run by the
builder (it may need packages only the jobs have, or do work on import). A reference elsewhere can
only work with an image that installs it (`image.uri`); on the managed image it would fail in
every job."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from pipeline.build.bundle import module_name
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


def defined_names(path: str | Path) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.ImportFrom, ast.Import)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def user_roots(cfg: Config) -> dict[str, Path]:
    """Import name -> folder or file, for every `code.paths` entry."""
    return {module_name(Path(p)): Path(p) for p in cfg.code.paths}


def user_module_candidates(module: str, root: Path) -> list[Path]:
    """The files that would define `module` in a shipped folder or file, in import order."""
    parts = module.split(".")[1:]
    if root.is_file():
        return [root] if not parts else []
    base = root.joinpath(*parts)
    return [base / "__init__.py"] if not parts else [base.with_suffix(".py"), base / "__init__.py"]


def _user_problem(ref: str, module: str, name: str, root: Path) -> str | None:
    candidates = user_module_candidates(module, root)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        looked = " or ".join(str(p) for p in candidates) or f"{root} (a single-file module has no submodules)"
        return f"{ref!r}: no module {module!r} in code.paths (looked for {looked})"
    try:
        names = defined_names(found)
    except SyntaxError as err:
        return f"{ref!r}: {found} does not parse: {err.msg} (line {err.lineno})"
    if name not in names:
        return f"{ref!r}: {found} defines no {name!r}"
    return None


def problem(ref: str, own_image: bool, roots: dict[str, Path] | None = None) -> str | None:
    module, _, name = ref.partition(":")
    top = module.split(".")[0]
    if roots and top in roots:
        return _user_problem(ref, module, name, roots[top])
    if top != "steps":
        if own_image:
            return None  # provided by the user's image: it cannot be seen from here
        return (f"{ref!r} is not in the code bundle (only steps/ and code.paths are shipped) and the managed image "
                "does not have it: add its folder to code.paths, or set image.uri to an image that installs it")
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
    own_image, roots = bool(cfg.image.uri), user_roots(cfg)
    return [f"{key}: {msg}" for key, ref in references(cfg).items() if (msg := problem(ref, own_image, roots))]
