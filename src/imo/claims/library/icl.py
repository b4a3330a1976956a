"""Claims about in-context learning.

* `induction-heads`: Olsson et al. 2022 ("In-context Learning and Induction Heads") report that
  small transformers learn to use their context in an abrupt "phase change" early in training:
  the in-context score (loss late in the context minus loss early in it) falls at the moment
  induction heads form, heads whose prefix-matching score (attention to the token after the
  earlier copy of the current token) rises, and ablating them gives the in-context learning back.
  imo.exams.icl trains a 2-layer byte GPT through imo.train.loop.fit on repeated random strings
  and measures all three. The rule is one number per seed, the smallest of three margins, each
  1 at the issue's target:
    fall within the first 20% of the steps / 0.3 bits,
    the top prefix-matching score at the drop (half the total fall) / 0.5,
    the share of the fall given back by ablating the top head / 0.7.
  A fall that comes from something other than an induction head (the model merely learning which
  symbols occur in its context lowers late loss too) gives a low second or third margin, and a
  phase change after the first 20% a low first one, so the claim can fail on each.

    imo check induction-heads --quick
"""

from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.exams.icl import InductionSize, induction_exam  # noqa: E402

TARGETS = {"fall_first_20pct": 0.3, "top_prefix_at_drop": 0.5, "give_back": 0.7}

# smoke: seconds, never evidence. quick (one seed) and full (three): the exam's default model at a
# 32-byte context (periods 8..16), 2000 steps of 16 sequences, ~2 minutes a seed on one thread.
# Sized from short pilots (seed 0, at most 700 steps, which showed the score falling from about
# step 200 with no head above 0.16 prefix matching yet), not from a run of this length.
SIZES: dict[str, InductionSize] = {
    "smoke": InductionSize(n_layer=2, n_embd=16, n_head=2, context_length=16, steps=8, batch_size=4,
                           eval_every=4, eval_rows=16),
    "quick": InductionSize(context_length=32, steps=2000, batch_size=16, eval_every=50, eval_rows=256),
    "full": InductionSize(context_length=32, steps=2000, batch_size=16, eval_every=50, eval_rows=256),
}


def margins(out: dict) -> dict[str, float]:
    """Each figure over its target (nan counts as 0: no fall to give back)."""
    got = {}
    for key, target in TARGETS.items():
        v = out[key]
        got[key] = 0.0 if v != v else v / target  # nan: the score never fell
    return got


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    size = SIZES[budget]
    ctx.log(f"byte model {size.n_layer}x{size.n_embd}, {size.steps} steps ({budget}, seed {seed})")
    out = induction_exam(size, seed=seed, log=ctx.log, quiet=ctx.quiet)
    m = margins(out)
    curve = out.pop("curve")
    return {**out, "margins": m, "induction_margin": min(m.values()),
            "curve_steps": [r["step"] for r in curve], "curve_score": [r["icl_score"] for r in curve],
            "curve_top_prefix": [r["top_prefix"] for r in curve]}


def plot(figures: list[dict[str, Any]], path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, f in enumerate(figures):
        c = f"C{i}"
        left.plot(f["curve_steps"], f["curve_score"], color=c, label=f"seed {f['seed']}")
        left.axhline(f["ablated_score"], color=c, ls=":", lw=0.8)
        right.plot(f["curve_steps"], f["curve_top_prefix"], color=c)
        for ax in (left, right):
            ax.axvline(f["drop_step"], color=c, lw=0.6, ls="--")
    steps = figures[0]["size"]["steps"]
    for ax in (left, right):
        ax.axvline(0.2 * steps, color="grey", lw=1)
        ax.set_xlabel("training step")
    left.set_ylabel("in-context score (bits); dotted: top head ablated")
    right.set_ylabel("top prefix-matching score")
    right.axhline(0.5, color="grey", lw=0.8)
    right.set_ylim(0, 1)
    left.legend()
    fig.suptitle("induction heads: the phase change (dashed: each seed's drop; grey: 20% of training)")
    save_figure(fig, path)


@register
def induction_heads() -> Claim:
    return Claim(
        id="induction-heads",
        statement=("A small transformer learns in context through induction heads that form in an abrupt "
                   "phase change early in training, and removing the top such head undoes most of it."),
        source="issue 20 (the notes' 'GPT-3's few-shot learning'); WAVE2.md section 9: Olsson et al. 2022",
        experiment=("imo.exams.icl.induction_exam: a 2x64 byte GPT (4 heads, RoPE) trained by imo.train.loop.fit "
                    "on random alphanumeric strings of period 8..16 repeated to 33 bytes, 2000 steps of 16; every 50 "
                    "steps, on 256 "
                    "held-out sequences, the in-context score (mean loss at the last 8 bytes minus bytes 2..7) "
                    "and each head's prefix-matching score (on strings of distinct symbols, periods 8..16); at "
                    "the end the top head's output is zeroed. Margin = min(fall in the first 20% / 0.3 bits, "
                    "top prefix matching at the drop / 0.5, share given back by the ablation / 0.7)."),
        anchor=("Olsson et al. 2022: in-context score falls ~0.4 nats in a window early in training as "
                "induction heads form; ablating them removes most of it (their Figures 2 and 5)"),
        rule=Rule(metric="induction_margin", op=">", threshold=1.0, noise=0.25,
                  meaning=("each of the three figures meets the issue's target: the in-context score falls "
                           ">= 0.3 bits in the first 20% of training, the top prefix-matching head is at "
                           ">= 0.5 when the score has fallen half way, and ablating that head gives back "
                           ">= 70% of the fall")),
        measure=measure,
        plot=plot,
        tags=("icl", "interpretability"),
    )
