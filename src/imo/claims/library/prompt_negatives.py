"""`true-negative-hard-llm`: the notes' "True Negative is SO HARD for LLM", on SmolLM2.

Every generated item has absent fields (the true negatives), and in most a distractor entity
states some of them for someone else. The metric is TPR minus TNR on the `plain` items with 8
worked examples (the builder's default prompt otherwise), the setting in which SmolLM2 does the
task: with no examples it answers nothing at all (docs/prompts.md: TPR 0.000 in six arms), and a
model that says nothing gets every true negative, which says nothing about true negatives being
hard. So the rule needs the model to find stated values: a seed whose TPR is below 0.2 gives no
valid measurement (NaN), and a model that weak comes out inconclusive, saying so. The 0-shot arm
of the same items is reported beside it (its answers are the few-shot claim's, read from the store).

    imo check true-negative-hard-llm --quick
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

MIN_TPR = 0.2  # below this the model finds (almost) no stated value, and silence wins every negative


def experiment(chat, size: Size, seed: int, log=lambda m: None) -> dict[str, Any]:
    arms = {"shots-0": PromptSpec(), f"shots-{size.shots}": PromptSpec(shots=size.shots)}
    out = measure_arms(chat, size, seed, arms, log=log)
    a = out["arms"][f"shots-{size.shots}"]
    out["tpr"], out["tnr"] = a["tpr"], a["tnr"]
    gap = a["tpr"] - a["tnr"]
    out["tpr_minus_tnr_raw"] = float(gap)
    out["tpr_minus_tnr"] = nan_if(not a["tpr"] >= MIN_TPR, gap)  # also NaN when there is no stated field
    return out


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    ctx.log(f"true-negative-hard-llm ({budget}, seed {seed}): {SIZES[budget]}")
    return experiment(chat_for(budget, ctx), SIZES[budget], seed, ctx.log)


def plot(figures: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.2
    for i, f in enumerate(figures):
        for j, name in enumerate(f["arms"]):
            arm = f["arms"][name]
            x = i + (j - 0.5) * 2 * width
            ax.bar([x - width / 2, x + width / 2], [arm["tpr"], arm["tnr"]], width,
                   color=["C0", "C3"], alpha=0.5 if j == 0 else 1.0)
            ax.text(x, 1.02, name, ha="center", fontsize=7)
    ax.set_xticks(range(len(figures)), [f"seed {f.get('seed', i)}" for i, f in enumerate(figures)])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("TPR (blue) and TNR (red)")
    fig.suptitle("true-negative-hard-llm: SmolLM2, 0 shots (pale) and k shots")
    save_figure(fig, path)


@register
def true_negative_hard_llm() -> Claim:
    return Claim(
        id="true-negative-hard-llm",
        statement=("A small instruct model that does extraction gets stated fields right more often than it "
                   "leaves absent fields empty: true negatives are the hard part."),
        source="the notes' 'True Negative is SO HARD for LLM'; issue 20 (TPR minus TNR on SmolLM2)",
        experiment=(f"{MODEL}. Per seed, 24 fresh `plain` items (each field stated with probability 0.6; "
                    "distractors often state a field the subject lacks), the builder's default prompt "
                    "(context first, strict typed JSON, defaults) with 8 worked examples of the item's kind, "
                    "64 answer tokens. Exact checkers: TPR = stated fields given right, TNR = absent fields "
                    "left at no value. Metric: TPR minus TNR, NaN (no valid measurement) when TPR < 0.2. "
                    "The 0-shot arm is reported beside it."),
        anchor=None,
        rule=Rule(metric="tpr_minus_tnr", op=">", threshold=0.0, effect=0.05, noise=0.15,
                  meaning=("with worked examples, SmolLM2's TPR exceeds its TNR by more than 5 points (the "
                           "smallest gap that matters), while it finds at least one stated value in five; "
                           "a model below that TPR is too weak to say and comes out inconclusive")),
        measure=measure,
        plot=plot,
        tags=("prompt", "smollm2"),
    )
