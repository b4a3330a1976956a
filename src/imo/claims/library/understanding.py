"""Claim `understanding-after-compression` (issue 19): operations on stored facts fade faster than
plain recall of them as a model is compressed (imo.exams.understanding).

A module of its own, so that its code fingerprint covers the exam and the compression code it
imports and nothing of the other claims.

    imo check understanding-after-compression --quick
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imo.claims.plotting import plt, save_figure
from imo.claims.registry import Claim, Context, Rule, register
from imo.exams.textmodel import keyed_on
from imo.exams.understanding import LEARNT, UnderstandingSize, understanding_exam

SIZES = {
    "smoke": UnderstandingSize(n_layer=1, n_embd=16, n_head=2, context_length=32, steps=3, batch_size=4,
                               n_entities=6, group_size=16,
                               levels=(("none", 0.0, 0), ("int8", 0.0, 8), ("prune", 0.5, 0))),
    "quick": UnderstandingSize(steps=400, n_entities=12),
    "full": UnderstandingSize(),
}
FORMS_SHOWN = ("recall", "negation", "swapped", "two-hop")


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    with keyed_on(ctx.code_fingerprint):  # the exam's runs are keyed on this claim's code
        out = understanding_exam(SIZES[budget], seed=seed, store=ctx.store, quiet=ctx.quiet, log=ctx.log)
    gap = float(out["retention_gap"])
    if budget == "smoke" and math.isnan(gap):
        gap = 0.0  # a seconds-long smoke run learns nothing; it checks the plumbing, never evidence
    return {"_runs": [out["run"]], "retention_gap": gap, "gap_defined": not math.isnan(out["retention_gap"]),
            "learnt_forms": out["learnt_forms"], "levels": out["levels"], "retention": out["retention"],
            "n_tests": out["n_tests"], "params": out["params"]}


def plot(per_seed: list[dict[str, Any]], path) -> None:
    """Left: accuracy of each form at each compression level (mean of seeds). Right: retention of
    recall and of the learnt altered forms, per seed."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    names = [lv["level"] for lv in per_seed[0]["levels"]]
    x = np.arange(len(names))
    for i, form in enumerate(FORMS_SHOWN):
        ys = [np.mean([100 * f["levels"][j][form] for f in per_seed]) for j in range(len(names))]
        ax.plot(x, ys, "o-", color=f"C{i}", label=form)
    ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("exact-answer accuracy %")
    ax.set_title("held-out entities: recall and altered questions", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    for k, f in enumerate(per_seed):
        r = f["retention"]
        xs = np.arange(1, len(r) + 1)
        bx.plot(xs, [v["recall_retention"] for v in r], "o-", color="C0", alpha=0.7,
                label="recall" if k == 0 else None)
        alt = [v["altered_retention"] for v in r]
        if not all(math.isnan(a) for a in alt):
            bx.plot(xs, alt, "s--", color="C3", alpha=0.7, label="altered (learnt forms)" if k == 0 else None)
    bx.set_xticks(np.arange(1, len(names)), names[1:], rotation=35, ha="right", fontsize=8)
    bx.axhline(1.0, color="gray", lw=0.8)
    bx.set_ylabel("score above chance / uncompressed score")
    bx.set_title("retention, per seed", fontsize=10)
    bx.legend(fontsize=8)
    bx.grid(True, alpha=0.3)
    save_figure(fig, path)


@register
def understanding_after_compression() -> Claim:
    return Claim(
        id="understanding-after-compression",
        statement="Understanding shows in operating on what was compressed: as a model is compressed, its "
                  "answers to altered questions about stored facts fall faster than its plain recall of them.",
        source="notes: \"best way to measure understanding is operation/alteration after compression\" (issue 19)",
        experiment="The true-negatives exam's fact base (40 entities, 5 attributes, about half present) plus a "
                   "friend relation (a seeded derangement), as byte lines. For half of the entities the training "
                   "text also holds altered questions with their answers, worked step written out: negations "
                   "(`not blue? bora color: red yes`), swapped roles (`kemi friend of: bora`) and two hops "
                   "(`pet of friend? bora friend: kemi pet: owl`). One byte model per seed (2 x 64, RoPE, context "
                   "64, 3,000 steps of batch 16, Adam 3e-3). The other half's plain facts (recall) and altered "
                   "questions (never seen in any form) are answered greedily, whole answers exact, before and "
                   "after compression with imo's tools: int8, int4 (groups of 32), global magnitude pruning of "
                   "the block matrices at 10/20/30/40/50/60% sparsity, and 40% pruning plus int4. Retention = "
                   "accuracy / uncompressed accuracy. Metric: recall retention minus the mean retention of the "
                   "learnt altered forms (uncompressed accuracy >= 0.25), averaged over the nine compressed "
                   "levels; undefined (inconclusive) if recall or no altered form is learnt.",
        anchor="No published figure for this set-up. Related: Hooker et al. 2019, \"What do compressed deep neural "
               "networks forget?\" (pruning costs a small set of examples most, the long tail); the two-hop and "
               "reversal failures of transformers trained on facts (Berglund et al. 2023, \"The Reversal Curse\"; "
               "Wang et al. 2024, \"Grokked Transformers are Implicit Reasoners\")",
        rule=Rule(metric="retention_gap", op=">", threshold=0.0, effect=0.05, noise=0.1,
                  meaning="averaged over the compression levels, the altered questions keep at least 5 points "
                          "less of their uncompressed score than plain recall keeps of its own"),
        measure=measure, plot=plot, tags=("learning", "compression", "exams"))


__all__ = ["LEARNT", "SIZES", "measure", "plot"]
