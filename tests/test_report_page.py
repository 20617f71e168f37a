"""report.html: self-contained (no external resources) with every section; Chromium renders it if present."""

from __future__ import annotations

import re

import pytest

from cfblend.ensemble import run_blend
from cfblend.report.run import run_report
from cfblend.report.screenshot import find_chromium, screenshot
from cfblend.runs import train_cv

FAST = {"epochs": 3, "batch_size": 256, "device": "cpu"}


@pytest.fixture
def report(comp_env):
    comp, folds, paths = comp_env
    train_cv("dot", comp, folds, paths, overrides=FAST)
    run_blend(comp, paths)
    run_report(comp, paths)
    return paths.output / "report.html"


def test_page_is_self_contained_with_every_section(report):
    page = report.read_text()
    for section in ("Leaderboard", "Per-fold RMSE", "PCA of item factors", "Heavy raters and item bias",
                    "Error by user activity", "Cold-start rows"):
        assert section in page
    assert page.count("data:image/png;base64,") >= 4
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from the network
    assert ">blend<" in page


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed (apt-get install chromium)")
def test_page_renders_in_headless_chromium(report, tmp_path):
    png = screenshot(report, tmp_path / "report.png", height=2000)
    from PIL import Image

    img = Image.open(png).convert("L")
    assert img.size == (1200, 2000)
    assert len(img.resize((60, 100)).getcolors(6000) or []) > 20  # not a blank page
