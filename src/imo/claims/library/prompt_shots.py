"""`few-shot`: GPT-3's few-shot learning (the notes), on SmolLM2 and the generated extraction tasks.

Brown et al. 2020 ("Language Models are Few-Shot Learners") show in-context examples raising
accuracy, more so the larger the model. Here two arms ask the same `plain` items with the same
prompt (every tip of the builder on: JSON context first, strict typed JSON, defaults) and the same
answer budget; one puts 8 worked examples of the item's kind before the question (user turn,
perfect assistant answer; examples from a separate stream, never a question). The metric is
accuracy over all fields (stated and absent) at 8 shots minus at 0 shots, per seed of 24 fresh
items.

    imo check few-shot --quick
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


def arms(size: Size) -> dict[str, PromptSpec]:
    return {"shots-0": PromptSpec(), f"shots-{size.shots}": PromptSpec(shots=size.shots)}


def experiment(chat, size: Size, seed: int, log=lambda m: None) -> dict[str, Any]:
    out = measure_arms(chat, size, seed, arms(size), log=log)
    zero, many = out["arms"]["shots-0"], out["arms"][f"shots-{size.shots}"]
    out["accuracy_0"], out["accuracy_k"] = zero["accuracy"], many["accuracy"]
    out["few_shot_gain"] = float(many["accuracy"] - zero["accuracy"])
    return out


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    ctx.log(f"few-shot ({budget}, seed {seed}): {SIZES[budget]}")
    return experiment(chat_for(budget, ctx), SIZES[budget], seed, ctx.log)


def plot(figures: list[dict[str, Any]], path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, f in enumerate(figures):
        names = list(f["arms"])
        for j, key in enumerate(("accuracy", "tpr", "tnr")):
            a.plot([0, f["size"]["shots"]], [f["arms"][n][key] for n in names], "o-", color=f"C{j}",
                   alpha=0.7, label=key if i == 0 else None)
        b.bar(i, f["few_shot_gain"], color="C0")
    a.set_xlabel("worked examples in the prompt")
    a.set_ylabel("rate over the seed's fields")
    a.set_ylim(0, 1)
    a.legend()
    b.axhline(0.05, color="grey", ls="--", label="target 0.05")
    b.set_xticks(range(len(figures)), [f"seed {f.get('seed', i)}" for i, f in enumerate(figures)])
    b.set_ylabel("accuracy at k shots minus at 0")
    b.legend()
    fig.suptitle("few-shot: SmolLM2 on the generated extraction tasks")
    save_figure(fig, path)


@register
def few_shot() -> Claim:
    return Claim(
        id="few-shot",
        statement=("A small instruct model does the extraction task better with a few worked examples in "
                   "its prompt than with the instruction alone."),
        source="the notes' 'GPT-3's few-shot learning'; issue 20 (few-shot: accuracy at 8 shots minus 0 shots)",
        experiment=(f"{MODEL}. Per seed, 24 fresh `plain` items of imo.prompt.tasks (people, products, events; "
                    "absent fields and distractors); two arms with the builder's default prompt and 64 answer "
                    "tokens each: 0 shots, and 8 worked examples of the item's kind (user turn + exact JSON "
                    "answer, from a separate example stream). Exact checkers of imo.prompt.score. Metric: "
                    "accuracy over all fields at 8 shots minus at 0 shots."),
        anchor=("Brown et al. 2020 (GPT-3), Figure 1.2: few-shot beats zero-shot, with a gap that grows with "
                "model size"),
        rule=Rule(metric="few_shot_gain", op=">", threshold=0.0, effect=0.05, noise=0.12,
                  meaning=("8 worked examples raise SmolLM2's accuracy on the extraction fields by more than "
                           "5 points (the smallest gain that matters); the preview band is about two standard "
                           "errors of a difference of two accuracies over 24 items' ~96 fields")),
        measure=measure,
        plot=plot,
        tags=("prompt", "icl", "smollm2"),
    )
