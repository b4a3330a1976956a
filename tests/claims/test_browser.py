"""The report in a real browser: headless Chromium loads it without console messages, every
claim and plot is in the DOM, and the page renders (a screenshot that is not blank, with the
verdict badges' colours in it). Skips where /usr/bin/chromium is absent."""

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from claim_fakes import fake_claim

from imo.claims.report import build_report, write_report
from imo.claims.runner import run_claim
from imo.runs.store import RunStore

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]  # fmt: skip
GREEN, RED = (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E)  # the supported and refuted badges

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium: apt-get install chromium"),
]


def chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    # a profile of its own per call: no state shared with a user's browser or another call
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / f'profile-{name}'}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    # the page has no script, so any console line (an error, an "Uncaught ...") is a failure
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    return res


@pytest.fixture
def report(tmp_path) -> Path:
    claims = [fake_claim("wide-wins", [0.3, 0.35, 0.4]), fake_claim("deep-wins", [-0.5])]
    with RunStore.open() as store:
        run_claim(claims[0], "full", store)
        run_claim(claims[1], "quick", store)
        html = build_report(store, [*claims, fake_claim("never-run", [1.0])])
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    return write_report(tmp_path / "report.html", html)


def test_report_loads_in_chromium(report, tmp_path):
    res = chromium(tmp_path, "dom", "--dump-dom", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    for cid in ("wide-wins", "deep-wins", "never-run"):
        assert f'id="{cid}"' in dom
    assert len(re.findall(r'<img class="plot"[^>]*src="data:image/png;base64,', dom)) == 2
    assert "not yet checked" in dom

    shot = tmp_path / "shot.png"
    res = chromium(tmp_path, "shot", f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    rgb = np.asarray(matplotlib.image.imread(shot))[..., :3]  # floats in [0, 1]
    assert rgb.shape[:2] == (2000, 1200)
    assert rgb.std() > 0.05 and (rgb < 0.5).mean() > 0.005  # text and plots, not a blank page

    def has(colour: tuple[int, int, int]) -> bool:
        close = np.abs(rgb - np.array(colour) / 255).max(axis=-1) < 0.06
        return close.sum() > 100  # a badge is a few hundred pixels

    assert has(GREEN) and has(RED)  # the inline CSS was applied
