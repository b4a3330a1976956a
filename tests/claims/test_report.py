"""The HTML report: every claim, embedded plots, "not yet checked", smoke and error results
marked, an empty store said plainly, and no file overwritten without --force."""

import base64
import dataclasses
import os
import re
import subprocess
import sys

import pytest
import typer
from claim_fakes import fake_claim
from typer.testing import CliRunner

from imo import paths
from imo.claims.cli import report_command
from imo.claims.evidence import write_record
from imo.claims.report import build_report, write_report
from imo.claims.runner import run_claim
from imo.errors import ImoError
from imo.runs.store import RunStore

EXTERNAL = re.compile(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", re.I)


def claims_and_results():
    good = fake_claim("wide-wins", [0.3, 0.35, 0.4], statement="width beats depth <b>&</b> more")
    bad = fake_claim("deep-wins", [-0.5])
    never = fake_claim("never-run", [1.0])
    broken = fake_claim("broken", [1.0], fail_at=lambda s: FileNotFoundError("no corpus 'x'"))
    with RunStore.open() as store:
        write_record(run_claim(good, "full", store), allow_dirty=True)
        run_claim(bad, "quick", store)
        run_claim(broken, "quick", store)
        html = build_report(store, [good, bad, never, broken])
    return html


def test_report_has_every_claim_with_its_evidence():
    html = claims_and_results()
    for cid in ("wide-wins", "deep-wins", "never-run", "broken"):
        assert f'<section class="claim" id="{cid}">' in html
    assert "width beats depth &lt;b&gt;&amp;&lt;/b&gt; more" in html  # escaped, not markup
    assert 'class="badge v-supported"' in html  # the recorded full verdict
    assert 'class="badge v-refuted preview">refuted (quick preview)' in html  # a preview, marked
    assert "no full evidence yet" in html  # never a quick verdict in a record's place
    assert "code fingerprint" in html and "cores, torch" in html  # the record's provenance
    assert "not yet checked" in html and 'class="badge v-error' in html
    assert "FileNotFoundError: no corpus &#x27;x&#x27;" in html
    assert "95% interval" in html and "noise band" in html  # full and quick decisions
    assert "run-wide-wins-2" in html  # the runs behind the figures
    assert "supported if gap &gt; 0" in html  # the rule, stated
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # the two previews' plots and the record's own, drawn from its figures; the broken claim
    # has no plot, the unchecked one no result
    assert len(images) == 3 and 'alt="plot of wide-wins, recorded"' in html
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images)
    # self-contained: no scripts, nothing fetched from elsewhere
    assert "<script" not in html.lower() and not EXTERNAL.search(html)
    assert "No results yet" not in html


def test_smoke_results_are_marked_not_evidence():
    c = fake_claim("smoky", [1.0])
    with RunStore.open() as store:
        run_claim(c, "smoke", store)
        html = build_report(store, [c])
    assert "supported (smoke, not evidence)" in html and 'class="badge smoke"' in html


def test_a_missing_plot_file_is_said_not_crashed():
    c = fake_claim("lost-plot", [1.0])
    with RunStore.open() as store:
        os.remove(run_claim(c, "quick", store)["plot"])
        html = build_report(store, [c])
    assert "is missing" in html and "data:image/png" not in html


def test_empty_store_says_there_are_no_results():
    with RunStore.open() as store:
        html = build_report(store, [fake_claim("a", [1.0])])
        assert "No results yet: no claim has been checked yet" in html and "no full evidence yet" in html
        assert "preview</b>, never a verdict" in html  # the legend, even from an empty store
        assert "No results yet: no claims are registered" in build_report(store, [])


def test_write_report_refuses_to_overwrite(tmp_path):
    (tmp_path / "out").mkdir()  # a folder of its own: the per-test store lives in tmp_path too
    out = tmp_path / "out" / "report.html"
    assert write_report(out, "<p>one</p>") == out
    with pytest.raises(ImoError, match="exists; use --force"):
        write_report(out, "<p>two</p>")
    assert out.read_text() == "<p>one</p>"
    write_report(out, "<p>two</p>", force=True)
    assert out.read_text() == "<p>two</p>"
    assert os.listdir(out.parent) == ["report.html"]  # no temporary files left behind
    with pytest.raises(ImoError, match="does not exist"):
        write_report(tmp_path / "nowhere" / "r.html", "x")


def test_report_command(tmp_path, fake_registry):
    fake_registry(fake_claim("one", [1.0]))
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("unused")(lambda: None)  # two commands, so "report" is a sub-command
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out) and 'id="one"' in out.read_text()
    res = CliRunner().invoke(app, ["report", "-o", str(out)])
    assert isinstance(res.exception, ImoError) and "--force" in str(res.exception)
    assert CliRunner().invoke(app, ["report", "-o", str(out), "--force"]).exit_code == 0


def test_cli_report_refuses_overwrite_with_exit_2(tmp_path):
    env = {**os.environ, paths.STORE_ENV: str(paths.store_file())}
    out = tmp_path / "report.html"
    cmd = [sys.executable, "-m", "imo", "report", "-o", str(out)]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cmd, *extra], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip

    first = run()
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(out) and "imo: claims report" in out.read_text()
    second = run()
    assert second.returncode == 2 and "--force" in second.stderr and "Traceback" not in second.stderr
    assert run("--force").returncode == 0


def test_a_preview_that_disagrees_with_the_record_is_flagged():
    c = fake_claim("flip", [0.3, 0.35, 0.4])
    with RunStore.open() as store:
        write_record(run_claim(c, "full", store), allow_dirty=True)
        flipped = fake_claim("flip", [-0.5])
        run_claim(flipped, "quick", store)
        html = build_report(store, [c])
    assert "disagrees with the recorded verdict" in html and 'class="badge v-supported"' in html


def test_verified_properties_are_listed_with_tests_that_exist():
    from pathlib import Path

    from imo.claims import load_all, registry
    from imo.claims.properties import PROPERTIES

    with RunStore.open() as store:
        html = build_report(store, [])
    assert 'id="verified-properties"' in html
    root = Path(__file__).resolve().parents[2]
    load_all()
    assert "position-breaks-symmetry" not in registry.CLAIMS.names()  # a property, not a claim
    for p in PROPERTIES:
        assert escape_name(p.name) in html
        for node in p.tests:
            path, name = node.split("::")
            assert f"def {name}(" in (root / path).read_text(), node


def escape_name(text: str) -> str:
    import html

    return html.escape(text)


def test_nested_figures_are_small_tables_not_reprs():
    from imo.claims.report_tables import figures_html

    seeds = [{"gap": 0.5 + s, "models": [{"layers": 1, "bpb": 2.0 + s}, {"layers": 2, "bpb": 1.5}],
              "ranked": [{"name": n, "score": 1.0} for n in (["a", "b"] if s else ["b", "a"])],
              "by_eps": {"0.1": 0.2, "0.25": 0.9}, "shots": [1, 2], "long": list(range(40)),
              "accuracy": {"copy": {"copy": 1.0, "rev": 0.1}, "rev": {"copy": 0.0, "rev": 0.9}},
              "text": "a definition, " * 30, "ok": True} for s in range(3)]
    html = figures_html(seeds)
    assert "{" not in html and "[" not in html and "'" not in html  # no dict or list repr anywhere
    main = html.split("</table>")[0]  # the figure-by-seed table: a column per seed
    assert "<th>seed 2</th>" in main and "<th>gap</th>" in main and "2.5" in main
    # a short dict: a compact list, inline; the same on every seed: once, across the seed columns
    assert '<td class="num" colspan="3"><div class="cell"><ul class="compact"><li>0.1: 0.2</li><li>0.25: 0.9</li></ul> (every seed)' in main
    assert "<li>1</li><li>2</li>" in main and "<th>ok</th>" in main and "true" in main
    assert "<th>models</th>" not in main and "<th>long</th>" not in main
    # the same rows on every seed: one row per item, a figure that differs listed seed by seed
    models = html.split("<summary>models</summary>")[1].split("</details>")[0]
    assert "one row per item" in models and "<th>layers</th><th>bpb</th>" in models
    assert models.count("<tr>") == 3 and "<li>2</li><li>3</li><li>4</li>" in models
    assert '<div class="cell">1.5</div>' in models  # equal on every seed: shown once
    # rows in another order per seed: stacked, with a seed column (text columns first)
    ranked = html.split("<summary>ranked</summary>")[1].split("</details>")[0]
    assert "<tr><th>seed</th><th>name</th><th>score</th></tr>" in ranked and ranked.count("<tr>") == 7
    assert "<summary>accuracy</summary>" in html and "<th>rev</th>" in html  # a matrix per seed
    assert "<summary>long</summary>" in html and "<th>39</th>" in html  # too long for one cell
    assert html.count('<div class="cell">') == html.count("<td") - html.count("<td></td>")
    one = figures_html(seeds[:1])  # one seed: nothing to merge
    assert "colspan" not in one and "<li>0.1: 0.2</li>" in one
    assert figures_html([]) == ""


def test_a_claim_without_a_record_never_shows_a_quick_verdict_in_its_place():
    c = fake_claim("only-quick", [-0.5])
    with RunStore.open() as store:
        run_claim(c, "quick", store)
        run_claim(c, "full", store)  # a local full run, not recorded: still a preview
        html = build_report(store, [c])
    section = html.split('<section class="claim" id="only-quick">')[1]
    heading = section.split("</h2>")[0]
    assert "no full evidence yet" in heading and "refuted" not in heading
    summary_row = html.split('<a href="#only-quick">only-quick</a></td>')[1].split("</tr>")[0]
    record_cell, preview_cell = summary_row.split("</td>")[:2]
    assert "no full evidence yet" in record_cell and "refuted" not in record_cell
    assert "refuted (full preview)" in preview_cell
    assert "recorded full evidence" not in section and 'id="legend"' in html


def test_a_record_that_cannot_be_drawn_says_why():
    c = fake_claim("bad-plot", [0.3, 0.35, 0.4])
    with RunStore.open() as store:
        write_record(run_claim(c, "full", store), allow_dirty=True)

        def broken(per_seed, path):
            raise KeyError("eps")

        html = build_report(store, [dataclasses.replace(c, plot=broken)])
    assert "no plot: KeyError: &#x27;eps&#x27;" in html


def test_a_band_without_valid_values_is_said_not_printed_as_nan():
    c = fake_claim("no-value", [float("nan")])
    with RunStore.open() as store:
        run_claim(c, "quick", store)
        html = build_report(store, [c])
    assert "none: the metric has no valid value" in html and "[nan, nan]" not in html
