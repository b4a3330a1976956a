"""`prompt-defaults`: the notes' "For extraction task, tell LLM assigned default value when no
info, and do not make any assumptions", on SmolLM2.

Two arms ask the same `plain` items with the builder's default prompt and 8 worked examples; one
leaves out the defaults paragraph ("If the context does not state a value, use the default
below. Do not make any assumptions." and each key's default). The worked examples and their
answers are the same in both arms, so the arms differ only in that paragraph. With no examples
SmolLM2 answers nothing (docs/prompts.md), so neither arm could lower TPR and the tip is measured
on top of the examples. The claim has two parts, one metric:

    margin = min(TNR gain - 0.05, TPR change + 0.05)

positive when TNR rises by more than 5 points (the smallest gain that matters) and TPR falls by
less than 5 points (the stated non-inferiority margin). A seed whose defaults arm finds under one
stated value in five (TPR < 0.2) gives no valid measurement (NaN).

    imo check prompt-defaults --quick
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

TNR_GAIN = 0.05  # the smallest TNR gain that matters
TPR_MARGIN = 0.05  # the TPR loss tolerated
MIN_TPR = 0.2


def experiment(chat, size: Size, seed: int, log=lambda m: None) -> dict[str, Any]:
    arms = {"defaults": PromptSpec(shots=size.shots), "no-defaults": PromptSpec(shots=size.shots, defaults=False)}
    out = measure_arms(chat, size, seed, arms, log=log)
    on, off = out["arms"]["defaults"], out["arms"]["no-defaults"]
    out["tnr_gain"] = float(on["tnr"] - off["tnr"])
    out["tpr_change"] = float(on["tpr"] - off["tpr"])
    margin = min(out["tnr_gain"] - TNR_GAIN, out["tpr_change"] + TPR_MARGIN)
    out["defaults_margin"] = nan_if(not on["tpr"] >= MIN_TPR, margin)
    return out


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    ctx.log(f"prompt-defaults ({budget}, seed {seed}): {SIZES[budget]}")
    return experiment(chat_for(budget, ctx), SIZES[budget], seed, ctx.log)


def plot(figures: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, f in enumerate(figures):
        ax.plot([f["tpr_change"]], [f["tnr_gain"]], "o", color=f"C{i}", label=f"seed {f.get('seed', i)}")
    ax.axhline(TNR_GAIN, color="grey", ls="--")
    ax.axvline(-TPR_MARGIN, color="grey", ls="--")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("TPR with defaults minus without")
    ax.set_ylabel("TNR with defaults minus without")
    ax.set_title("prompt-defaults: supported in the upper right of the dashed lines")
    ax.legend()
    save_figure(fig, path)


@register
def prompt_defaults() -> Claim:
    return Claim(
        id="prompt-defaults",
        statement=("Telling the model each key's default for missing information, and to make no assumptions, "
                   "makes it leave absent fields empty more often without costing stated fields."),
        source=("the notes' 'For extraction task, tell LLM assigned default value when no info, and do not "
                "make any assumptions'; issue 20 (TNR gain without TPR loss beyond a stated margin)"),
        experiment=(f"{MODEL}. Per seed, 24 fresh `plain` items, 8 worked examples of the item's kind and 64 "
                    "answer tokens in both arms; the builder's default prompt with and without its defaults "
                    "paragraph. Metric: min(TNR gain - 0.05, TPR change + 0.05), NaN when the defaults arm's "
                    "TPR < 0.2."),
        anchor=None,
        rule=Rule(metric="defaults_margin", op=">", threshold=0.0, effect=0.0, noise=0.12,
                  meaning=("stating the defaults raises TNR by more than 5 points and lowers TPR by less than "
                           "5 points (both at once: the metric is the smaller margin)")),
        measure=measure,
        plot=plot,
        tags=("prompt", "smollm2"),
    )
