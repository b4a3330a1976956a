"""`prompt-strict-json`: the notes' "Please respond **strictly** in the following JSON format,
without additional keys or text", on SmolLM2.

Two arms ask the same `plain` items with no worked examples (examples would show the format
themselves) and 64 answer tokens: the builder's strict instruction, and the same prompt with
"Answer in this JSON format:" instead. Valid = the whole answer is one JSON object with exactly the
asked keys (imo.prompt.score). The claim has two parts, one metric:

    margin = min(validity gain - 0.05, accuracy change + 0.05)

positive when the strict wording raises the share of valid answers by more than 5 points and
costs less than 5 points of accuracy. Constrained decoding (imo extract, response_format) is the
reference beside it, not an arm: it is valid by construction (docs/prompts.md: 30 of 30).

    imo check prompt-strict-json --quick
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402

from imo.claims.library._prompting import MODEL, SIZES, Size, chat_for, measure_arms  # noqa: E402
from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.prompt.builder import PromptSpec  # noqa: E402

VALID_GAIN = 0.05  # the smallest validity gain that matters
ACC_MARGIN = 0.05  # the accuracy loss tolerated


def experiment(chat, size: Size, seed: int, log=lambda m: None) -> dict[str, Any]:
    arms = {"strict": PromptSpec(), "free": PromptSpec(strict=False)}
    out = measure_arms(chat, size, seed, arms, log=log)
    strict, free = out["arms"]["strict"], out["arms"]["free"]
    out["valid_gain"] = float(strict["valid"] - free["valid"])
    out["accuracy_change"] = float(strict["accuracy"] - free["accuracy"])
    out["strict_margin"] = min(out["valid_gain"] - VALID_GAIN, out["accuracy_change"] + ACC_MARGIN)
    return out


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    ctx.log(f"prompt-strict-json ({budget}, seed {seed}): {SIZES[budget]}")
    return experiment(chat_for(budget, ctx), SIZES[budget], seed, ctx.log)


def plot(figures: list[dict[str, Any]], path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8))
    for i, f in enumerate(figures):
        for ax, key in ((a, "valid"), (b, "accuracy")):
            ax.bar([i - 0.2, i + 0.2], [f["arms"]["strict"][key], f["arms"]["free"][key]], 0.4,
                   color=["C0", "C1"], label=["strict", "free"] if i == 0 else None)
    for ax, name in ((a, "valid JSON answers"), (b, "accuracy over the fields")):
        ax.set_xticks(range(len(figures)), [f"seed {f.get('seed', i)}" for i, f in enumerate(figures)])
        ax.set_ylim(0, 1)
        ax.set_ylabel(name)
    a.legend()
    fig.suptitle("prompt-strict-json: SmolLM2, no worked examples")
    save_figure(fig, path)


@register
def prompt_strict_json() -> Claim:
    return Claim(
        id="prompt-strict-json",
        statement=("Asking a small instruct model to respond strictly in a JSON format, without additional "
                   "keys or text, makes more of its answers valid JSON without costing accuracy."),
        source=("the notes' 'Please respond **strictly** in the following JSON format, without additional "
                "keys or text'; issue 20 (validity and accuracy, free text vs strict instruction)"),
        experiment=(f"{MODEL}. Per seed, 24 fresh `plain` items, no worked examples, 64 answer tokens; the "
                    "builder's default prompt with the strict sentence or with 'Answer in this JSON format:'. "
                    "Metric: min(validity gain - 0.05, accuracy change + 0.05). Constrained decoding is the "
                    "reference (valid by construction), not an arm."),
        anchor=None,
        rule=Rule(metric="strict_margin", op=">", threshold=0.0, effect=0.0, noise=0.12,
                  meaning=("the strict wording raises the share of valid JSON answers by more than 5 points and "
                           "lowers accuracy by less than 5 points")),
        measure=measure,
        plot=plot,
        tags=("prompt", "smollm2"),
    )
