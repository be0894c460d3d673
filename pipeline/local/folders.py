"""Local folders as inputs: `parameters.input_uri` may name a folder on this machine (a path or a
`file://` URI) for local runs. The runner, like SageMaker, reads `s3://` URIs, so the folder is
mirrored into the run's storage at a URI derived from its absolute path
(`s3://<bucket>/local-inputs/<name>-<digest>/`; on local storage as hard links where the file
system allows, so a big folder costs no space) and the config given to the build names that URI.
Files changed, added or removed in the folder are changed, added or removed in the mirror before
every run, so the Listing keys see them. The labels' SQLite file may be a local path too, which the
local Reconcile reads where it is. Anything that deploys refuses either, naming the key."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

from pipeline.config import Config
from pipeline.config.paths import local_inputs
from steps.io.storage import LocalStorage, join_uri

FOLDER_KEYS = ("parameters.input_uri",)
MIRROR_PREFIX = "local-inputs"
# Commands that send the config to AWS: a folder on this machine means nothing there.
DEPLOYS = ("upsert", "start", "schedule", "preflight", "iam-policy")


def folders(cfg: Config) -> dict[str, Path]:
    """Key path -> local folder, for each input location of `cfg` naming one."""
    uri = cfg.parameters.input_uri
    return {"parameters.input_uri": Path(uri.removeprefix("file://"))} if uri.startswith("file://") else {}


def mirror_uri(cfg: Config, folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.") or "folder"
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    return f"s3://{cfg.aws.bucket}/{MIRROR_PREFIX}/{name}-{digest}"


def refuse(cfg: Config, command: str) -> str | None:
    """Why `command` cannot use this config (it deploys and a data input is on this machine:
    the input folder, the labels' SQLite file), naming each such key; or None."""
    found = local_inputs(cfg)
    if command not in DEPLOYS or not found:
        return None
    why = []
    for key, path in found.items():
        upload = f"aws s3 sync {path} s3://{cfg.aws.bucket}/raw/" if key in FOLDER_KEYS else \
            f"aws s3 cp {path} s3://{cfg.aws.bucket}/labels/{path.name}"
        what = "folder" if key in FOLDER_KEYS else "file"
        why.append(f"{key}: {path} is a {what} on this machine, which only local runs read (`wavepipe local`); "
                   f"to {command}, upload it to S3 (e.g. `{upload}`) and name that s3:// URI")
    return "; ".join(why)


def localized(cfg: Config) -> Config:
    """`cfg` with each folder input replaced by its mirror's s3:// URI (a pure function)."""
    found = folders(cfg)
    if not found:
        return cfg
    parameters = cfg.parameters.model_copy(update={"input_uri": mirror_uri(cfg, found["parameters.input_uri"])})
    return cfg.model_copy(update={"parameters": parameters})


def mirror(cfg: Config, store, note=lambda text: print(text, file=sys.stderr)) -> int:
    """Make each folder input's mirror in `store` match the folder; returns the files changed.
    ValueError when a folder does not exist or holds no file."""
    changed = 0
    for key, folder in folders(cfg).items():
        if not folder.is_dir():
            raise ValueError(f"{key}: {folder} is not a folder")
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        if not files:
            raise ValueError(f"{key}: {folder} holds no file")
        uri = mirror_uri(cfg, folder)
        changed += _sync(files, uri, store)
        note(f"{key}: the folder {folder} ({len(files)} files) as {uri} in the run's storage"
             f"{f' ({changed} files updated)' if changed else ''}")
    return changed


def _sync(files: dict[str, Path], uri: str, store) -> int:
    changed = 0
    present = {info.uri[len(uri) + 1:]: info for info in store.list(uri + "/")}
    for rel in sorted(set(present) - set(files)):
        store.delete(join_uri(uri, rel))
        changed += 1
    for rel, path in files.items():
        dest = join_uri(uri, rel)
        if isinstance(store, LocalStorage):
            changed += _link(path, store.path(dest))
        elif rel not in present or present[rel].size != path.stat().st_size:
            store.upload(path, dest)
            changed += 1
    return changed


def _link(src: Path, dst: Path) -> int:
    """A hard link (a copy across file systems) of `src` at `dst`, unless it is one already."""
    if dst.exists() and (os.path.samefile(src, dst) or _same(src, dst)):
        return 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)
    return 1


def _same(src: Path, dst: Path) -> bool:
    a, b = src.stat(), dst.stat()
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)
