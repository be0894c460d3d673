"""A config file as untrusted input: size, alias expansion, nesting, tags; refused fast, in
little memory, naming the file and the key path."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import ConfigError, load_config
from pipeline.config.files import MAX_BYTES, MAX_DEPTH, MAX_VALUES
from tests.conftest import EXAMPLE_CONFIG


def billion_laughs(levels: int = 9, indent: str = "      ") -> str:
    """`lol1: [10 strings]`, then each level a list of ten aliases of the one before: 10**levels values."""
    lines = [f'{indent}lol1: &lol1 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{indent}lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]" for i in range(2, levels + 1)]
    return "\n".join(lines) + "\n"


def with_feature_options(tmp_path, body: str):
    """The example with `body` under stages.featurize.feature_options, as a file."""
    text = EXAMPLE_CONFIG.read_text().replace("    macroshards: 2\n", "    macroshards: 2\n    feature_options:\n" + body)
    path = tmp_path / "wavepipe.yaml"
    path.write_text(text)
    return path


def refused(path) -> tuple[ConfigError, float, int]:
    """The error, seconds taken and peak bytes allocated by Python while refusing `path`."""
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return err.value, seconds, peak


class TestValidFiles:
    def test_aliases_and_merge_keys_within_the_limits(self, tmp_path):
        text = EXAMPLE_CONFIG.read_text().replace("  combine:\n    instance_type: ml.m5.xlarge\n",
                                                  "  combine:\n    <<: *infra\n")
        text = text.replace("  reconcile:\n    instance_type: ml.m5.xlarge\n",
                            "  reconcile:\n    <<: &infra {instance_type: ml.m5.xlarge}\n")
        path = tmp_path / "wavepipe.yaml"
        path.write_text(text)
        assert load_config(path).stages.combine.instance_type == "ml.m5.xlarge"

    def test_a_few_laughs_are_fine(self, tmp_path):
        cfg = load_config(with_feature_options(tmp_path, billion_laughs(levels=3)))
        assert len(cfg.stages.featurize.feature_options["lol3"]) == 10


class TestInvalidFiles:
    def test_billion_laughs_refused_fast_in_little_memory(self, tmp_path, capsys):
        path = with_feature_options(tmp_path, billion_laughs())
        err, seconds, peak = refused(path)
        assert err.problems == [f"stages.featurize.feature_options.lol5: aliases expand the config past "
                                f"{MAX_VALUES:,} values (the limit of a config file; a few nested aliases can "
                                "stand for billions): write the values out, or use fewer aliases"]
        assert str(err).startswith(f"{path}: stages.featurize.feature_options.lol5: ")
        assert seconds < 0.5 and peak < 20e6, (seconds, peak)  # it hung at 5.6 GB before
        assert main(["validate", "--config", str(path)]) == 2
        assert "aliases expand the config past" in capsys.readouterr().err

    def test_ten_megabytes_refused_before_reading(self, tmp_path):
        path = tmp_path / "big.yaml"
        path.write_text(EXAMPLE_CONFIG.read_text() + "# padding\n" * (10 * 1024 * 1024 // 10))
        err, seconds, peak = refused(path)
        assert err.problems == [f"<root>: {path.stat().st_size:,} bytes, more than the limit of {MAX_BYTES:,} "
                                "bytes (1 MiB) for a config file"]
        assert str(err).startswith(f"{path}: ")
        assert seconds < 0.1 and peak < 1e6, (seconds, peak)  # 47 s before, and then it ran

    def test_deep_nesting_refused(self, tmp_path):
        err, seconds, _ = refused(with_feature_options(tmp_path, "      deep: " + "[" * 100 + "]" * 100 + "\n"))
        assert err.problems == [f"stages.featurize.feature_options.deep: nested more than {MAX_DEPTH} levels deep "
                                "(the limit of a config file)"]
        assert seconds < 0.5

    def test_very_deep_nesting_refused_fast(self, tmp_path):
        # libyaml's own limit (1,000 flow levels) may speak first; either way a clear line, fast.
        err, seconds, _ = refused(with_feature_options(tmp_path, "      deep: " + "[" * 400_000 + "]" * 400_000 + "\n"))
        assert "nest" in err.problems[0] and seconds < 1

    def test_deep_nesting_through_aliases_refused(self, tmp_path):
        body = "      d1: &d1 [x]\n" + "".join(f"      d{i}: &d{i} [*d{i - 1}]\n" for i in range(2, 80))
        err, _, _ = refused(with_feature_options(tmp_path, body))
        assert err.problems[0].startswith("stages.featurize.feature_options.d")
        assert f"nests the config more than {MAX_DEPTH} levels deep" in err.problems[0]

    def test_recursive_alias_refused(self, tmp_path):
        err, _, _ = refused(with_feature_options(tmp_path, "      loop: &loop [1, *loop]\n"))
        assert err.problems == ["stages.featurize.feature_options.loop: alias *loop refers to a value that "
                                "contains it (recursive)"]

    def test_python_tags_refused_by_the_safe_loader(self, tmp_path):
        path = with_feature_options(tmp_path, "      x: !!python/object/apply:os.system ['true']\n")
        err, _, _ = refused(path)
        assert err.problems[0].startswith("not valid YAML: could not determine a constructor")

    def test_problems_of_every_file_at_once(self, tmp_path):
        base, over = tmp_path / "a.yaml", tmp_path / "b.yaml"
        base.write_text("a: [unclosed\n")
        over.write_text("- not a mapping\n")
        with pytest.raises(ConfigError) as err:
            load_config(base, overlays=[over])
        lines = str(err.value).splitlines()
        assert lines[0].startswith(f"{base}: not valid YAML") and lines[-1] == f"{over}: <root>: expected a mapping"

    def test_a_device_is_read_no_further_than_the_limit(self, tmp_path):
        with pytest.raises(ConfigError, match="more than the limit of 1,048,576 bytes"):
            load_config("/dev/zero")
        assert yaml  # the loader is never reached
