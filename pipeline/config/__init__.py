"""The pipeline's configuration: one YAML file (plus optional overlays) validated once, here.

- `models`: the frozen models (no other import from `pipeline/`); each stage's own section
  model is declared with its stage in the registry (`pipeline.stages`).
- `loading`: files, overlays, old spellings, validation into one `ConfigError`.
- `checks`: the rules across keys, one function each.
- `errors`: `ConfigError` and key paths.
"""

from pipeline.config.errors import ConfigError
from pipeline.config.loading import deep_merge, json_schema, load_config, overlay_path, validate_config
from pipeline.config.models import Config, Schedule, StageInfra

__all__ = ["Config", "ConfigError", "Schedule", "StageInfra", "deep_merge", "json_schema", "load_config",
           "overlay_path", "validate_config"]
