"""`deploy.py local`: build the definition `upsert` would send and run it on this machine."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pipeline.config import Config
from steps.io.storage import LocalStorage, S3Storage, join_uri


def storage_for(workdir: Path, storage: str):
    """The same storage the runner will use: `<workdir>/s3`, an endpoint URL, or AWS."""
    if storage == "local":
        return LocalStorage(workdir / "s3")
    import boto3

    endpoint = None if storage == "aws" else storage
    return S3Storage(client=boto3.client("s3", endpoint_url=endpoint))


def ensure_sample_data(cfg: Config, workdir: Path, storage: str) -> None:
    """Write the generated sample data where the config expects it, unless it is there."""
    uri = cfg.local.sample_data_uri
    if not uri:
        return
    store = storage_for(workdir, storage)
    if store.head(join_uri(uri, "labels.sqlite")) is not None:
        return
    from pipeline.local.sample_cache import write_cached_sample_data

    print(f"writing the sample dataset (first run of this workdir) at {uri} ...", file=sys.stderr)
    if isinstance(store, LocalStorage):
        written = write_cached_sample_data(store.path(uri), size=cfg.local.sample_size, seed=cfg.local.sample_seed)
        print(f"wrote {written / 1e6:.1f} MB", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_cached_sample_data(Path(tmp), size=cfg.local.sample_size, seed=cfg.local.sample_seed)
        # labels.sqlite last: it is the marker that the upload completed.
        files = sorted(Path(tmp).rglob("*"), key=lambda p: (p.name == "labels.sqlite", str(p)))
        for path in files:
            if path.is_file():
                store.upload(path, join_uri(uri, path.relative_to(tmp).as_posix()))


def install_path(built, workdir: Path) -> tuple[dict[str, bytes], dict]:
    """The wheelhouse as assets (at the definition's URI) and the runner's options for the
    jobs' install path; ValueError when this config's jobs install nothing from a wheelhouse."""
    from pipeline.build import wheelhouse
    from pipeline.local.venvs import job_venv
    from pipeline.build.wheelhouse import find_python

    spec = built.wheelhouse
    if spec is None:
        raise ValueError("--install-requirements: this config's jobs install nothing from a wheelhouse "
                         "(image.uri without install_requirements, or image.pip_index_url)")
    interpreter = find_python(spec.python)
    if interpreter is None:
        raise ValueError(f"--install-requirements: the jobs run Python {spec.python} (the image's); install "
                         f"python{spec.python} on this machine (e.g. with pyenv or uv) to run their install path")
    print(f"wheelhouse {spec.key} ({spec.describe()}) ...", file=sys.stderr)
    folder = wheelhouse.build(spec, python=interpreter)
    files = {built.wheelhouse_uri + p.name: p.read_bytes() for p in wheelhouse.files(folder)}
    python = job_venv(workdir.resolve() / "venvs", spec, folder, interpreter)
    return files, {"python": str(python), "install_requirements": True}


def run_local(cfg: Config, args, params: dict[str, str]) -> int:
    from pipeline.local import UnsupportedDefinition
    from pipeline.local.lock import workdir_lock
    from steps.entry import os_error_line
    from pipeline.build.wheelhouse import WheelhouseError

    # --workdir is relative to the current folder like any command-line path; local.workdir was
    # resolved against the config file's folder when the config was loaded.
    workdir = Path(args.workdir or cfg.local.workdir or ".wavepipe")
    storage = args.s3_endpoint or ("aws" if args.s3 == "aws" else "local")
    try:
        with workdir_lock(workdir):  # the sample data too: one run per workdir (pipeline/local/lock.py)
            return _run_locked(cfg, args, params, workdir, storage)
    except (UnsupportedDefinition, ValueError, WheelhouseError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # before any execution began (the lock, the sample data): one line
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return 1


def _run_locked(cfg: Config, args, params: dict[str, str], workdir: Path, storage: str) -> int:
    from pipeline.build.cached import remember
    from pipeline.build.compose import build
    from pipeline.local import run_pipeline

    ensure_sample_data(cfg, workdir, storage)
    built = build(cfg)
    remember(cfg, built)  # the next `plan` or `validate` of this config and code needs no build
    assets, install = dict(built.assets.files), {}
    if getattr(args, "install_requirements", False):
        wheels, install = install_path(built, workdir)
        assets.update(wheels)
    result = run_pipeline(
        built.definition, assets=assets, workdir=workdir, params=params, storage=storage,
        only=args.only or None, use_cache=not args.no_cache, retry=getattr(args, "retry", None),
        # What upsert sends as ParallelismConfiguration, unless the command line says otherwise.
        max_parallel=args.max_parallel or cfg.max_parallel_steps,
        pipeline_name=cfg.pipeline.name, **install,
    )
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    else:
        from pipeline.local.opening import report_options, results_text

        # What `wavepipe report` typed here needs to find this run: the config, unless found
        # here anyway; the workdir, unless it is the config's own.
        config = None if getattr(args, "config_found_here", True) else args.config
        own = workdir.resolve() == Path(cfg.local.workdir or ".wavepipe").resolve()
        print(results_text(result, again=report_options(config, args.env, args.overlay, None if own else workdir)))
    return result.exit_code
