"""`wavepipe init DIR`: a new project whose pipeline calls its own functions.

Written from `pipeline/project/template/`: `wavepipe.yaml` (the example pipeline, commented,
pointing at the project's package through `code.paths`), the package (a feature function, a
`process_func`, `get_dataset_features`, `encode_data` and the labels query, each built on the
built-ins), a test of each, a README with the commands, and a pytest setting. In the template,
`package/` is the package folder, `gitignore` is `.gitignore`, and a `.tmpl` file has
`{{package}}`, `{{name}}` and `{{bucket}}` filled in (the package's own modules need no
placeholder, so they stay real, importable Python).
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "template"
# `wavepipe init DIR --raw FOLDER`: a config over a folder of WFDB records without labels
# (Featurize + Combine), a README and a .gitignore; `{{input}}` is the folder, relative to DIR
# when it is inside it, and `{{input_quoted}}` the same escaped for a YAML double-quoted string
# (a folder's name may hold `#` or `: `, which a plain YAML value would cut or refuse).
RAW_TEMPLATE = Path(__file__).resolve().parent / "raw"
CONFIG_FILE = "wavepipe.yaml"
RENAMES = {"gitignore": ".gitignore"}


class InitError(ValueError):
    """The project cannot be written as asked (exit code 2)."""


@dataclass(frozen=True)
class Project:
    root: Path
    package: str
    name: str
    files: tuple[Path, ...]

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE


def default_package(root: Path) -> str:
    """`my-waves` -> `my_waves`: the folder's name as a Python package name."""
    name = re.sub(r"\W+", "_", root.resolve().name.lower()).strip("_") or "pipeline_functions"
    name = name if not name[0].isdigit() else f"p_{name}"
    return f"{name}_functions" if keyword.iskeyword(name) or name in ("steps", "pipeline", "tests") else name


def pipeline_name(package: str) -> str:
    """A SageMaker pipeline name (letters, digits, single hyphens) from the package name."""
    return re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]", "-", package)).strip("-")[:200] or "wavepipe"


def _check_package(package: str) -> None:
    if not package.isidentifier() or keyword.iskeyword(package) or package != package.lower():
        raise InitError(f"--package {package!r}: use a lower-case Python identifier, e.g. my_waves")
    if package in ("steps", "pipeline", "tests"):
        raise InitError(f"--package {package!r}: that name is taken (wavepipe's own packages, or the tests folder)")


def _target(rel: Path, package: str) -> Path:
    parts = [package if part == "package" and i == 0 else RENAMES.get(part, part) for i, part in enumerate(rel.parts)]
    out = Path(*parts)
    return out.with_suffix("") if out.suffix == ".tmpl" else out


def _raw_input(root: Path, raw: str | Path) -> str:
    folder = Path(raw).expanduser().resolve()
    if not folder.is_dir():
        raise InitError(f"--raw {raw}: not a folder (give the folder holding your WFDB records)")
    if not any(folder.rglob("*.hea")):
        raise InitError(f"--raw {raw}: no WFDB header (*.hea) under {folder}")
    try:
        return folder.relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        return str(folder)


def init_project(root: str | Path, package: str | None = None, force: bool = False,
                 raw: str | Path | None = None) -> Project:
    """Write the project into `root` (created); InitError when it already has a wavepipe.yaml or
    any file it would write (unless `force`), or when `package` is not a usable name. With
    `raw` (a folder of WFDB records), a Featurize + Combine project over it, with no package."""
    root = Path(root)
    package = package or default_package(root)
    _check_package(package)
    name = pipeline_name(package)
    values = {"{{package}}": package, "{{name}}": name, "{{bucket}}": f"{name.lower()}-data"[:63].strip("-")}
    template = TEMPLATE if raw is None else RAW_TEMPLATE
    if raw is not None:
        values["{{input}}"] = _raw_input(root, raw)
        values["{{input_quoted}}"] = json.dumps(values["{{input}}"], ensure_ascii=False)[1:-1]
    sources = sorted(p for p in template.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    plan = {root / _target(src.relative_to(template), package): src for src in sources}
    existing = sorted(str(p) for p in plan if p.exists())
    if existing and not force:
        raise InitError(f"{root}: would overwrite {', '.join(existing)} (use --force)")
    for dst, src in plan.items():
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".tmpl":
            text = src.read_text(encoding="utf-8")
            for placeholder, value in values.items():
                text = text.replace(placeholder, value)
            dst.write_text(text, encoding="utf-8")
        else:
            dst.write_bytes(src.read_bytes())
    return Project(root=root, package=package, name=name, files=tuple(sorted(plan)))
