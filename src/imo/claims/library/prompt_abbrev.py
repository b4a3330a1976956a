"""`prompt-abbreviations`: the notes' "AI sucks at Abbreviation, expand all abbreviation before
understanding task", on SmolLM2.

The `abbrev` split writes values abbreviated ("34 y/o", "mgr", "CEO", "Mar.", "approx. 4223",
"4.0 kg") while the truth is the expansion ("manager", "March"). Two arms ask the same items with
the builder's default prompt, 8 worked examples of the same split (expanded too in the expanding
arm) and 64 answer tokens: the context as written, and the context after
imo.prompt.abbrev.AbbreviationTable.default().expand. The metric is accuracy over all fields,
expanded minus as written; a seed whose expanded arm finds under one stated value in five
(TPR < 0.2) gives no valid measurement.

    imo check prompt-abbreviations --quick
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402

from imo.claims.library._prompting import MODEL, SIZES, Size, chat_for, measure_arms, nan_if  # noqa: E402
from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.prompt.builder import PromptSpec  # noqa: E402

MIN_TPR = 0.2


def experiment(chat, size: Size, seed: int, log=lambda m: None) -> dict[str, Any]:
    arms = {"expanded": PromptSpec(shots=size.shots, expand=True), "as-written": PromptSpec(shots=size.shots)}
    out = measure_arms(chat, size, seed, arms, split="abbrev", log=log)
    on, off = out["arms"]["expanded"], out["arms"]["as-written"]
    gain = on["accuracy"] - off["accuracy"]
    out["accuracy_gain_raw"] = float(gain)
    out["expand_gain"] = nan_if(not on["tpr"] >= MIN_TPR, gain)
    return out


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    ctx.log(f"prompt-abbreviations ({budget}, seed {seed}): {SIZES[budget]}")
    return experiment(chat_for(budget, ctx), SIZES[budget], seed, ctx.log)


def plot(figures: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, f in enumerate(figures):
        vals = [f["arms"][n]["accuracy"] for n in ("expanded", "as-written")]
        ax.bar([i - 0.2, i + 0.2], vals, 0.4, color=["C0", "C1"],
               label=["expanded", "as written"] if i == 0 else None)
    ax.set_xticks(range(len(figures)), [f"seed {f.get('seed', i)}" for i, f in enumerate(figures)])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy over the fields")
    ax.legend()
    fig.suptitle("prompt-abbreviations: SmolLM2 on the abbrev split, 8 worked examples")
    save_figure(fig, path)


@register
def prompt_abbreviations() -> Claim:
    return Claim(
        id="prompt-abbreviations",
        statement=("Expanding the abbreviations in the context before a small instruct model reads it makes "
                   "it extract more accurately."),
        source="the notes' 'AI sucks at Abbreviation, expand all abbreviation before understanding task'",
        experiment=(f"{MODEL}. Per seed, 24 fresh `abbrev` items, 8 worked examples of that split and 64 answer "
                    "tokens in both arms; the context as written or expanded by the default abbreviation "
                    "table. Metric: accuracy (expanded) minus accuracy (as written), NaN when the expanded "
                    "arm's TPR < 0.2."),
        anchor=None,
        rule=Rule(metric="expand_gain", op=">", threshold=0.0, effect=0.05, noise=0.12,
                  meaning="expanding abbreviations first raises accuracy over the fields by more than 5 points"),
        measure=measure,
        plot=plot,
        tags=("prompt", "smollm2"),
    )
