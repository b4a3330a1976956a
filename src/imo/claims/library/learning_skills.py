"""Claims on the skills battery from issue 19: ability decoders and courses (imo.learn.abilities).

* `ability-decoders`: a shared trunk with one decoder per skill loses less of its old skills when a
  new skill is trained than the same trunk with one shared decoder of equal parameters.
* `courses-matter`: at equal steps and the same mix of easy and hard problems, the easy-to-hard
  order ends more accurate than the random order.

A separate module from `learning.py`, so that these claims' code fingerprints do not cover the
learning-rule claims' code and the other way round.

    imo check courses-matter --quick
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imo.claims.plotting import plt, save_figure
from imo.claims.registry import Claim, Context, Rule, register

SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(steps=8, new_steps=4, n_train=40, n_test=6, batch=8, n_embd=16, n_head=2, head_hidden=8,
                  eval_every=4),
    "quick": dict(),  # SkillsRunConfig's defaults: 2 blocks of width 64, 1,500 + 500 steps, batch 32
    "full": dict(),
}
LEARNT = 0.3  # decoders: the old skills' mean accuracy both arms must reach before a new skill is added


def _cfg(budget: str):
    from imo.learn.abilities import SkillsRunConfig

    return SkillsRunConfig(**SIZES[budget])


# --- ability-decoders --------------------------------------------------------------------------


def decoder_gain(shared: dict[str, Any], per_skill: dict[str, Any], learnt: float = LEARNT) -> float:
    """Interference of the shared decoder minus that of the per-skill decoders, in points; NaN when
    either arm had not learnt the old skills (mean accuracy below `learnt`): nothing to lose then."""
    if min(shared["old_accuracy_before"], per_skill["old_accuracy_before"]) < learnt:
        return math.nan
    return shared["interference_points"] - per_skill["interference_points"]


def measure_decoders(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.learn.abilities import interference_run

    cfg = _cfg(budget)
    arms = {}
    for heads in ("per-skill", "shared"):
        ctx.log(f"decoders {heads} ({budget}, seed {seed})")
        arms[heads] = interference_run(heads, cfg, seed=seed)
    gain = decoder_gain(arms["shared"], arms["per-skill"], LEARNT if budget != "smoke" else 0.0)
    return {"arms": arms, "new_skill": cfg.new_skill, "interference_gain_points": float(gain)}


def plot_decoders(per_seed: list[dict[str, Any]], path) -> None:
    """Per old skill: accuracy before and after the new skill is trained, both arms, mean of seeds."""
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    old = per_seed[0]["arms"]["shared"]["old_skills"]
    x = np.arange(len(old))
    for j, heads in enumerate(("per-skill", "shared")):
        for k, when in enumerate(("before", "after")):
            ys = [np.mean([100 * f["arms"][heads][when][s] for f in per_seed]) for s in old]
            ax.bar(x + (2 * j + k - 1.5) * 0.2, ys, 0.2, color=f"C{j}", alpha=1.0 if when == "before" else 0.45,
                   label=f"{heads}, {when} {per_seed[0]['new_skill']}")
    ax.set_xticks(x, old)
    ax.set_ylabel("exact-answer accuracy %")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("old skills before and after training a new skill alone", fontsize=10)
    save_figure(fig, path)


@register
def ability_decoders() -> Claim:
    return Claim(
        id="ability-decoders",
        statement="Every ability needs its own decoder: reading each skill out of a shared context with its "
                  "own decoder keeps skills from overwriting each other.",
        source="notes: \"every human ability requires a decoder from context token\" (issue 19)",
        experiment="The skills battery (count, copy, reverse, sort, add, compare; then grid as the new skill), "
                   "difficulty 1, 2,000 training and 100 disjoint test problems per skill. One byte-level trunk "
                   "(imo GPT blocks: 2 x 64, RoPE), loss on the answer bytes, Adam 3e-3, batch 32. Arms: one MLP "
                   "decoder per skill (64 -> 64 -> 256, picked by the line's skill) or one shared decoder "
                   "(64 -> 448 -> 256), the same parameters. 1,500 steps on the six old skills, then 500 on grid "
                   "alone; interference = the old skills' mean accuracy drop, in points (greedy exact answers). "
                   "Metric: shared interference minus per-skill interference; undefined (inconclusive) unless "
                   "both arms first reach 30% mean accuracy on the old skills.",
        anchor="No published figure for this set-up; continual learning separates multi-head (a head per task) "
               "from single-head set-ups and finds the single-head ones forget far more (Farquhar & Gal 2018, "
               "\"Towards Robust Evaluations of Continual Learning\")",
        rule=Rule(metric="interference_gain_points", op=">", threshold=0.0, noise=5.0,
                  meaning="the old skills lose fewer points with one decoder per skill than with one shared "
                          "decoder of the same size"),
        measure=measure_decoders, plot=plot_decoders, tags=("learning", "skills"))


# --- courses-matter ----------------------------------------------------------------------------


def measure_courses(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.learn.abilities import ORDERS, course_run

    cfg = _cfg(budget)
    arms = {}
    for order in ORDERS:
        ctx.log(f"course {order} ({budget}, seed {seed})")
        arms[order] = course_run(order, cfg, seed=seed)
    return {"arms": arms, "steps": cfg.steps, "threshold": cfg.threshold,
            "course_gain_points": 100 * (arms["easy-to-hard"]["final_mean"] - arms["random"]["final_mean"]),
            "hard_gain_points": 100 * (arms["easy-to-hard"]["final_hard"] - arms["random"]["final_hard"])}


def plot_courses(per_seed: list[dict[str, Any]], path) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), dpi=100, sharey=True)
    for i, order in enumerate(per_seed[0]["arms"]):
        for f in per_seed:
            c = f["arms"][order]["curve"]
            steps = [r["step"] for r in c]
            ax.plot(steps, [100 * r["easy"] for r in c], color=f"C{i}", alpha=0.7, label=order if f is per_seed[0] else None)
            bx.plot(steps, [100 * r["hard"] for r in c], color=f"C{i}", alpha=0.7)
    ax.set_title("easy problems (difficulty 1)", fontsize=10)
    bx.set_title("hard problems (difficulty 2)", fontsize=10)
    for a in (ax, bx):
        a.set_xlabel("step")
        a.grid(True, alpha=0.3)
    ax.set_ylabel("exact-answer accuracy %")
    ax.legend(fontsize=8)
    save_figure(fig, path)


@register
def courses_matter() -> Claim:
    return Claim(
        id="courses-matter",
        statement="What a model is taught, and in what order, matters: an easy-to-hard course teaches more than "
                  "the same lessons in random order.",
        source="notes: \"OpenAI can be thought of as a university for AI ... what course they teach\"; \"think of AI "
               "as a kid, we are designing games to see which game helps the kid grow\" (issue 19)",
        experiment="All seven skills of the battery at difficulties 1 and 2 (2,000 training and 100 disjoint test "
                   "problems per skill and difficulty), the trunk and shared decoder of ability-decoders, 1,500 "
                   "steps of batch 32 for every order. easy-to-hard: 750 steps of difficulty 1, then 750 of "
                   "difficulty 2; hard-to-easy the reverse; random: each example's difficulty drawn at random "
                   "(the same mix in expectation). Metric: the final mean exact-answer accuracy over both "
                   "difficulties, easy-to-hard minus random, in points; steps to 50% reported beside it.",
        anchor="Bengio, Louradour, Collobert & Weston 2009, \"Curriculum learning\" (ICML): easy-to-hard ordering "
               "speeds and improves learning on shape recognition and language modelling; Wu, Dyer & Neyshabur "
               "2021, \"When do curricula work?\" (ICLR): little gain at standard budgets, some with short "
               "training or noisy labels",
        rule=Rule(metric="course_gain_points", op=">", threshold=0.0, noise=3.0,
                  meaning="easy-to-hard ends with a higher mean accuracy than random order at the same steps"),
        measure=measure_courses, plot=plot_courses, tags=("learning", "skills"))
