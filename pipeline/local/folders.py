"""Local folders as inputs: `parameters.input_uri` may name a folder on this machine (a path or a
`file://` URI) for local runs. The runner, like SageMaker, reads `s3://` URIs, so the folder is
mirrored into the run's storage at a URI derived from its absolute path
(`s3://<bucket>/local-inputs/<name>-<digest>/`; on local storage as hard links where the file
system allows, so a big folder costs no space) and the config given to the build names that URI.
Files changed, added or removed in the folder are changed, added or removed in the mirror before
every run, so the Listing keys see them, an edit that keeps the size included. On local storage a
linked file is its source; a copied one is unchanged with its source's size and nanosecond
modification time, else compared byte for byte where the times differ by under 2 s (file systems that
round them). On S3 (`--s3-endpoint`, `--s3 aws`) a file is unchanged with the size, modification time
and object ETag recorded in the workdir (`local-inputs/`) when it was last uploaded or checked, or when
the object's ETag is the one its bytes give (after a `touch`, from another workdir); otherwise it is
uploaded again (under SSE-KMS, once per new record). A time within 2 s of when it was read is never
trusted (a rewrite in the same tick). The labels' SQLite file may be a local path too, which the local
Reconcile reads where it is. Anything that deploys refuses either, naming the key."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pipeline.config import Config
from pipeline.config.paths import local_inputs
from steps.io.storage import LocalStorage, join_uri, upload_etag

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


def mirror(cfg: Config, store, note=lambda text: print(text, file=sys.stderr), state: Path | None = None) -> int:
    """Make each folder input's mirror in `store` match the folder; returns the files changed.
    `state`: the folder (in the workdir) that records what was uploaded to an S3 mirror.
    ValueError when a folder does not exist or holds no file."""
    changed = 0
    for key, folder in folders(cfg).items():
        if not folder.is_dir():
            raise ValueError(f"{key}: {folder} is not a folder")
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        if not files:
            raise ValueError(f"{key}: {folder} holds no file")
        uri = mirror_uri(cfg, folder)
        record = state / f"{uri.rsplit('/', 1)[1]}.json" if state else None
        changed += _sync(files, uri, store, record)
        note(f"{key}: the folder {folder} ({len(files)} files) as {uri} in the run's storage"
             f"{f' ({changed} files updated)' if changed else ''}")
    return changed


# A file modified this close to when its state is read may be modified again within the same
# timestamp tick (coarse clocks; 2 s on FAT): such a state is not trusted (git's "racily clean").
RACY_NS = 2 * 10**9


def _sync(files: dict[str, Path], uri: str, store, record: Path | None) -> int:
    changed = 0
    present = {info.uri[len(uri) + 1:]: info for info in store.list(uri + "/")}
    for rel in sorted(set(present) - set(files)):
        store.delete(join_uri(uri, rel))
        changed += 1
    if isinstance(store, LocalStorage):
        return changed + sum(_link(path, store.path(join_uri(uri, rel))) for rel, path in files.items())
    try:
        uploaded = json.loads(record.read_text()) if record else {}
    except (OSError, ValueError):
        uploaded = {}
    uploaded = uploaded if isinstance(uploaded, dict) else {}
    done: dict[str, list] = {}
    try:
        for rel, path in files.items():
            st, obj = path.stat(), present.get(rel)
            if obj is not None and obj.size == st.st_size and (
                    uploaded.get(rel) == [st.st_size, st.st_mtime_ns, obj.etag] or obj.etag == upload_etag(path)):
                etag = obj.etag  # unchanged since recorded, or the same bytes (a touch, another workdir)
            else:
                dest = join_uri(uri, rel)
                store.upload(path, dest)
                etag = store.head(dest).etag
                changed += 1
            racy = time.time_ns() - st.st_mtime_ns < RACY_NS
            done[rel] = [st.st_size, None if racy else st.st_mtime_ns, etag]
    finally:  # what was uploaded before an error is not uploaded again; what was not reached keeps its record
        if record is not None:
            kept = {rel: entry for rel, entry in uploaded.items() if rel in files and rel not in done}
            record.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{record.name}.", dir=record.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump({**kept, **done}, fh, sort_keys=True)
            os.replace(tmp, record)
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
    """A copy (not a link) that still holds its source's bytes: the same size and modification
    time, to the nanosecond and not racily; else, where the copy's time may be the source's
    rounded (file systems that keep 100 ns, 1 s or 2 s), the same bytes."""
    a, b = src.stat(), dst.stat()
    if a.st_size != b.st_size:
        return False
    if a.st_mtime_ns == b.st_mtime_ns and time.time_ns() - a.st_mtime_ns >= RACY_NS:
        return True
    return abs(a.st_mtime_ns - b.st_mtime_ns) < RACY_NS and filecmp.cmp(src, dst, shallow=False)
