"""`ganforge report`: a self-contained HTML page, checked by rendering it in headless Chromium."""

import base64
import io
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from ganforge import Trainer
from ganforge.report import build_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def points_run(tmp_path_factory):
    """A tiny grid25 run evaluated during training: eval.json, eval/ metrics, scatter-plot filmstrip."""
    tmp = tmp_path_factory.mktemp("points")
    cfg = tiny_config(tmp, data="grid25", model=None, resolution=None, batch=32, steps=8, log_every=2,
                      sample_every=2, eval_every=4)
    return Trainer(cfg).fit().dir


def embedded_images(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b64))) for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_is_self_contained(points_run):
    page = build_report(points_run).read_text()
    assert (points_run / "report.html").is_file()
    assert not re.search(r"(src|href)=\"?(https?:|//|file:)", page) and "<script" not in page and "<link" not in page
    images = embedded_images(page)
    # final samples, training curves, eval curves, and every one of the 5 sample snapshots (steps 0, 2, 4, 6, 8)
    assert len(images) == 1 + 2 + 5 and all(img.size[0] > 50 for img in images)
    for text in ("evaluation", "modes", "protocol", "n_fake", "2500", "best checkpoint", "step 8", "nonsaturating",
                 "replay"):
        assert text in page, text


def test_report_of_an_image_run_without_eval(tmp_path):
    run = Trainer(tiny_config(tmp_path, steps=4, sample_every=1)).fit()
    out = build_report(run.dir, tmp_path / "elsewhere.html")
    page = out.read_text()
    assert "no eval.json" in page and f"ganforge eval {run.dir}" in page
    assert len(embedded_images(page)) == 1 + 1 + 5  # samples, curves (no eval curves), 5 snapshots


def test_report_command_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ganforge", "report", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "not a ganforge run directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute('data-rendered', ok + '/' + imgs.length);
});</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium/chromium-browser/google-chrome binary (Debian: apt-get "
                                             "install chromium) to render the report with")
def test_report_renders_in_headless_chromium(points_run, tmp_path):
    page = build_report(points_run).read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180).stdout
    rendered = re.search(r'data-rendered="(\d+)/(\d+)"', dom)
    assert rendered, dom[-2000:]
    assert rendered.group(1) == rendered.group(2) == "8"  # every embedded image decoded, with a width

    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,2400", (points_run / "report.html").as_uri()],
                   capture_output=True, timeout=180)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2400)
    pixels = np.asarray(img).astype(int)
    non_white = (pixels.min(axis=2) < 200).mean()
    colourful = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean()
    assert non_white > 0.02, non_white        # text, tables and images, not a blank page
    assert colourful > 0.002, colourful       # the plots' coloured lines and scatter points were drawn
