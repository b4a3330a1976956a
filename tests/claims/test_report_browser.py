"""The report in a real browser (headless Chromium at 1280 px): it loads without console messages,
every claim and plot is in the DOM, the page renders with its colours, no table is wider than the
page, nothing scrolls sideways, no cell is taller than ~200 px and no plot is blank. The checkers
are tried on a page known to be bad, so each can fail. Skips where Chromium is absent."""

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from claim_fakes import fake_claim
from test_report_models import fake_import

from imo.claims.evidence import write_record
from imo.claims.registry import Claim, Rule
from imo.claims.report import build_report, write_report
from imo.claims.runner import run_claim
from imo.importers.chat import CHAT_KIND
from imo.runs.store import RunStore

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]  # fmt: skip
GREEN, RED = (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E)  # the supported and refuted badges
WIDTH, MAX_CELL_PX = 1280, 200

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium: apt-get install chromium"),
]

# Added to a copy of the page only (the report itself has no script): opens every folded block,
# then measures the layout into a <pre> that --dump-dom hands back.
MEASURE = """<script>
addEventListener("load", () => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const where = el => { const s = el.closest("section"); return s && s.id ? s.id : "page"; };
  const page = document.documentElement;
  const out = {width: innerWidth, scroll_width: page.scrollWidth, tables: [], cells: [],
               scrollers: [], images: []};
  document.querySelectorAll("table").forEach(t => {
    const box = (t.closest("section") || document.body).getBoundingClientRect();
    const r = t.getBoundingClientRect();
    out.tables.push({where: where(t), width: r.width, right: r.right, limit: Math.min(box.right, innerWidth)});
  });
  document.querySelectorAll("td, th").forEach(c => {
    out.cells.push({where: where(c), height: c.getBoundingClientRect().height, text: c.textContent.slice(0, 40)});
  });
  document.querySelectorAll("body *").forEach(el => {
    const ox = getComputedStyle(el).overflowX;
    if ((ox === "auto" || ox === "scroll") && el.scrollWidth > el.clientWidth + 1)
      out.scrollers.push({where: where(el), tag: el.tagName});
  });
  document.querySelectorAll("img").forEach(i => {
    out.images.push({alt: i.alt, decoded: i.complete && i.naturalWidth > 0});
  });
  const pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    # a profile of its own per call: no state shared with a user's browser or another call
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / f'profile-{name}'}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    # the page has no script of its own, so any console line (an error, an "Uncaught ...") is a failure
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    return res


def measure(tmp_path: Path, page: Path) -> tuple[dict, str]:
    """The layout of the page in Chromium at WIDTH px, and its DOM."""
    probe = tmp_path / f"measure-{page.name}"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    res = chromium(tmp_path, f"measure-{page.stem}", f"--window-size={WIDTH},900", "--dump-dom", probe.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', res.stdout, re.S)
    assert found, "the measuring script did not run"
    import html

    return json.loads(html.unescape(found.group(1))), res.stdout


def layout_problems(m: dict) -> list[str]:
    """Tables wider than the page (or their card), sideways scrolling, cells over MAX_CELL_PX tall,
    images the browser could not decode."""
    assert m["width"] == WIDTH, m["width"]
    bad = []
    if m["scroll_width"] > m["width"]:
        bad.append(f"the page is {m['scroll_width']} px wide at {m['width']} px: it scrolls sideways")
    bad += [f"a table in {t['where']} is {t['width']:.0f} px wide and overflows its card"
            for t in m["tables"] if t["right"] > t["limit"] + 1]  # fmt: skip
    bad += [f"a cell in {c['where']} is {c['height']:.0f} px tall ({c['text']!r}...)"
            for c in m["cells"] if c["height"] > MAX_CELL_PX]  # fmt: skip
    bad += [f"a {s['tag'].lower()} in {s['where']} scrolls sideways" for s in m["scrollers"]]
    bad += [f"image {i['alt']!r} did not decode" for i in m["images"] if not i["decoded"]]
    return bad


def blank_plots(dom: str, share: float = 0.001) -> list[str]:
    """The alt text of each embedded PNG that is one colour (all but `share` of its pixels) or is
    not a PNG at all."""
    blank = []
    for alt, b64 in re.findall(r'<img[^>]*alt="([^"]*)"[^>]*src="data:image/png;base64,([^"]+)"', dom):
        try:
            rgb = np.asarray(matplotlib.image.imread(io.BytesIO(base64.b64decode(b64)), format="png"))[..., :3]
        except (SyntaxError, ValueError, OSError):  # what PIL raises for a truncated or foreign file
            blank.append(f"{alt} (not a PNG)")
            continue
        px = rgb.reshape(-1, 3)
        colours, counts = np.unique(px, axis=0, return_counts=True)
        if 1 - counts.max() / len(px) < share:
            blank.append(alt)
    return blank


def png(draw) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    draw(fig, ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def curve_plot(per_seed: list[dict], path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
    for f in per_seed:
        rows = [r for r in f["curve"] if r["verifier"] == "prm"]
        ax.plot([r["tokens"] for r in rows], [r["accuracy"] for r in rows], "o-")
    ax.set_xlabel("tokens")
    fig.savefig(path, format="png")
    plt.close(fig)


def blank_plot(per_seed: list[dict], path) -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 3), dpi=60)  # no axes: one colour
    fig.savefig(path, format="png")
    plt.close(fig)


def nested_measure(budget: str, seed: int, ctx) -> dict:
    """Figures shaped like trickability's and instinct-vs-thinking's: lists per eps, rows of a
    curve, a matrix, long text and a long list."""
    methods = ("greedy", "best-of-n", "beam", "mcts")
    curve = [{"method": m, "verifier": v, "multiple": x, "tokens": 40.0 * x, "accuracy": 0.3 + 0.05 * x + 0.01 * seed}
             for m in methods for v in ("orm", "prm") for x in (1, 4, 16)]  # fmt: skip
    skills = ("copy", "reverse", "sort", "compare")
    return {"learned_gain": 0.25 + 0.01 * seed, "curve": curve, "best_learned": "beam+prm@16x",
            "eps": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3], "softmax_adv_error": [0.1, 0.2, 0.35, 0.5, 0.7, 0.8],
            "accuracy": {a: {b: float(a == b) for b in skills} for a in skills},
            "text_success_within": [0.1 * k for k in range(1, 9)], "per_item": [0.5 + 0.001 * i for i in range(60)],
            "text_definition": "the fewest byte substitutions that keep the true answer and flip the "
                               "model's answer, found by a beam search over positions " * 4,
            "a_very_long_figure_name_without_any_spaces_at_all_for_the_wrapping": 1.0}  # fmt: skip


def nested_claim(cid: str, plot) -> Claim:
    return Claim(id=cid, statement="search with a learned judge beats answering at once " * 5,
                 source="tests", experiment="synthetic nested figures",
                 rule=Rule(metric="learned_gain", op=">", threshold=0.2, noise=0.02, meaning="a gain"),
                 measure=nested_measure, anchor="none", plot=plot)  # fmt: skip


@pytest.fixture
def report(tmp_path) -> Path:
    claims = [fake_claim("wide-wins", [0.3, 0.35, 0.4]), fake_claim("deep-wins", [-0.5]),
              nested_claim("nested-figures", curve_plot), nested_claim("blank-plot", blank_plot)]  # fmt: skip
    with RunStore.open() as store:
        run_claim(claims[0], "full", store)
        run_claim(claims[1], "quick", store)
        write_record(run_claim(claims[2], "full", store), allow_dirty=True)  # recorded: its own plot too
        run_claim(claims[2], "quick", store)
        run_claim(claims[3], "quick", store)
        imported = fake_import(store)  # the "real model" section, with its widest table
        store.put_result("eval", imported, {"corpus": "file:../shared/data/tinyshakespeare.txt", "split": "val",
                                            "context": 512, "max_bytes": 30000, "bpb": 1.68,
                                            "beside": {"xz": 3.3, "xz_given_train": 2.6, "byte_model": {
                                                "bpb": 2.31, "run": "0123456789ab", "how": "imo eval"}}}, [imported])
        store.put_result(CHAT_KIND, imported, {"question": "Why is the sky blue? " * 3,
                                               "answer": "Rayleigh scattering. " * 30}, [imported])
        html = build_report(store, [*claims, fake_claim("never-run", [1.0])])
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    (tmp_path / "out").mkdir()
    return write_report(tmp_path / "out" / "report.html", html)


def test_report_loads_in_chromium(report, tmp_path):
    res = chromium(tmp_path, "dom", "--dump-dom", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    for cid in ("wide-wins", "deep-wins", "nested-figures", "blank-plot", "never-run", "real-model"):
        assert f'id="{cid}"' in dom
    assert len(re.findall(r'<img class="plot"[^>]*src="data:image/png;base64,', dom)) == 5
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


def test_report_fits_the_page_and_its_plots_are_not_blank(report, tmp_path):
    m, dom = measure(tmp_path, report)
    assert len(m["tables"]) > 10 and len(m["cells"]) > 200  # the nested figures were measured, open
    assert layout_problems(m) == []
    # the one claim whose plot draws nothing is caught; the real plots pass
    assert blank_plots(dom) == ["plot of blank-plot"]
    assert len(m["images"]) == 5


def test_the_checkers_fail_on_a_bad_page(tmp_path):
    blank = base64.b64encode(png(lambda fig, ax: ax.set_axis_off())).decode()
    drawn = base64.b64encode(png(lambda fig, ax: ax.plot([0, 1], [1, 0]))).decode()
    page = tmp_path / "bad.html"
    page.write_text(f"""<!DOCTYPE html><html><body style="max-width: 60rem; margin: auto">
<section id="wide"><table><tr><td style="white-space: nowrap">{'wide ' * 400}</td></tr></table></section>
<section id="tall"><table><tr><td>{'<br>tall' * 40}</td></tr></table></section>
<section id="scroller"><div style="overflow-x: auto"><p style="width: 3000px">x</p></div></section>
<img alt="empty" src="data:image/png;base64,{blank}"><img alt="line" src="data:image/png;base64,{drawn}">
<img alt="broken" src="data:image/png;base64,iVBORw0KGgo=">
</body></html>""", encoding="utf-8")  # fmt: skip
    m, dom = measure(tmp_path, page)
    bad = "\n".join(layout_problems(m))
    assert "scrolls sideways" in bad and "a table in wide" in bad and "overflows" in bad
    assert "a cell in tall" in bad and "a div in scroller scrolls sideways" in bad
    assert "image 'broken' did not decode" in bad
    assert blank_plots(dom) == ["empty", "broken (not a PNG)"]
