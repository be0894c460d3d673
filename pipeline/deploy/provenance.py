"""What a pipeline version records about where it came from: config version, code hash and
git commit, as a version display name/description and as `wavepipe:*` tags."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TAG_PREFIX = "wavepipe:"
# PipelineVersionName in botocore's model: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,81}
DISPLAY_NAME_MAX = 82


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """HEAD's short hash, `-dirty` when the tree has changes; None outside a git repository."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


@dataclass(frozen=True)
class Provenance:
    config_version: str
    code_hash: str
    commit: str | None

    def tags(self) -> dict[str, str]:
        tags = {f"{TAG_PREFIX}config-version": self.config_version, f"{TAG_PREFIX}code-hash": self.code_hash}
        if self.commit:
            tags[f"{TAG_PREFIX}git-commit"] = self.commit
        return tags

    def display_name(self) -> str:
        """`cfg-1-0-0-code-<hash>`: the version name pattern allows only letters, digits, hyphens."""
        raw = f"cfg-{self.config_version}-code-{self.code_hash}"
        name = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]", "-", raw)).strip("-")
        return name[:DISPLAY_NAME_MAX].rstrip("-")

    def description(self) -> str:
        commit = self.commit or "none (not a git checkout)"
        return f"config version {self.config_version}; code hash {self.code_hash}; git commit {commit}"


def provenance(cfg: Config, code_hash: str) -> Provenance:
    return Provenance(config_version=cfg.pipeline.version, code_hash=code_hash, commit=git_commit())


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
