"""report.html renders in headless Chromium with its plots, from the file alone."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.packaging import report
from pipeline.packaging.variants import Variant

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    variants = [
        Variant("fp32", "FP32 ONNX", "model.onnx", 90_000_000, {"accuracy": 0.95}, 12.5),
        Variant("int8", "INT8 CPU", "model.int8.onnx", 23_000_000, {"accuracy": 0.94}, 7.1),
        Variant("qdq", "INT8 Q/DQ", "model.qdq.onnx", 24_000_000, {"accuracy": 0.93}, 30.2),
    ]
    html = report.render(
        title="tiny for cpu",
        summary=[("target", "cpu")],
        variants=variants,
        metric="accuracy",
        notes=["a note"],
    )
    path = tmp_path / "report.html"
    path.write_text(html)
    return path


def test_report_dom_has_all_three_plots(page, tmp_path):
    result = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for plot in ("plot-accuracy", "plot-latency", "plot-size"):
        match = re.search(rf'<figure id="{plot}" class="plot">\s*<svg[^>]*>(.*?)</svg>', dom, re.S)
        assert match, f"{plot} missing from the rendered DOM"
        assert match.group(1).count("<path") >= 3, f"{plot} has no drawn bars"
    assert "tiny for cpu" in dom


def test_report_screenshot_shows_the_plots(page, tmp_path):
    import numpy as np
    from matplotlib import image

    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1400", page.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = image.imread(str(shot))[..., :3]
    # the bar colours (FP32 blue, INT8 green, Q/DQ red) are drawn somewhere on the page
    for rgb in ((0x4C, 0x72, 0xB0), (0x55, 0xA8, 0x68), (0xC4, 0x4E, 0x52)):
        close = np.all(np.abs(pixels * 255 - np.array(rgb)) < 12, axis=-1)
        assert close.sum() > 200, f"no bars of colour {rgb} in the screenshot"
