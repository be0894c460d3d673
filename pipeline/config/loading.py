"""Reading a config: YAML files, overlays merged over the base, old spellings named, then the
models, the cross-checks and the function references, all reported as one ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.config.errors import ConfigError, validation_problems
from pipeline.config.files import read_yaml
from pipeline.config.models import Config


def deep_merge(base: dict, overlay: dict) -> dict:
    """Overlay wins key by key; mappings merge recursively, lists and scalars replace."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def overlay_path(base: Path, env: str) -> Path:
    """`config/example.yaml` + `dev` -> `config/env/dev.yaml`."""
    return base.parent / "env" / f"{env}.yaml"


def old_spellings(data: dict) -> list[str]:
    """Keys of earlier releases, each with what to write instead (a plain 'extra inputs are
    not permitted' would leave the user guessing)."""
    stages = data.get("stages") if isinstance(data.get("stages"), dict) else {}
    problems = []
    for name, section in stages.items():
        if isinstance(section, dict) and "enabled" in section:
            problems.append(f"stages.{name}.enabled: no longer a key; a stage is in the pipeline when its section "
                            f"is there: delete the section to leave {name} out (in an overlay: `{name}: null`)")
    featurize = stages.get("featurize")
    if isinstance(featurize, dict) and isinstance(featurize.get("macroshards"), list):
        problems.append("stages.featurize.macroshards: a list of key prefixes is now written `prefixes: [...]`; "
                        "`macroshards` is a count")
    reconcile = stages.get("reconcile")
    if isinstance(reconcile, dict) and "reload" in reconcile:
        problems.append("stages.reconcile.reload: no longer a key; the Reload pipeline parameter decides "
                        "(its default is parameters.reload)")
    return problems


def load_config(path: str | Path, env: str | None = None, overlays: list[str | Path] = (), registry=None) -> Config:
    """Read, merge and validate a config; raises ConfigError naming the file(s) and key paths."""
    path = Path(path)
    files = [path] + ([overlay_path(path, env)] if env else []) + [Path(o) for o in overlays]
    data: dict[str, Any] = {}
    errors = []
    for file in files:
        try:
            data = deep_merge(data, read_yaml(file))
        except ConfigError as err:
            errors.append(err)
    if errors:
        raise ConfigError.combine(errors)
    return validate_config(data, " + ".join(str(f) for f in files), registry, base_dir=path.parent)


def validate_config(data: dict, source: str = "<config>", registry=None, base_dir: str | Path | None = None) -> Config:
    """The validated config, function references included; ConfigError naming `source` otherwise.

    Paths in it are relative to `base_dir` (the config file's folder; default: the current one)."""
    from pipeline.config.checks import cross_check
    from pipeline.config.paths import resolve_paths
    from pipeline.build.references import function_problems
    from pipeline.config.secrets import secret_problems
    from pipeline.stages import default_registry

    registry = registry or default_registry()
    model = registry.config_model()
    # Every problem at once: old spellings, paths, the models, then (on a valid model) the rules
    # across keys and the function references. A key already named is not named twice.
    problems = old_spellings(data) + secret_problems(data)
    data, path_problems = resolve_paths(data, Path(base_dir) if base_dir is not None else Path.cwd())
    problems += path_problems
    try:
        cfg = model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, _once(problems, validation_problems(err, model))) from None
    problems = _once(problems, cross_check(cfg) + function_problems(cfg))
    if problems:
        raise ConfigError(source, problems)
    return cfg


def _once(problems: list[str], more: list[str]) -> list[str]:
    """`problems`, then those of `more` about a key path not named yet."""
    named = {p.split(":", 1)[0] for p in problems}
    return problems + [p for p in more if p.split(":", 1)[0] not in named]


def json_schema(registry=None) -> dict:
    from pipeline.stages import default_registry

    schema = (registry or default_registry()).config_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "wavepipe pipeline configuration"
    return schema
