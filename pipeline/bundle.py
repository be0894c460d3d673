"""The container code as one content-addressed bundle.

FrameworkProcessor uploads `source_dir` to a timestamped key, so every definition differs and
caching never hits. Instead the builder packs `steps/` itself, reproducibly (sorted entries,
fixed mtimes and owners, gzip without a timestamp), names it by its SHA-256 and ships it with
the stage settings files. Same code and config, same URIs, same definition.
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

    def settings_uri(self, stage: str) -> str:
        return next(u.rsplit("/", 1)[0] + "/" for u in self.files if u.endswith(f"/{stage}.json"))


def _bundle_files() -> list[Path]:
    out = []
    for path in sorted(STEPS_DIR.rglob("*")):
        rel = path.relative_to(STEPS_DIR)
        if path.is_file() and not SKIP_DIRS & set(rel.parts) and path.suffix not in SKIP_SUFFIXES:
            out.append(path)
    return out


def pack_steps() -> bytes:
    """A byte-identical tar.gz of `steps/` for identical sources."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _bundle_files():
            data = path.read_bytes()
            info = tarfile.TarInfo(name="steps/" + path.relative_to(STEPS_DIR).as_posix())
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()


def build_assets(base_uri: str, stage_settings: dict[str, dict]) -> Assets:
    """Code bundle + bootstrap under `<base>/code/<hash>/`, each stage's settings under
    `<base>/settings/<stage>-<hash>/<stage>.json` (its own hash: changing one stage's settings
    leaves the other steps' cache keys alone)."""
    bundle = pack_steps()
    bootstrap = (STEPS_DIR / "bootstrap.py").read_bytes()
    code_hash = sha256(bundle + bootstrap)[:16]
    code_uri = f"{base_uri}/code/{code_hash}/"
    files = {code_uri + "bundle.tar.gz": bundle, code_uri + "bootstrap.py": bootstrap}
    for stage, settings in sorted(stage_settings.items()):
        body = canonical_json(settings_document(stage, settings))
        files[f"{base_uri}/settings/{stage}-{sha256(body)[:16]}/{stage}.json"] = body
    return Assets(code_uri=code_uri, code_hash=code_hash, files=files)
