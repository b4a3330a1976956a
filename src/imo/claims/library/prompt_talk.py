"""`llm-talky`: the notes' "LLM is very TALKY", on SmolLM2: asked for only an answer, it writes
words around it, with and without delimiters.

Two arms ask the same `plain` items with no worked examples (examples show a bare answer to
copy, which hides what the instruction alone gets) and 64 answer tokens: the builder's default
strict JSON ("respond strictly in the following JSON format, without additional keys or text"),
and the notes' delimited records (`<|START|>`, `("field"<|>key<|>value)##`, `<|END|>`, "Write
nothing else."). Words outside the answer are what imo.prompt.score counts: for JSON, the words
around the first JSON object (all of them when there is none); for records, the words outside
the start and end delimiters and in pieces that are not records. The metric is the smaller of
the two arms' mean words outside: the model is talky with and without delimiters when both are
large. 64 tokens cap the talk of one answer at roughly 45 words.

    imo check llm-talky --quick
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


def experiment(chat, size: Size, seed: int, log=lambda m: None) -> dict[str, Any]:
    arms = {"json": PromptSpec(), "records": PromptSpec(answer="records")}
    out = measure_arms(chat, size, seed, arms, log=log)
    out["outside_json"] = float(out["arms"]["json"]["outside_words"])
    out["outside_records"] = float(out["arms"]["records"]["outside_words"])
    out["outside_words"] = min(out["outside_json"], out["outside_records"])
    return out


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    ctx.log(f"llm-talky ({budget}, seed {seed}): {SIZES[budget]}")
    return experiment(chat_for(budget, ctx), SIZES[budget], seed, ctx.log)


def plot(figures: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, f in enumerate(figures):
        ax.bar([i - 0.2, i + 0.2], [f["outside_json"], f["outside_records"]], 0.4, color=["C0", "C1"],
               label=["strict JSON", "delimited records"] if i == 0 else None)
    ax.axhline(5, color="grey", ls="--", label="target: 5 words")
    ax.set_xticks(range(len(figures)), [f"seed {f.get('seed', i)}" for i, f in enumerate(figures)])
    ax.set_ylabel("mean words outside the answer")
    ax.legend()
    fig.suptitle("llm-talky: SmolLM2, no worked examples")
    save_figure(fig, path)


@register
def llm_talky() -> Claim:
    return Claim(
        id="llm-talky",
        statement=("Asked to answer only in a given format, a small instruct model still writes words outside "
                   "the answer, whether the format is strict JSON or delimited records."),
        source="the notes' 'LLM is very TALKY' and their delimited records; issue 20 (words outside the answer)",
        experiment=(f"{MODEL}. Per seed, 24 fresh `plain` items, no worked examples, 64 answer tokens; arms: "
                    "the builder's strict JSON instruction, and its delimited records. Metric: the smaller of "
                    "the two arms' mean words outside the answer (imo.prompt.score)."),
        anchor=None,
        rule=Rule(metric="outside_words", op=">", threshold=0.0, effect=5.0, noise=6.0,
                  meaning=("in both formats SmolLM2 writes on average more than 5 words (about one short "
                           "sentence) outside the answer it was asked for")),
        measure=measure,
        plot=plot,
        tags=("prompt", "smollm2"),
    )
