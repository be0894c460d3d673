"""The container code as one content-addressed bundle.

FrameworkProcessor uploads `source_dir` to a timestamped key, so every definition differs and
caching never hits. Instead the builder packs `steps/` itself, reproducibly (sorted entries,
fixed mtimes and owners, gzip without a timestamp), names it by its SHA-256 and ships it with
the stage settings files. Same code and config, same URIs, same definition.

The user's own code (`code.paths`) goes into the same bundle, under `user/<name>/` (each listed
folder or .py file at the import root under its own name), with `code.requirements` as the plain
file `user/requirements.txt`; so the hash, and with it every step's code URI and Featurize's
key, changes exactly when a shipped file changes. Only what is listed is shipped: a project's
README or tests beside the package are not, and editing them changes nothing. Hidden files and
folders (`.git`, `.wavepipe`), `__pycache__` and compiled files are never shipped.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import steps
from steps.contract import USER_CODE_DIR, USER_REQUIREMENTS
from steps.settings_file import settings_document

STEPS_DIR = Path(steps.__file__).resolve().parent
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class Assets:
    """Files the definition refers to, by S3 URI: uploaded by `upsert`, staged by `local`."""

    code_uri: str
    code_hash: str
    files: dict[str, bytes] = field(default_factory=dict)
    # sha256 of bundle.tar.gz: the jobs check the staged bundle against it (steps/bootstrap.py).
    bundle_sha256: str = ""
    # Name in the bundle -> SHA-256 of its content: keys that depend on part of the code
    # (the record cache's: steps/featurize/ and the feature modules) hash only that part.
    members: dict[str, str] = field(default_factory=dict)

    def members_digest(self, prefixes: list[str]) -> str:
        """SHA-256 of the bundle members whose names start with one of `prefixes` (names and contents)."""
        chosen = {name: digest for name, digest in self.members.items() if name.startswith(tuple(prefixes))}
        return sha256(canonical_json(chosen))

    def settings_uri(self, stage: str) -> str:
        return next(u.rsplit("/", 1)[0] + "/" for u in self.files if u.endswith(f"/{stage}.json"))


def _shipped(rel: Path) -> bool:
    return not (SKIP_DIRS & set(rel.parts) or rel.suffix in SKIP_SUFFIXES
                or any(part.startswith(".") for part in rel.parts))


def _tree(root: Path, name: str) -> list[tuple[str, Path]]:
    """(name in the bundle, file) of every shipped file under `root`, sorted."""
    if root.is_file():
        return [(name, root)]
    return [(f"{name}/{path.relative_to(root).as_posix()}", path) for path in sorted(root.rglob("*"))
            if path.is_file() and _shipped(path.relative_to(root))]


def module_name(path: Path) -> str:
    """The import name a `code.paths` entry ships under: a folder's name, a .py file's stem."""
    return path.stem if path.is_file() else path.name


def code_path_problems(paths: list[str]) -> list[str]:
    """Each `code.paths` entry must exist and be a package folder or a .py file, under its own,
    unique import name (not `steps`, which would shadow the stages)."""
    problems, seen = [], {}
    for index, value in enumerate(paths):
        key, path = f"code.paths[{index}]", Path(value)
        if not path.exists():
            problems.append(f"{key}: {path}: no such file or folder")
            continue
        if path.is_file() and path.suffix != ".py":
            problems.append(f"{key}: {path}: list a package folder or a .py file (data files go inside a package)")
            continue
        name = module_name(path)
        if not name.isidentifier():
            problems.append(f"{key}: {path}: {name!r} is not an importable name")
        elif name == "steps":
            problems.append(f"{key}: {path}: `steps` is the stages' own package; rename yours")
        elif name in seen:
            problems.append(f"{key}: {path}: ships as {name!r} like code.paths[{seen[name]}]")
        seen.setdefault(name, index)
    return problems


def user_files(paths: list[str], requirements: list[str] = ()) -> dict[str, bytes]:
    """Name in the bundle -> content of the user's code (`code.paths`) and requirements."""
    files = {f"{USER_CODE_DIR}/{rel}": path.read_bytes()
             for value in paths for rel, path in _tree(Path(value), Path(value).name)}
    if requirements:
        files[USER_REQUIREMENTS] = "".join(f"{r.strip()}\n" for r in requirements).encode()
    return files


def bundle_entries(extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Name in the bundle -> content: every shipped file of `steps/`, plus `extra`."""
    entries = {name: path.read_bytes() for name, path in _tree(STEPS_DIR, "steps")}
    entries.update(extra or {})
    return entries


def pack_steps(extra: dict[str, bytes] | None = None, entries: dict[str, bytes] | None = None) -> bytes:
    """A byte-identical tar.gz of `steps/` (plus `extra`: name -> content) for identical sources."""
    entries = bundle_entries(extra) if entries is None else entries
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(entries.items()):
            info = tarfile.TarInfo(name=name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()


def build_assets(base_uri: str, stage_settings: dict[str, dict], user_code: dict[str, bytes] | None = None) -> Assets:
    """Code bundle (steps/ + `user_code`, see `user_files`) + bootstrap under `<base>/code/<hash>/`,
    each stage's settings under `<base>/settings/<stage>-<hash>/<stage>.json` (its own hash:
    changing one stage's settings leaves the other steps' cache keys alone)."""
    entries = bundle_entries(user_code)
    bundle = pack_steps(entries=entries)
    bootstrap = (STEPS_DIR / "bootstrap.py").read_bytes()
    code_hash = sha256(bundle + bootstrap)[:16]
    code_uri = f"{base_uri}/code/{code_hash}/"
    files = {code_uri + "bundle.tar.gz": bundle, code_uri + "bootstrap.py": bootstrap}
    for stage, settings in sorted(stage_settings.items()):
        body = canonical_json(settings_document(stage, settings))
        files[f"{base_uri}/settings/{stage}-{sha256(body)[:16]}/{stage}.json"] = body
    return Assets(code_uri=code_uri, code_hash=code_hash, files=files, bundle_sha256=sha256(bundle),
                  members={name: sha256(data) for name, data in sorted(entries.items())})
