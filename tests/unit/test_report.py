"""``decisiontrail report``: one self-contained HTML page whose charts draw in a real headless
browser (Debian's chromium, installed by scripts/test.sh)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from decisiontrail.report import SECTIONS

from warehouse_support import record

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run"]
# matplotlib's first colours (C0 blue, C1 orange) and the reason-code bars' red.
_COLOURS = {"blue": (0x1F, 0x77, 0xB4), "orange": (0xFF, 0x7F, 0x0E), "red": (0xC0, 0x50, 0x4D)}


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Debian's chromium is missing: scripts/test.sh installs it (apt-get install chromium)")
    return subprocess.run([exe, *_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=180, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("report") / "data"
    record(data, 80, batch=40)
    out = data.parent / "report.html"
    p = subprocess.run([sys.executable, "-m", "decisiontrail.cli", "report", "--data", str(data), "--out", str(out),
                        "--verify"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "report of 120 decisions written to" in p.stdout
    return out


def test_the_page_is_self_contained_with_every_chart_and_summary(page: Path) -> None:
    html = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html) and "<script" not in html
    for title in SECTIONS:
        assert title[0].upper() + title[1:] in html
    assert html.count("<svg") == len(SECTIONS)
    assert "120 decisions" in html and "loan 1" in html and "loan 2" in html and "batcher" in html
    assert "Chain continuity: 1 chains, " in html and "0 gaps, 0 broken links" in html
    assert "120 decisions in " in html and ", 0 problems." in html


def test_the_charts_draw_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p1").stdout
    charts = re.findall(r"<section class=\"chart\">(.*?)</section>", dom, re.S)
    assert len(charts) == len(SECTIONS)
    for chart in charts:  # each parsed as SVG, with the drawn marks (bars, lines) as paths
        assert "<svg" in chart and chart.count("<path") > 10

    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1100,3000", "--hide-scrollbars", page.as_uri(),
             profile=tmp_path / "p2")
    img = Image.open(shot).convert("RGB")
    raw = img.tobytes()
    pixels = [tuple(raw[i:i + 3]) for i in range(0, len(raw), 3)]
    near = {name: sum(1 for p in pixels if all(abs(a - b) < 12 for a, b in zip(p, c)))
            for name, c in _COLOURS.items()}
    assert near["blue"] > 2000 and near["orange"] > 500 and near["red"] > 500, near
    background = sum(1 for p in pixels if p == (255, 255, 255))
    assert background < 0.97 * len(pixels)
