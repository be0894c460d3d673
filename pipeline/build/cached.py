"""The definition of a config, cached under the content digest of everything it is built from,
so `validate`, `definition`, `graph` and `plan` answer without importing the SageMaker SDK (3 s)
or packing the code bundle when neither the config nor the code changed since the last build.

An entry holds what those commands read of a build: the definition JSON and the stage settings
files it names (`plan` predicts the source step and Featurize from them); not the code bundle,
which only `local` and `upsert` ship, and which they build themselves (`local` stores what it
built, so a `plan` after a run is a hit). What `plan` reads from storage (the input's listing,
the labels, the caches) is never cached: a plan is never stale.

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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Config

if TYPE_CHECKING:  # the builder imports the SageMaker SDK: a hit never does
    from pipeline.build.compose import Built

ROOT = Path(__file__).resolve().parents[2]
CODE = ("pipeline", "steps")
FILES = ("pyproject.toml", "uv.lock")
PACKAGES = ("sagemaker", "sagemaker-core", "sagemaker-mlops", "sagemaker-train", "sagemaker-serve", "botocore",
            "boto3", "pydantic")
SKIP_PARTS = {"__pycache__", ".pytest_cache"}


def cache_root() -> Path:
    """This machine's wavepipe cache (definitions, wheelhouses, the sample dataset)."""
    return Path(os.environ.get("WAVEPIPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wavepipe"))


def cache_dir() -> Path:
    return cache_root() / "definitions"


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
    digest = hashlib.sha256(b"wavepipe definition cache 2\0")  # 2: entries hold the settings files
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


@dataclass(frozen=True)
class CachedBuild:
    """What the offline commands and `plan` read of `build(cfg)`: its definition JSON and the
    settings files (URI -> body, as `Assets.files` holds them) the definition's steps name."""

    definition: str
    settings: dict[str, bytes]

    def stage_settings(self, stage: str) -> bytes:
        """The body of `stage`'s settings file (`<base>/settings/<stage>-<hash>/<stage>.json`)."""
        return next(body for uri, body in self.settings.items() if uri.endswith(f"/{stage}.json"))

    def digest(self) -> str:
        """SHA-256 of the whole entry, stored beside it: a damaged entry is a miss."""
        body = json.dumps([self.definition, {uri: b.decode() for uri, b in self.settings.items()}], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


def of_build(built: Built) -> CachedBuild:
    """The part of a full build that the cache keeps: everything but the code bundle's files."""
    code = built.assets.code_uri
    return CachedBuild(built.definition, {uri: body for uri, body in built.assets.files.items()
                                          if not uri.startswith(code)})


def _cacheable(cfg: Config) -> bool:
    return not os.environ.get("WAVEPIPE_NO_DEFINITION_CACHE") and _default_registry(cfg)


def _entry(key: str) -> Path:
    return cache_dir() / f"{key}.json"


def _read(key: str) -> CachedBuild | None:
    try:
        stored = json.loads(_entry(key).read_text())
        found = CachedBuild(stored["definition"], {uri: body.encode() for uri, body in stored["settings"].items()})
        if stored["key"] == key and found.digest() == stored["sha256"]:
            return found
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # absent, damaged, or written by an older wavepipe: build
    return None


def _store(key: str, found: CachedBuild) -> None:
    path = _entry(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "sha256": found.digest(), "definition": found.definition,
                                   "settings": {uri: body.decode() for uri, body in found.settings.items()}}))
        os.replace(tmp, path)  # whole or not at all: a reader never sees half an entry
    except OSError:
        pass  # a read-only cache: every run builds


def cached_build(cfg: Config) -> CachedBuild:
    """The definition and settings files of `cfg`, as `build(cfg)` gives them: stored, or built."""
    if not _cacheable(cfg):
        return _build(cfg)
    key = definition_key(cfg)
    found = _read(key)
    if found is None:
        found = _build(cfg)
        _store(key, found)
    return found


def cached_definition(cfg: Config) -> str:
    """The definition JSON of `cfg`, as `build(cfg).definition` gives it."""
    return cached_build(cfg).definition


def remember(cfg: Config, built: Built) -> None:
    """Keep what a full build (`local`'s) gives, so the next `plan` or `validate` is a hit."""
    if _cacheable(cfg):
        _store(definition_key(cfg), of_build(built))


def cached_problems(cfg: Config, definition: str, check) -> list[str]:
    """`check(definition)` (validate's offline checks: botocore's request shapes, 0.8 s to load),
    kept beside the cached definition under the same key and the definition's own digest."""
    if not _cacheable(cfg):
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


def _build(cfg: Config) -> CachedBuild:
    from pipeline.build.compose import build

    return of_build(build(cfg))
