"""The claims report: one self-contained HTML page with every claim, its rule, figures, plot and
verdict. Plots are embedded as base64 PNG and the CSS is inline: no scripts, no external
resources, so the file can be mailed or archived and reads the same anywhere.

    html = build_report(store, [CLAIMS.get(i) for i in CLAIMS]); write_report(Path("r.html"), html)
"""

from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from imo.claims.registry import SEEDS, Claim
from imo.claims.report_tables import CSS as TABLE_CSS
from imo.claims.report_tables import figures_html, fmt
from imo.claims.runner import RESULT_KIND
from imo.errors import ImoError
from imo.runs.store import RunStore, git_state

CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d1d1f; background: #fff; overflow-wrap: anywhere; }
h1 { margin-bottom: .2rem; } h2 { margin: 0 0 .3rem; font-size: 1.25rem; }
.meta, .small { color: #555; font-size: .9rem; }
section.claim { border: 1px solid #d8d8de; border-radius: 8px; padding: 1rem 1.2rem; margin: 1.2rem 0; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; max-width: 100%; }
th, td { border: 1px solid #d8d8de; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: 8rem 1fr; gap: .2rem 1rem; margin: .5rem 0; }
dt { font-weight: 600; color: #444; } dd { margin: 0; }
.badge { display: inline-block; padding: .1rem .6rem; border-radius: 1rem; font-weight: 600;
         font-size: .85rem; color: #fff; white-space: nowrap; }
.v-supported { background: #1a7f37; } .v-refuted { background: #cf222e; }
.v-inconclusive { background: #bf8700; } .v-error { background: #6e40c9; }
.v-unchecked { background: #8c959f; }
.badge.smoke { background: #fff; color: #57606a; border: 2px dashed #8c959f; }
img.plot { max-width: 100%; border: 1px solid #eee; margin-top: .5rem; }
details { margin: .3rem 0; } summary { cursor: pointer; }
pre { background: #f6f8fa; padding: .6rem; white-space: pre-wrap; font-size: .8rem; }
.legend { background: #f6f8fa; border: 1px solid #d8d8de; border-radius: 8px; padding: .6rem 1rem; }
.none { padding: 1rem; background: #fff8c5; border: 1px solid #d4a72c; border-radius: 8px; }
table.models th, table.models td.num { overflow-wrap: normal; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imo claims report</title>
<style>{css}{table_css}</style>
</head>
<body>
<header>
<h1>imo: claims report</h1>
<p class="meta">generated {date} (UTC) from commit {commit}; run store {store}</p>
<p>imo is a laboratory for small transformer language models. Each opinion in its source notes is
a <em>claim</em>: a registered experiment whose metric and decision rule were stated before it ran.
The program measures it and answers <b>supported</b>, <b>refuted</b> or <b>inconclusive</b>;
no verdict is written by hand.</p>
<div class="legend" id="legend">
<p><b>How to read the verdicts.</b> Every rule names a target: its threshold plus the smallest
effect that matters, both stated before the run. <b>supported</b>: the whole band around the
estimate lies beyond the target; <b>refuted</b>: the whole band lies short of it; otherwise
<b>inconclusive</b>.</p>
<ul class="small">
<li><b>recorded verdict</b>: the evidence, from <code>imo check ID --full --record</code>: {full}
or more seeds, the band is the 95% Student t interval of their mean. It is committed in
<code>evidence/&lt;claim-id&gt;.json</code> with its commit, code fingerprint, machine and date, and
marked <i>stale</i> once the code it measured has changed. A claim without that file shows
<b>no full evidence yet</b>, whatever was run locally.</li>
<li><b>preview</b>, never a verdict: the newest local check on this machine, usually
<code>--quick</code> ({quick} seed, the band is the rule's pre-stated noise band around the single
value). It is shown beside the recorded verdict and flagged where the two disagree; the record's
seeds and budget are the evidence.</li>
<li><b>smoke</b>: tiny sizes, seconds, for tests only; never evidence, shown dashed.</li>
</ul>
</div>
</header>
<main>
{summary}
{sections}
{real_model}
{properties}
</main>
</body>
</html>
"""


@dataclass
class Entry:
    claim: Claim
    row: dict | None  # the newest local result (store.results row): a preview
    plot_png: bytes | None = None
    record: dict | None = None  # the recorded full evidence (evidence/<id>.json)
    record_png: bytes | None = None  # the claim's plot drawn from the recorded figures
    record_plot_error: str | None = None


def _badge(payload: dict | None) -> str:
    """A local result's badge: always marked as a preview (smoke: not evidence)."""
    if payload is None:
        return '<span class="badge v-unchecked">not yet checked</span>'
    v = payload.get("verdict", "error")
    if payload.get("budget") == "smoke":
        return f'<span class="badge smoke">{escape(v)} (smoke, not evidence)</span>'
    return f'<span class="badge v-{escape(v)} preview">{escape(v)} ({escape(str(payload.get("budget")))} preview)</span>'


def _record_badge(record: dict | None) -> str:
    if record is None:
        return '<span class="badge v-unchecked">no full evidence yet</span>'
    v = record.get("verdict", "error")
    stale = " (stale: the code changed since)" if record.get("stale") else ""
    return f'<span class="badge v-{escape(v)}">{escape(v)}{stale}</span>'


def _provenance(record: dict) -> str:
    prov = record.get("provenance") or {}
    m = prov.get("machine") or {}
    rows = [
        ("commit", (prov.get("commit") or "-")[:12] + (" (recorded with --allow-dirty)" if prov.get("allow_dirty") else "")),
        ("code fingerprint", prov.get("fingerprint", "-")),
        ("machine", f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, torch {m.get('torch', '?')}"),
        ("seeds", ", ".join(str(x) for x in prov.get("seeds", [])) or "-"),
        ("date", f"{prov.get('date', '-')}, {prov.get('minutes', 0)} min of measurement"),
    ]
    return '<table class="prov">' + "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows) + "</table>"


def _commit(row: dict) -> str:
    c = row.get("git_commit") or "-"
    return c[:12] + (" (dirty)" if row.get("git_dirty") else "")


def _decision_table(p: dict) -> str:
    if p.get("verdict") == "error":
        return ""
    band = p.get("band") or ("95% interval" if p.get("budget") == "full" and p.get("seeds", 0) >= 3
                             else "noise band")
    low, high = p.get("low"), p.get("high")
    valid = all(isinstance(x, int | float) and math.isfinite(x) for x in (low, high))
    rows = [
        (f"mean of {p.get('metric')}", fmt(p.get("mean"))),
        # no "[nan, nan]": a band that could not be formed says so (the reason is in "why")
        (band, f"[{fmt(low)}, {fmt(high)}]" if valid else "none: the metric has no valid value"),
        ("seeds", f"{p.get('seeds')}" + (f" (reused: {p['reused_seeds']})" if p.get("reused_seeds") else "")),
        ("why", p.get("reason", "")),
    ]
    return "<table>" + "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows
    ) + "</table>"


def _section(e: Entry) -> str:
    from imo.claims.evidence import disagrees

    c = e.claim
    parts = [
        f'<section class="claim" id="{escape(c.id)}">',
        f"<h2>{escape(c.id)} {_record_badge(e.record)}</h2>",
        f"<p>{escape(c.statement)}</p>",
        "<dl>",
        f"<dt>source</dt><dd>{escape(c.source)}</dd>",
        f"<dt>experiment</dt><dd>{escape(c.experiment)}</dd>",
        f"<dt>rule</dt><dd>{escape(c.rule.describe())}</dd>",
        f"<dt>falsifier</dt><dd>{escape(c.rule.falsifier)}</dd>",
        f"<dt>anchor</dt><dd>{escape(c.anchor or 'none')}</dd>",
        "</dl>",
    ]
    if e.record is not None:
        parts += ["<h3>recorded full evidence</h3>", figures_html(e.record.get("figures") or []),
                  _decision_table(e.record), _provenance(e.record),
                  _plot(e.record_png, f"plot of {c.id}, recorded", e.record_plot_error)]  # fmt: skip
    else:
        parts.append(f'<p class="small">no full evidence yet: <code>imo check {escape(c.id)} --full '
                     "--record</code> records it.</p>")
    if e.row is None:
        parts += ['<p class="small">no local preview: <code>imo check '
                  f"{escape(c.id)}</code> measures one.</p>", "</section>"]  # fmt: skip
        return "\n".join(x for x in parts if x)
    p, row = e.row["payload"], e.row
    when = (row.get("created_at") or "")[:19].replace("T", " ")
    flag = (' <span class="badge v-error">disagrees with the recorded verdict</span>'
            if disagrees(e.record, e.row) else "")  # fmt: skip
    parts += [
        f"<h3>preview {_badge(p)}{flag}</h3>",
        '<p class="small">the newest local check: never a verdict, and where it disagrees '
        "with the record, the record's seeds and budget are the evidence.</p>",
        "<dl>",
        f"<dt>budget</dt><dd>{escape(str(p.get('budget')))}</dd>",
        f"<dt>checked</dt><dd>{escape(when)} (UTC), commit {escape(_commit(row))}, "
        f"{float(p.get('duration_s') or 0.0):.1f} s of measurement</dd>",
    ]
    if p.get("runs"):
        parts.append(f"<dt>runs</dt><dd><code>{escape(' '.join(p['runs']))}</code></dd>")
    parts.append("</dl>")
    if p.get("verdict") == "error":
        parts.append(f'<p class="small"><b>error:</b> {escape(p.get("error", ""))}</p>')
        if p.get("traceback"):
            parts.append(f"<details><summary>traceback</summary><pre>{escape(p['traceback'])}</pre></details>")
    parts += [figures_html(p.get("figures") or []), _decision_table(p)]
    why = None
    if not e.plot_png and (p.get("plot") or p.get("plot_error")):
        why = p.get("plot_error") or f"plot file {p['plot']} is missing"
    parts.append(_plot(e.plot_png, f"plot of {c.id}", why))
    parts.append("</section>")
    return "\n".join(x for x in parts if x)


def _plot(png: bytes | None, alt: str, why: str | None) -> str:
    if png:
        b64 = base64.b64encode(png).decode("ascii")
        return f'<img class="plot" alt="{escape(alt)}" src="data:image/png;base64,{b64}">'
    return f'<p class="small">no plot: {escape(why)}</p>' if why else ""


def _draw_record(claim: Claim, record: dict) -> tuple[bytes | None, str | None]:
    """The claim's own plot of its recorded per-seed figures (the record keeps figures, not
    pictures), or the one-line reason it could not be drawn."""
    if claim.plot is None or not record.get("figures"):
        return None, None
    import tempfile

    from imo.claims.runner import _draw

    with tempfile.TemporaryDirectory(prefix="imo-report-") as tmp:
        try:
            path = _draw(claim, record["figures"], Path(tmp) / f"{claim.id}.png")
            return path.read_bytes(), None
        except Exception as e:  # the record stands without its picture
            return None, f"{type(e).__name__}: {e}".splitlines()[0]


def _summary(entries: list[Entry]) -> str:
    from imo.claims.evidence import disagrees

    if not entries:
        return '<p class="none">No results yet: no claims are registered.</p>'
    note = ""
    if not any(e.row or e.record for e in entries):
        note = ('<p class="none">No results yet: no claim has been checked yet. '
                "<code>imo check --all</code> measures previews; <code>imo check ID --full "
                "--record</code> records evidence.</p>")  # fmt: skip
    rows = "".join(
        f'<tr><td><a href="#{escape(e.claim.id)}">{escape(e.claim.id)}</a></td>'
        f"<td>{_record_badge(e.record)}</td>"
        f"<td>{_badge(e.row['payload'] if e.row else None)}"
        f"{' (disagrees)' if disagrees(e.record, e.row) else ''}</td></tr>"
        for e in entries
    )
    return (f"{note}<table><tr><th>claim</th><th>recorded verdict</th><th>local preview</th></tr>"
            f"{rows}</table>")  # fmt: skip


def _properties() -> str:
    """Verified properties: certainties backed by tests, not claims (no verdict, no votes)."""
    from imo.claims.properties import PROPERTIES

    items = "".join(
        f"<li><b>{escape(p.name)}</b>: {escape(p.statement)}<br><span class=\"small\">tests: "
        + ", ".join(f"<code>{escape(t.split('::')[-1])}</code>" for t in p.tests)
        + f" ({escape(p.tests[0].split('::')[0])})</span></li>"
        for p in PROPERTIES
    )
    return ('<section class="claim" id="verified-properties"><h2>verified properties</h2>'
            "<p>Mathematical certainties, decided by tests that run with <code>make test</code>, "
            f"not opinions measured by seeds.</p><ul>{items}</ul></section>")


def render(entries: list[Entry], store_path: str = "", commit: str | None = None,
           date: str | None = None, real_model: str = "") -> str:  # fmt: skip
    """The page for these claims and results (pure: no files are read); `real_model`: the
    imported models' section (imo/claims/report_models.py)."""
    date = date or datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return PAGE.format(
        css=CSS,
        table_css=TABLE_CSS,
        date=escape(date),
        commit=escape(commit or "unknown"),
        store=escape(store_path),
        quick=SEEDS["quick"],
        full=SEEDS["full"],
        summary=_summary(entries),
        sections="\n".join(_section(e) for e in entries),
        real_model=real_model,
        properties=_properties(),
    )


def build_report(store: RunStore, claims: list[Claim]) -> str:
    """Pick each claim's result from the store, read its plot, render the page."""
    from imo.claims.evidence import load_record, preview_row

    entries = []
    for c in claims:
        row = preview_row(store.results(RESULT_KIND, c.id), c)
        png = None
        plot = row["payload"].get("plot") if row else None
        if plot and Path(plot).is_file():
            png = Path(plot).read_bytes()
        record = load_record(c)
        record_png, record_why = _draw_record(c, record) if record is not None else (None, None)
        entries.append(Entry(c, row, png, record, record_png, record_why))
    # the commit of the code that drew the page; each claim shows the commit it was checked at
    commit, dirty = git_state(Path(__file__).resolve().parent)
    if commit:
        commit = commit[:12] + (" (dirty)" if dirty else "")
    from imo.claims.report_models import real_model_section

    return render(entries, str(store.path), commit, real_model=real_model_section(store))


def write_report(path: Path, html: str, force: bool = False) -> Path:
    """Write atomically; an existing file is replaced only with force (else ImoError)."""
    path = Path(path)
    if path.is_dir():
        raise ImoError(f"{path} is a folder; give a file name, e.g. -o {path / 'report.html'}")
    if not path.parent.is_dir():
        raise ImoError(f"folder {path.parent} does not exist")
    if path.exists() and not force:
        raise ImoError(f"{path} exists; use --force to overwrite it")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(html)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name appeared meanwhile: never clobbers
            except FileExistsError:
                raise ImoError(f"{path} exists; use --force to overwrite it") from None
            except OSError:  # a file system without hard links
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
