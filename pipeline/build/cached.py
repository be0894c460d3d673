"""The definition of a config, cached under the content digest of everything it is built from,
so `validate`, `definition` and `graph` answer without importing the SageMaker SDK (3 s) when
neither the config nor the code changed since the last build.

The key is the digest of: the validated config (every key, with paths resolved and query files
read in), the builder and container code (`pipeline/`, `steps/`, `pyproject.toml`, `uv.lock` of
the install these commands run from), the user's code (`code.paths`, the files the bundle ships),
and the versions of Python and of the packages that write the definition (the SageMaker SDK and
its parts, botocore, pydantic). A miss builds as before and stores the result; a stored entry is
checked against its own digest when read, so a damaged one is a miss, never a wrong answer.
Configs validated with another stage registry than the default (tests' toy stages) are never
cached. `WAVEPIPE_NO_DEFINITION_CACHE=1` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

from pipeline.config import Config

ROOT = Path(__file__).resolve().parents[2]
CODE = ("pipeline", "steps")
FILES = ("pyproject.toml", "uv.lock")
PACKAGES = ("sagemaker", "sagemaker-core", "sagemaker-mlops", "sagemaker-train", "sagemaker-serve", "botocore",
            "boto3", "pydantic")
SKIP_PARTS = {"__pycache__", ".pytest_cache"}


def cache_dir() -> Path:
    root = os.environ.get("WAVEPIPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wavepipe")
    return Path(root) / "definitions"


def _tree(digest, root: Path, label: str) -> None:
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()
                                                  and not SKIP_PARTS.intersection(p.parts) and p.suffix != ".pyc")
    for path in paths:
        data = path.read_bytes()
        digest.update(f"{label}/{path.relative_to(root) if path != root else path.name}\0{len(data)}\0".encode())
        digest.update(data)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def definition_key(cfg: Config) -> str:
    """The digest of everything the definition of `cfg` is built from."""
    digest = hashlib.sha256(b"wavepipe definition cache 1\0")
    digest.update(cfg.model_dump_json().encode())
    for folder in CODE:
        _tree(digest, ROOT / folder, folder)
    for name in FILES:
        if (ROOT / name).is_file():
            _tree(digest, ROOT / name, "root")
    for i, value in enumerate(cfg.code.paths):
        if Path(value).exists():
            _tree(digest, Path(value), f"user{i}")
    versions = {name: _version(name) for name in PACKAGES}
    versions["python"] = sys.version
    digest.update(json.dumps(versions, sort_keys=True).encode())
    return digest.hexdigest()


def _default_registry(cfg: Config) -> bool:
    from pipeline.stages import default_registry

    return cfg.registry.stages == default_registry().stages  # the same Stage objects


def cached_definition(cfg: Config) -> str:
    """The definition JSON of `cfg`, as `build(cfg).definition` gives it."""
    if os.environ.get("WAVEPIPE_NO_DEFINITION_CACHE") or not _default_registry(cfg):
        return _build(cfg)
    key = definition_key(cfg)
    path = cache_dir() / f"{key}.json"
    try:
        stored = json.loads(path.read_text())
        if stored["key"] == key and hashlib.sha256(stored["definition"].encode()).hexdigest() == stored["sha256"]:
            return stored["definition"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or damaged: build
    definition = _build(cfg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "sha256": hashlib.sha256(definition.encode()).hexdigest(),
                                   "definition": definition}))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: every run builds
    return definition


def cached_problems(cfg: Config, definition: str, check) -> list[str]:
    """`check(definition)` (validate's offline checks: botocore's request shapes, 0.8 s to load),
    kept beside the cached definition under the same key and the definition's own digest."""
    if os.environ.get("WAVEPIPE_NO_DEFINITION_CACHE") or not _default_registry(cfg):
        return check(definition)
    key = hashlib.sha256(f"{definition_key(cfg)}\0{definition}".encode()).hexdigest()
    path = cache_dir() / f"{key}.problems.json"
    try:
        stored = json.loads(path.read_text())
        if stored["key"] == key and isinstance(stored["problems"], list):
            return stored["problems"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    problems = check(definition)
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "problems": problems}))
        os.replace(tmp, path)
    except OSError:
        pass
    return problems


def _build(cfg: Config) -> str:
    from pipeline.build.compose import build

    return build(cfg).definition
