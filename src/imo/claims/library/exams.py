"""Claims measured by the exams: trickability, true negatives and separate skills.

* `trickability`: Goodfellow et al. 2014 on scikit-learn's 8x8 digits: a softmax regression and
  an MLP attacked with FGSM (imo.exams.trick), each also adversarially trained (half clean, half
  FGSM loss). The rule reproduces the paper's headline: the shallow softmax model is fooled on
  most images at eps = 0.25 (MNIST: 99.9%). Beside it, outside the rule: the MLP's error, the
  effect of adversarial training, and the language half, the trickability@k of a char model on
  the skill `compare` (minimal byte edits that keep the true answer).
* `true-negative-hard`: a model trained on a generated fact base answers present facts (true
  positives) far better than it says `unknown` about missing ones (true negatives)
  (imo.exams.negatives). The rule reads the best-trained model (largest, longest).
* `skills-are-separate`: the transfer exam (imo.exams.skills): every model sees a few worked lines
  of every skill (one shared format), and one skill in full; how much of a skill's gain does
  training on another skill bring, relative to training on that skill itself, beside a positive
  control (sort -> order, one map under two verbs) that must transfer.

    imo check trickability --quick
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from imo.claims.plotting import plt, save_figure
from imo.claims.registry import Claim, Context, Rule, register
from imo.exams.negatives import NegativesSize, negatives_exam
from imo.exams.skills import SkillsSize, own_gain, skills_exam, transfer_exam, transfer_shares
from imo.exams.textmodel import keyed_on
from imo.exams.trick import (
    PAPER_MNIST,
    VisionSize,
    adversarial_training_effect,
    text_exam,
    vision_exam,
)

# --- trickability ------------------------------------------------------------------------------

EPS = {"smoke": (0.1, 0.25), "quick": (0.05, 0.1, 0.25), "full": (0.02, 0.05, 0.1, 0.15, 0.25, 0.35, 0.5)}
VISION = {
    "smoke": VisionSize(epochs=1, hidden=32, max_test=60),
    "quick": VisionSize(epochs=15),
    "full": VisionSize(epochs=40),
}
# the char model attacked by byte edits: trained on the skill `compare` alone
TEXT = {
    "smoke": (SkillsSize(n_layer=1, n_embd=16, n_head=2, context_length=16, steps=3, batch_size=4,
                           n_train=40, n_test=5), dict(n=5, k=1, beam=1)),
    "quick": (SkillsSize(context_length=32, steps=200, batch_size=16, lr=1e-2, n_train=1000, n_test=30),
              dict(n=30, k=2, beam=2)),
    "full": (SkillsSize(context_length=32, steps=1500, batch_size=32, n_train=3000, n_test=100),
             dict(n=100, k=3, beam=4)),
}


def measure_trickability(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    ctx.log("digits: softmax and MLP, standard and adversarially trained, FGSM")
    vis = vision_exam("digits", eps=EPS[budget], attack="fgsm", seed=seed, size=VISION[budget])
    at = {(r["model"], r["eps"]): r for r in vis["rows"]}
    figures: dict[str, Any] = {"eps": list(EPS[budget]), "_runs": []}
    for name in ("softmax", "softmax adv", "mlp", "mlp adv"):
        key = name.replace(" ", "_")
        figures[f"{key}_error"] = [at[(name, e)]["error"] for e in EPS[budget]]
        figures[f"{key}_confidence_at_0.25"] = at[(name, 0.25)]["confidence"]
        figures[f"{key}_clean_error"] = at[(name, 0.25)]["clean_error"]
        figures[f"{key}_median_min_eps"] = at[(name, 0.25)]["median_min_eps"]
    figures["softmax_fgsm_error_at_0.25"] = at[("softmax", 0.25)]["error"]
    figures["mlp_fgsm_error_at_0.25"] = at[("mlp", 0.25)]["error"]
    eff = adversarial_training_effect(vis["rows"], "mlp", 0.25)
    figures.update({f"mlp_{k}": v for k, v in eff.items()})
    # the target: adversarial error falls by half or more, clean error rises <= 1 point
    figures["adv_training_target_met"] = bool(eff["adv_error_relative_fall"] >= 0.5
                                              and eff["clean_error_rise_points"] <= 1.0)
    skills, attack = TEXT[budget]
    ctx.log("char model on `compare`, byte-edit attack")
    run = skills_exam(["compare"], skills, seed=seed, store=ctx.store, quiet=ctx.quiet,
                      code_fingerprint=ctx.code_fingerprint)["run"]
    text = text_exam(run, "compare", seed=seed, store=ctx.store, **attack)
    figures["_runs"].append(run)
    figures["text_clean_accuracy"] = text["clean_accuracy"]
    figures["text_success_within"] = [text["success_within"][j] for j in sorted(text["success_within"])]
    figures["text_trickability"] = text["trickability"]
    figures["text_definition"] = text["definition"]
    return figures


def plot_trickability(per_seed: list[dict[str, Any]], path) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100, gridspec_kw={"width_ratios": [2, 1]})
    styles = {"softmax": ("C0", "-"), "softmax_adv": ("C0", "--"), "mlp": ("C3", "-"), "mlp_adv": ("C3", "--")}
    for key, (color, ls) in styles.items():
        for i, f in enumerate(per_seed):
            ax.plot(f["eps"], f[f"{key}_error"], ls, color=color, marker=".", alpha=0.8,
                    label=key.replace("_adv", ", adversarially trained") if i == 0 else None)
    ax.plot([0.25], [PAPER_MNIST["softmax"]["fgsm_error"]], "*", color="C0", ms=12, label="paper, MNIST softmax")
    ax.plot([0.25], [PAPER_MNIST["maxout"]["fgsm_error"]], "*", color="C3", ms=12, label="paper, MNIST maxout")
    ax.plot([0.25], [PAPER_MNIST["maxout adversarially trained"]["fgsm_error"]], "*", color="C3", mfc="none",
            ms=12, label="paper, maxout adversarially trained")
    ax.set_xlabel("FGSM epsilon (pixels in [0, 1])")
    ax.set_ylabel("test error under attack")
    ax.set_title("8x8 digits (lines) beside Goodfellow et al.'s MNIST (stars)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    drawn = 0
    for f in per_seed:
        ks = range(1, len(f["text_success_within"]) + 1)
        if any(math.isfinite(v) for v in f["text_success_within"]):
            bx.plot(list(ks), f["text_success_within"], "o-", color="C2", alpha=0.8)
            drawn += 1
    if per_seed:
        bx.set_xticks(range(1, len(per_seed[0]["text_success_within"]) + 1))
    if not drawn:  # no answer was right to begin with, so none could be flipped: say so, not a blank panel
        acc = ", ".join(f"{f['text_clean_accuracy']:.2f}" for f in per_seed)
        bx.text(0.5, 0.5, f"the char model answered no\n`compare` problem right\n(clean accuracy {acc}):\n"
                "nothing to flip", ha="center", va="center", transform=bx.transAxes, fontsize=9)
    bx.set_xlabel("byte substitutions allowed (k)")
    bx.set_ylabel("answers flipped (of those right)")
    bx.set_title("char model on `compare`", fontsize=10)
    bx.set_ylim(-0.05, 1.05)
    bx.grid(True, alpha=0.3)
    save_figure(fig, path)


@register
def trickability() -> Claim:
    return Claim(
        id="trickability",
        statement="How easily a model is tricked is a key measurement: tiny input changes that a "
                  "person would not notice flip the answers of ordinary classifiers.",
        source="source-notes: how hard it is to trick a model is a key measure",
        experiment="8x8 digits (pixels in [0, 1]): softmax regression and a 2-hidden-layer MLP, each "
                   "also adversarially trained (half clean, half FGSM loss at eps 0.25); FGSM test error "
                   "and confidence at several eps, and each image's minimal flipping eps. Beside it, a char "
                   "model trained on the skill `compare`: the fewest byte substitutions keeping the true "
                   "answer that flip its answer (beam search), success within k.",
        rule=Rule(metric="softmax_fgsm_error_at_0.25", op=">", threshold=0.5, noise=0.1,
                  meaning="FGSM at eps 0.25 fools the shallow softmax model on more than half of the "
                          "test digits (Goodfellow et al.: 99.9% on MNIST)"),
        measure=measure_trickability,
        plot=plot_trickability,
        anchor="Goodfellow, Shlens & Szegedy 2014, MNIST, eps 0.25: shallow softmax 99.9% error "
               "(mean confidence 79.3%), maxout 89.4% (97.6%); adversarial training: maxout 89.4% -> "
               "17.9% adversarial error, clean error 0.94% -> 0.84%",
        tags=("exams", "robustness"),
    )


# --- true-negative-hard ------------------------------------------------------------------------

NEGATIVES = {
    "smoke": NegativesSize(sizes=((1, 16),), steps=(3,), n_entities=6, context_length=16, batch_size=4),
    "quick": NegativesSize(sizes=((2, 64),), steps=(220,), n_entities=12, context_length=32, batch_size=16,
                             lr=1e-2),
    "full": NegativesSize(sizes=((1, 32), (2, 64), (3, 96)), steps=(300, 1000), n_entities=40,
                            context_length=32, batch_size=32),
}


def measure_negatives(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    with keyed_on(ctx.code_fingerprint):  # the negatives exam's runs are keyed on this claim's code
        out = negatives_exam(NEGATIVES[budget], seed=seed, store=ctx.store, quiet=ctx.quiet, log=ctx.log)
    rows = out["rows"]
    best = max(rows, key=lambda r: (r["params"], r["steps"]))
    return {
        "_runs": [r["run"] for r in rows],
        "tpr": best["tpr"], "tnr": best["tnr"], "tpr_minus_tnr": best["tpr"] - best["tnr"],
        "positives_called_unknown": best["positives_called_unknown"],
        "rows": [{k: r[k] for k in ("n_layer", "n_embd", "params", "steps", "tpr", "tnr")} for r in rows],
        "n_present": out["n_present"], "n_held_absent": out["n_held_absent"],
    }


def plot_negatives(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    rows = per_seed[0]["rows"] if per_seed else []
    labels = [f"{r['n_layer']}x{r['n_embd']}\n{r['steps']} steps" for r in rows]
    for j, (key, color) in enumerate((("tpr", "C0"), ("tnr", "C3"))):
        for i in range(len(rows)):
            vals = [f["rows"][i][key] for f in per_seed]
            ax.bar(i + (j - 0.5) * 0.38, statistics.fmean(vals), 0.38, color=color, alpha=0.7,
                   label=("true positives (value recalled)" if key == "tpr" else "true negatives ('unknown')")
                   if i == 0 else None)
            ax.plot([i + (j - 0.5) * 0.38] * len(vals), vals, "k.", ms=5)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.set_title("fact base: present facts vs facts never seen", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


@register
def true_negative_hard() -> Claim:
    return Claim(
        id="true-negative-hard",
        statement="Knowing what one does not know is harder than knowing what one knows: a model "
                  "recalls stored facts far more reliably than it answers 'unknown' for missing ones.",
        source="source-notes: true negatives are much harder than true positives",
        experiment="A generated fact base (entities x 5 attributes, half present) written as lines "
                   "`name attribute: value`; some missing facts are written with the value `unknown`, the "
                   "rest never appear. Byte models of several sizes and training lengths are trained on it "
                   "and asked every present fact (TPR) and every never-seen missing fact (TNR).",
        rule=Rule(metric="tpr_minus_tnr", op=">", threshold=0.1, noise=0.1,
                  meaning="for the largest, longest-trained model the true-positive rate exceeds the "
                          "true-negative rate by more than 10 points"),
        measure=measure_negatives,
        plot=plot_negatives,
        anchor=None,
        tags=("exams",),
    )


# --- skills-are-separate -----------------------------------------------------------------------

# (battery skills trained as sources, size): the control's two skills are trained at every budget
SKILLS = {
    "smoke": (("copy", "sort"), SkillsSize(n_layer=1, n_embd=16, n_head=2, context_length=16, steps=3,
                                    batch_size=4, n_train=40, n_test=5, shots=4)),
    "quick": (("copy", "sort"), SkillsSize(context_length=32, steps=400, batch_size=16, lr=1e-2,
                                           n_train=1000, n_test=60, shots=30)),
    "full": (("count", "copy", "reverse", "sort", "add", "compare", "grid"),
             SkillsSize(context_length=32, steps=1500, batch_size=16, lr=1e-2, n_train=2000, n_test=100,
                        shots=30)),
}
CONTROL = ("sort", "order")  # order is sort under another verb: the pair that must transfer
FLOOR = 0.25  # a target its own training lifts less than this over the reference cannot show transfer


def measure_skills(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    battery, size = SKILLS[budget]
    sources = list(dict.fromkeys([*battery, *CONTROL]))
    out = transfer_exam(sources, size, seed=seed, store=ctx.store, quiet=ctx.quiet, log=ctx.log,
                        code_fingerprint=ctx.code_fingerprint)
    acc = out["accuracy"]
    # distinct skills: every ordered pair of the battery's sources (the control's order is no skill)
    shares = transfer_shares(acc, [(a, b) for a in battery for b in battery if a != b], FLOOR)
    # a blind exam (order's own training lifts it less than the floor) sees no transfer: control 0
    control = transfer_shares(acc, [CONTROL], FLOOR).get(CONTROL, 0.0)
    # no distinct pair whose target was learnt: no measurement of separateness (inconclusive)
    mean = statistics.fmean(shares.values()) if shares else float("nan")
    return {
        "_runs": list(out["runs"].values()), "trained": ["none", *sources], "accuracy": acc,
        "own_gain": {b: own_gain(acc, b) for b in sources},
        "transfer": {f"{a}->{b}": v for (a, b), v in shares.items()},
        "pairs_counted": len(shares), "mean_transfer": mean, "control_transfer": control,
        "control_minus_transfer": control - mean,
    }


def plot_skills(per_seed: list[dict[str, Any]], path) -> None:
    import numpy as np

    f0 = per_seed[0]
    trained = f0["trained"]
    tested = list(f0["accuracy"][trained[0]])
    m = np.array([[statistics.fmean(f["accuracy"][a][b] for f in per_seed) for b in tested] for a in trained])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(4.2 + 0.8 * len(tested), 1.6 + 0.5 * len(trained)), dpi=100,
                                 gridspec_kw={"width_ratios": [len(tested), 3]})
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(len(trained)):
        for j in range(len(tested)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if m[i, j] > 0.5 else "white")
    ax.set_xticks(range(len(tested)), tested, fontsize=8, rotation=30)
    ax.set_yticks(range(len(trained)), ["reference" if t == "none" else t for t in trained], fontsize=8)
    ax.set_xlabel("tested on")
    ax.set_ylabel("trained on (+ the shared lines)")
    ax.set_title(f"exact accuracy (mean of {len(per_seed)} seed(s))", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    for k, key in enumerate(("mean_transfer", "control_transfer")):
        vals = [f[key] for f in per_seed]
        bx.bar(k, statistics.fmean(vals), color=f"C{k}", alpha=0.7)
        bx.plot([k] * len(vals), vals, "k.", ms=6)
    bx.set_xticks([0, 1], ["distinct\nskills", "sort->order\n(control)"], fontsize=8)
    bx.set_ylim(0, 1.05)
    bx.set_ylabel("transfer (share of own gain)")
    bx.grid(True, axis="y", alpha=0.3)
    save_figure(fig, path)


@register
def skills_are_separate() -> Claim:
    return Claim(
        id="skills-are-separate",
        statement="Intelligence is many separate skills: learning one skill does not bring the others.",
        source="source-notes: intelligence is many skills; one does not bring the others",
        experiment="The skills battery (count, copy, reverse, sort, add, compare, 2-D grid; generated, "
                   "exact checkers) in one shared format: every model trains the same steps on the same "
                   "30 worked lines of every skill plus the full training set of one skill (the "
                   "reference: as many filler lines with random answers). Transfer A->B = B's accuracy "
                   "gain over the reference after training on A, as a share of the gain training on B "
                   f"brings (clipped to [0, 1]; targets whose own gain is >= {FLOOR}); each target is held "
                   "out of the other models' training but for its 30 shared lines. Positive control: "
                   "sort -> order (sort under another verb) must transfer; a blind exam counts it as 0. "
                   "Metric: control transfer minus the mean transfer between distinct skills.",
        rule=Rule(metric="control_minus_transfer", op=">", threshold=0.5, noise=0.2,
                  meaning="distinct skills bring each other more than half of a skill's own gain less "
                          "than one skill under two names does: the exam sees transfer where it must, "
                          "and little between distinct skills"),
        measure=measure_skills,
        plot=plot_skills,
        anchor=None,
        version=2,  # v2: one shared format (every model sees every skill's verb), a zero reference, a
        # positive control (sort -> order) in the metric; v1's models saw only their own verb, so zero
        # transfer followed from the data format (issue 13)
        tags=("exams",),
    )
