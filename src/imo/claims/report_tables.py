"""The report's figure tables: per-seed figures as HTML that fits the page.

Scalar figures go in one table with a row per figure and a column per seed (there are few seeds
and many figures, so this way round it stays narrow). Short lists and dicts of scalars sit in the
same table as compact lists. Larger nested figures (a list of rows, a dict of dicts) each get a
small table of their own under the main one, all seeds together where their shapes allow. No
cell ever shows a Python repr, and every cell is capped in height (it scrolls inside if it must).

    html = figures_html(payload["figures"])
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

COMPACT_ITEMS = 12  # a list or dict of scalars up to this long is shown inline, in its cell
LONG_TEXT = 80  # a text figure longer than this is a note under the table, not a cell

CSS = """
table.figs { width: 100%; table-layout: fixed; }
table.figs th:first-child { width: 30%; }
table.nested { font-size: .8rem; margin: .2rem 0; max-width: 100%; }
.cell { max-height: 10rem; overflow-y: auto; }
p.note { margin: .3rem 0; font-size: .85rem; }
.nest-group { display: flex; flex-wrap: wrap; gap: .2rem 1.2rem; max-width: 100%; }
.nest-group > div { max-width: 100%; min-width: 0; }
ul.compact { list-style: none; margin: 0; padding: 0; }
ul.compact li { display: inline; } ul.compact li + li::before { content: ", "; }
"""


def fmt(v: Any) -> str:
    """A scalar for a cell: floats to 4 significant figures, nan and infinities spelled."""
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v).lower()
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def compact(v: Any) -> bool:
    """A short list or dict of scalars: shown inline as a compact list."""
    if isinstance(v, list):
        return len(v) <= COMPACT_ITEMS and all(scalar(x) for x in v)
    if isinstance(v, dict):
        return len(v) <= COMPACT_ITEMS and all(scalar(x) for x in v.values())
    return False


def _td(inner: str, num: bool = True) -> str:
    cls = ' class="num"' if num else ""
    return f'<td{cls}><div class="cell">{inner}</div></td>'


def inline(v: Any) -> str:
    """A scalar, or a compact list ("0.1, 0.2") / dict ("a: 1, b: 2"), as cell HTML."""
    if scalar(v):
        return escape(fmt(v))
    items = ([escape(fmt(x)) for x in v] if isinstance(v, list)
             else [f"{escape(str(k))}: {escape(fmt(x))}" for k, x in v.items()])  # fmt: skip
    if not items:
        return "(none)"
    return '<ul class="compact">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>"


def small_table(v: Any) -> str:
    """Any nested value as a small table: a list of dicts by rows, a dict of dicts as a matrix,
    other dicts by key, lists item by item; deeper values recurse, compact ones stay inline."""
    if scalar(v) or compact(v):
        return inline(v)
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        keys = _row_keys(v)
        head = "".join(f"<th>{escape(str(k))}</th>" for k in keys)
        rows = "".join("<tr>" + "".join(_td(small_table(x.get(k, ""))) for k in keys) + "</tr>" for x in v)
        return f'<table class="nested"><tr>{head}</tr>{rows}</table>'
    if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
        cols = list(dict.fromkeys(k for x in v.values() for k in x))
        head = "<th></th>" + "".join(f"<th>{escape(str(c))}</th>" for c in cols)
        rows = "".join(f"<tr><th>{escape(str(k))}</th>" + "".join(_td(small_table(x.get(c, ""))) for c in cols)
                       + "</tr>" for k, x in v.items())  # fmt: skip
        return f'<table class="nested"><tr>{head}</tr>{rows}</table>'
    if isinstance(v, dict):
        rows = "".join(f"<tr><th>{escape(str(k))}</th>{_td(small_table(x))}</tr>" for k, x in v.items())
        return f'<table class="nested">{rows}</table>'
    rows = "".join(f"<tr><th>{i}</th>{_td(small_table(x))}</tr>" for i, x in enumerate(v))
    return f'<table class="nested">{rows}</table>'


def _row_keys(rows: list[dict]) -> list[str]:
    """The columns of a list of rows: text columns (labels) first, then the rest, in order."""
    keys = list(dict.fromkeys(k for x in rows for k in x))
    label = [k for k in keys if all(isinstance(x.get(k), str) for x in rows)]
    return label + [k for k in keys if k not in label]


def _rows_by_seed(values: list[Any]) -> str | None:
    """Lists of rows from every seed as one table, or None if some seed's value is not a list of
    dicts. Where every seed lists the same items in the same order (its text columns and at least
    one column agree row by row), row i of all seeds is one row: a figure equal on every seed is shown once, else its values seed by seed ("0.3, 0.4").
    Otherwise the rows are stacked with a seed column."""
    if not all(isinstance(v, list) and v and all(isinstance(x, dict) for x in v) for v in values):
        return None
    keys = _row_keys([x for v in values for x in v])
    aligned = len(values) > 1 and len({len(v) for v in values}) == 1
    if aligned:  # the same items in the same order: every text column, and one at least, agrees
        same = [k for k in keys if all(v[i].get(k) == values[0][i].get(k) for v in values for i in range(len(v)))]
        text = [k for k in keys if any(isinstance(x.get(k), str) for v in values for x in v)]
        aligned = bool(same) and set(text) <= set(same)
    if not aligned:
        head = "<th>seed</th>" + "".join(f"<th>{escape(str(k))}</th>" for k in keys)
        rows = "".join(
            f"<tr>{_td(str(seed))}" + "".join(_td(small_table(x.get(k, ""))) for k in keys) + "</tr>"
            for seed, v in enumerate(values) for x in v
        )  # fmt: skip
        return f'<table class="nested"><tr>{head}</tr>{rows}</table>'

    def cell(i: int, k: str) -> str:
        per_seed = [v[i].get(k, "") for v in values]
        if all(x == per_seed[0] for x in per_seed):
            return small_table(per_seed[0])
        return inline(per_seed) if all(scalar(x) for x in per_seed) else small_table(per_seed)

    head = "".join(f"<th>{escape(str(k))}</th>" for k in keys)
    rows = "".join("<tr>" + "".join(_td(cell(i, k)) for k in keys) + "</tr>" for i in range(len(values[0])))
    seeds = ", ".join(str(s) for s in range(len(values)))
    return (f'<p class="small">one row per item; where the seeds differ, a cell lists seed {seeds} '
            f'in turn</p><table class="nested"><tr>{head}</tr>{rows}</table>')


def _nested_block(name: str, values: list[Any]) -> str:
    body = _rows_by_seed(values)
    if body is None:  # one small table per seed, side by side where the page allows
        body = '<div class="nest-group">' + "".join(
            f'<div><p class="small">seed {seed}</p>{small_table(v)}</div>' for seed, v in enumerate(values)
        ) + "</div>"
    return f"<details><summary>{escape(name)}</summary>{body}</details>"


def _long_text(values: list[Any]) -> bool:
    return all(isinstance(v, str) for v in values) and any(len(v) > LONG_TEXT for v in values)


def _note(name: str, values: list[str]) -> str:
    """A long text figure (a definition, say) as a paragraph: once if every seed has the same."""
    if len(set(values)) == 1:
        return f'<p class="note"><b>{escape(name)}</b>: {escape(values[0])}</p>'
    return "".join(f'<p class="note"><b>{escape(name)}</b>, seed {s}: {escape(v)}</p>' for s, v in enumerate(values))


def figures_html(figures: list[dict]) -> str:
    """The per-seed figures of a result: the main table (figure by seed), the long texts as
    notes under it, then the nested blocks."""
    if not figures:
        return ""
    keys = list(dict.fromkeys(k for f in figures for k in f))
    notes = [k for k in keys if _long_text([f.get(k) for f in figures])]
    main = [k for k in keys if k not in notes and all(scalar(f.get(k)) or compact(f.get(k)) for f in figures)]
    nested = [k for k in keys if k not in main and k not in notes]
    head = "<th>figure</th>" + "".join(f"<th>seed {s}</th>" for s in range(len(figures)))

    def row(k: str) -> str:
        vals = [f.get(k) for f in figures]
        if len(figures) > 1 and all(k in f for f in figures) and all(v == vals[0] for v in vals):
            # the same on every seed (a setting, a size list): once, across the seed columns
            return f'<td class="num" colspan="{len(figures)}"><div class="cell">{inline(vals[0])} (every seed)</div></td>'
        return "".join(_td(inline(f[k])) if k in f else "<td></td>" for f in figures)

    rows = "".join(f"<tr><th>{escape(k)}</th>{row(k)}</tr>" for k in main)
    out = [f'<table class="figs"><tr>{head}</tr>{rows}</table>']
    out += [_note(k, [f.get(k) for f in figures]) for k in notes]
    out += [_nested_block(k, [f.get(k) for f in figures]) for k in nested]
    return "".join(out)
