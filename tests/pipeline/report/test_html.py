"""`deploy.py report` rendered by a real browser: headless Chromium (Debian's `chromium`, which
.ci/run installs) screenshots the page, and the screenshot's pixels must show the DAG in the
step states' colours and every chart in its own colour, not only a file that exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.definition.svg import STATE_COLOURS
from pipeline.report import charts
from tests.conftest import ROOT

# Its expensive fixtures (whole local runs) made once: these tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("example_run")

EXAMPLE = str(ROOT / "config" / "example.yaml")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1280


def screenshot(html: Path, height: int = 2600) -> Image.Image:
    if CHROMIUM is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium; .ci/run does it)")
    png = html.with_suffix(".png")
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--no-first-run", f"--user-data-dir={html.parent / 'profile'}",
                    f"--window-size={WIDTH},{height}", f"--screenshot={png}", html.as_uri()],
                   check=True, capture_output=True, timeout=60)
    return Image.open(png).convert("RGB")


def pixels(image: Image.Image, hex_colour: str, top: int = 0, bottom: int | None = None) -> int:
    """How many pixels have exactly this colour between rows `top` and `bottom`."""
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    region = image.crop((0, top, image.width, bottom or image.height))
    return sum(n for n, c in region.getcolors(maxcolors=1 << 20) if c == rgb)


def first_row(image: Image.Image, hex_colour: str) -> int:
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    data = image.load()
    return next(y for y in range(image.height) for x in range(0, image.width, 2) if data[x, y] == rgb)


def self_contained(html: str) -> None:
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert not re.search(r"""(src|href)\s*=|url\((?!#)""", html)  # url(#arrow): in the page itself
    assert set(re.findall(r"https?://[^\s\"'<]+", html)) <= {"http://www.w3.org/2000/svg"}


class TestValidReport:
    def test_a_succeeded_run_shows_the_dag_timeline_and_charts(self, example_run, tmp_path, capsys):
        workdir, code = example_run
        assert code == 0
        first = sorted(p.name for p in (workdir / "executions").iterdir())[0]
        out = tmp_path / "report.html"
        assert main(["report", "--config", EXAMPLE, first, "--workdir", str(workdir), "--out", str(out)]) == 0
        html = out.read_text()
        self_contained(html)
        assert "missing_data_file" in html and "3100001_0001.dat" in html  # the sample's broken record
        image = screenshot(out)

        green = STATE_COLOURS["Succeeded"]
        dag_top = first_row(image, green)
        assert dag_top < 250  # the DAG comes first ...
        assert pixels(image, green, dag_top, dag_top + 120) > 5 * 190 * 20  # ... five green boxes
        assert pixels(image, STATE_COLOURS["Failed"]) == 0
        assert pixels(image, green, dag_top + 120) > 3000  # the timeline's bars
        assert pixels(image, charts.BLUE) > 5000  # records per shard, train counts, box outlines
        assert pixels(image, charts.TEAL) > 3000  # throughput
        assert pixels(image, charts.RED) > 2000  # error rows by kind
        assert pixels(image, "#9ecae9") > 1500  # the signals' box plots
        assert pixels(image, charts.ORANGE) > 100 and pixels(image, charts.PURPLE) > 100  # valid, test splits
        assert first_row(image, charts.PURPLE) > first_row(image, charts.TEAL) > dag_top

    def test_a_failed_run_shows_failed_and_skipped_steps(self, failed_documents_run, tmp_path, capsys):
        run = failed_documents_run  # the documents recipe, its labels query failing in Reconcile
        assert run.code == 1
        out = tmp_path / "failed.html"
        assert main(["report", *run.args, "--workdir", str(run.workdir), "--out", str(out)]) == 0
        image = screenshot(out, 1200)

        assert pixels(image, STATE_COLOURS["Failed"], 0, 400) > 190 * 20  # Reconcile, red
        assert pixels(image, STATE_COLOURS["Skipped"], 0, 400) > 190 * 20  # Encode, grey
        assert pixels(image, STATE_COLOURS["Succeeded"]) == 0
        assert "AlgorithmError: reconcile: " in out.read_text()  # the step's own reason


class TestInvalidReport:
    def test_an_unknown_execution_exits_2(self, tmp_path, capsys):
        assert main(["report", "--config", EXAMPLE, "local-nope", "--workdir", str(tmp_path),
                     "--out", str(tmp_path / "r.html")]) == 2
        assert f"--workdir {tmp_path}: no local execution of wavepipe-example there" in capsys.readouterr().err
