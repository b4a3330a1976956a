"""Claims about position encodings: symmetry breaking, length extrapolation, context extension.

* `position-breaks-symmetry`: attention scores are dot products, and without positions nothing
  else tells a layer where a token sits, so a one-layer model's output at the last position is a
  function of the *set* of earlier bytes: shuffling them changes it only by float rounding. Each
  encoding (learned, sinusoidal, RoPE, ALiBi) must break that. Measured on briefly trained
  one-layer models rather than untrained ones: at initialisation attention is nearly uniform,
  which makes every effect small and says little about a model that has learned to use its
  context. The shuffle's effect is divided by the effect of replacing the prefix with other text
  (the "order share"), so that a model which mostly ignores its prefix is not mistaken for one
  whose encoding keeps the symmetry. The exact symmetry holds for one layer only: in a deeper
  causal model, position j's first-layer output depends on the set of bytes 0..j, so the second
  layer sees order even without positions (Haviv et al. 2022, "Transformer language models
  without positional encodings still learn positional information"); the claim reports that
  figure for a deeper model beside the one-layer ones, outside the rule.
* `alibi-extrapolates`: Press et al. 2022, trained at L and evaluated at up to 16L
  (imo.exams.extrapolation).
* `interpolation-extends`: Chen et al. 2023, a RoPE model fine-tuned at 4L with positions scaled
  by 1/4 vs left as they are (imo.exams.interpolation).

The models of the last two claims (and the deeper position-free one) are the same runs
(train_or_reuse shares them).

    imo check position-breaks-symmetry --quick
"""

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.data.batches import random_batch  # noqa: E402
from imo.data.corpora import load_corpus  # noqa: E402
from imo.exams.extrapolation import FACTORS, extrapolation_curve  # noqa: E402
from imo.exams.interpolation import interpolation_curve  # noqa: E402
from imo.train.checkpoint import load_model  # noqa: E402
from imo.train.config import RunConfig  # noqa: E402
from imo.train.trainer import train_or_reuse  # noqa: E402

ENCODINGS = ("learned", "sinusoidal", "rope", "alibi")

# One model size per budget, shared by the three claims (position-breaks-symmetry uses it with
# one layer). quick: ~0.1M parameters, 300 steps of 16 x 32 bytes, a few seconds a model on
# 2 cores; full: the `tiny` preset's width and depth at L = 128, 500 steps
# (~2 minutes a model on a busy machine, so 4 models x 3 seeds fit in 30 minutes).
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(model=dict(n_layer=1, n_embd=32, n_head=4, context_length=16), steps=4, batch=4,
                  warmup=1, windows=4, eval_tokens=1024, ft_steps=4),
    "quick": dict(model=dict(n_layer=2, n_embd=64, n_head=4, context_length=32), steps=300, batch=16,
                  warmup=20, windows=16, eval_tokens=8192, ft_steps=48),
    "full": dict(model=dict(n_layer=4, n_embd=128, n_head=4, context_length=128), steps=500, batch=16,
                 warmup=50, windows=32, eval_tokens=32768, ft_steps=200),
}


def base_config(pos: str, budget: str, seed: int, **model: Any) -> RunConfig:
    s = SIZES[budget]
    return RunConfig.build(
        preset=None, model={**s["model"], "pos": pos, **model},
        train={"corpus": "python-docs", "steps": s["steps"], "seed": seed, "batch_size": s["batch"],
               "warmup": s["warmup"]},
    )


def base_run(pos: str, budget: str, seed: int, ctx: Context, **model: Any) -> str:
    ctx.log(f"{pos} model ({budget}, seed {seed}{''.join(f', {k}={v}' for k, v in model.items())})")
    return train_or_reuse(base_config(pos, budget, seed, **model), store=ctx.store, quiet=ctx.quiet,
                            code_fingerprint=ctx.code_fingerprint)


# --- position-breaks-symmetry -----------------------------------------------------------------


@torch.no_grad()
def prefix_effects(model, x: torch.Tensor, shuffles: int, gen: torch.Generator) -> tuple[list[float], list[float]]:
    """Relative changes ||a - b|| / ||a|| of the last position's logits, for windows x (N, T):
    (one per window and shuffle of all bytes but the last, one per window whose prefix is
    replaced by the next window's)."""
    N, T = x.shape
    rel = lambda a, b: ((a - b).norm(dim=-1) / a.norm(dim=-1)).tolist()  # noqa: E731
    a = model(x)[0][:, -1]  # (N, vocab)
    shuffled = []
    for _ in range(shuffles):
        perm = torch.stack([torch.randperm(T - 1, generator=gen) for _ in range(N)])  # (N, T-1)
        perm = torch.cat([perm, torch.full((N, 1), T - 1)], dim=1)  # the last byte stays last
        shuffled += rel(a, model(x.gather(1, perm))[0][:, -1])
    other = torch.cat([x.roll(1, dims=0)[:, :-1], x[:, -1:]], dim=1)  # same last byte, other text
    return shuffled, rel(a, model(other)[0][:, -1])


def measure_symmetry(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    s = SIZES[budget]
    val = load_corpus("python-docs").val
    gen = torch.Generator().manual_seed(1000 + seed)
    x, _ = random_batch(val, s["model"]["context_length"], s["windows"], gen)  # (N, L) real text
    deep = max(2, s["model"]["n_layer"])
    figures: dict[str, Any] = {"_runs": [], "deep_layers": deep}
    for pos in ("none", *ENCODINGS, "none_deep"):
        run_id = (base_run("none", budget, seed, ctx, n_layer=deep) if pos == "none_deep"
                  else base_run(pos, budget, seed, ctx, n_layer=1))
        figures["_runs"].append(run_id)
        model, _ = load_model(ctx.store.run_dir(run_id))
        shuffled, replaced = prefix_effects(model, x, shuffles=4, gen=gen)
        # without positions: the worst case (the float-rounding bound); with one: the typical effect
        change = max(shuffled) if pos == "none" else sum(shuffled) / len(shuffled)
        figures[f"change_{pos}"] = change
        figures[f"order_share_{pos}"] = change / max(sum(replaced) / len(replaced), 1e-30)
    noise = max(figures["order_share_none"], 1e-12)
    weakest = min(ENCODINGS, key=lambda p: figures[f"order_share_{p}"])
    figures["weakest_encoding"] = weakest
    figures["log10_min_break_ratio"] = math.log10(max(figures[f"order_share_{weakest}"], 1e-30) / noise)
    return figures


def plot_symmetry(per_seed: list[dict[str, Any]], path) -> None:
    names = ["none", *ENCODINGS, "none_deep"]
    deep = per_seed[0]["deep_layers"] if per_seed else 2
    labels = ["none", *ENCODINGS, f"none,\n{deep} layers"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for i, name in enumerate(names):
        vals = [max(f[f"order_share_{name}"], 1e-12) for f in per_seed]
        ax.bar(i, sum(vals) / len(vals), color="C7" if name.startswith("none") else f"C{i}", alpha=0.7,
               hatch="//" if name == "none_deep" else None)
        ax.plot([i] * len(vals), vals, "k.", markersize=6)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), labels)
    ax.set_ylabel("order share: change of the last logits when the\nprefix is shuffled / when it is replaced")
    ax.set_title("one-layer models (none: worst window); hatched: outside the rule", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    save_figure(fig, path)


# not registered (issue 13): that attention without positions is permutation-equivariant is a
# mathematical certainty, decided by tests (imo.claims.properties), not an opinion to vote on.
# The measurement stays for the figures it gives (how much each encoding sees order).
def position_breaks_symmetry() -> Claim:
    return Claim(
        id="position-breaks-symmetry",
        statement="Attention alone cannot see order (x.y = y.x): without positions a shuffled prefix "
                  "gives the same output, and every position encoding breaks that symmetry.",
        source="source-notes: position encoding breaks attention's x.y = y.x symmetry",
        experiment="Briefly trained one-layer byte models without positions and with learned, "
                   "sinusoidal, RoPE and ALiBi positions; the last position's logits on validation "
                   "windows before and after shuffling all earlier bytes (4 shuffles a window), divided "
                   "by their change when the earlier bytes are replaced by other text (the order share). "
                   "Without positions the worst window's share is the float-rounding floor; with an "
                   "encoding, the mean. A deeper position-free model is reported beside, outside the rule.",
        rule=Rule(metric="log10_min_break_ratio", op=">", threshold=2.0, noise=0.5,
                  meaning="even the weakest encoding's order share is at least 100 times the float "
                          "rounding a shuffle causes without positions (one layer: exactly invariant)"),
        measure=measure_symmetry,
        plot=plot_symmetry,
        anchor=None,
        tags=("positions", "model"),
    )


# --- alibi-extrapolates -----------------------------------------------------------------------

FLAT_BPB = 0.1  # "without getting worse": less than 0.1 bits/byte lost from L to 16L
LEARNED_BPB = 0.1  # a model must beat the byte frequencies by this at L, else its curve says nothing
EXPLODES_BPB = 1.0  # "explodes": at 16L every byte is on average half as likely as at L, or worse


def unigram_bpb(max_tokens: int) -> float:
    """Bits/byte of the training split's byte frequencies (add-one) on the first validation bytes:
    a model no better than this has learned no context at all, so its curve says nothing."""
    corpus = load_corpus("python-docs")
    counts = np.bincount(np.asarray(corpus.train), minlength=256) + 1.0
    val = np.asarray(corpus.val[1 : max_tokens + 1])  # the bytes evaluate_split scores
    return float(-np.log2(counts[val] / counts.sum()).mean())


def extrapolation_margin(alibi_degradation: float, sinusoidal_degradation: float, testable: bool) -> float:
    """The claim's two halves in one number: the smaller of ALiBi's room below the flat line
    (FLAT_BPB - its loss from L to 16L) and sinusoidal's loss beyond it (its loss - FLAT_BPB).
    Positive only if ALiBi stays flat *and* sinusoidal gets worse; NaN (inconclusive) where either
    model is no better than byte frequencies at L."""
    if not testable:
        return math.nan
    return min(FLAT_BPB - alibi_degradation, sinusoidal_degradation - FLAT_BPB)


def measure_extrapolation(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    s = SIZES[budget]
    figures: dict[str, Any] = {"_runs": [], "factors": list(FACTORS),
                               "train_context": s["model"]["context_length"]}
    for pos in ENCODINGS:
        run_id = base_run(pos, budget, seed, ctx)
        figures["_runs"].append(run_id)
        ctx.log(f"evaluating {pos} at {', '.join(f'{f}L' for f in FACTORS)}")
        curve = extrapolation_curve(run_id, ctx.store, FACTORS, max_tokens=s["eval_tokens"])
        figures[f"bpb_{pos}"] = [curve[f] for f in FACTORS]  # None where the encoding cannot go
        last = curve[FACTORS[-1]]
        figures[f"{pos}_degradation_bpb"] = None if last is None else last - curve[1]
    figures["unigram_bpb"] = unigram_bpb(s["eval_tokens"])
    untestable = [p for p in ("alibi", "sinusoidal")
                  if figures[f"bpb_{p}"][0] > figures["unigram_bpb"] - LEARNED_BPB]
    figures["untestable"] = ", ".join(untestable) if untestable else "none"
    if "sinusoidal" in untestable:
        figures["sinusoidal_explodes"] = "untestable (no better than unigram at L)"
    else:
        figures["sinusoidal_explodes"] = "yes" if figures["sinusoidal_degradation_bpb"] > EXPLODES_BPB else "no"
    figures["alibi_flat_sinusoidal_not_bpb"] = extrapolation_margin(
        figures["alibi_degradation_bpb"], figures["sinusoidal_degradation_bpb"], testable=not untestable)
    return figures


def plot_extrapolation(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for i, pos in enumerate(ENCODINGS):
        for j, f in enumerate(per_seed):
            pts = [(x, y) for x, y in zip(f["factors"], f[f"bpb_{pos}"], strict=True) if y is not None]
            xs, ys = zip(*pts, strict=True) if pts else ((), ())
            ax.plot(xs, ys, "o-", color=f"C{i}", alpha=0.8, label=pos if j == 0 else None)
    L = per_seed[0]["train_context"] if per_seed else "L"
    if per_seed:
        ax.axhline(per_seed[0]["unigram_bpb"], color="C7", lw=1, ls=":", label="byte frequencies alone")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"evaluation context / training context (L = {L}); learned: n/a past 1")
    ax.set_ylabel("validation bits per byte")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


@register
def alibi_extrapolates() -> Claim:
    return Claim(
        id="alibi-extrapolates",
        statement="A model with ALiBi positions trained on short inputs reads inputs many times "
                  "longer without getting worse; sinusoidal positions do not.",
        source="source-notes: ALiBi extrapolates to longer inputs",
        experiment="Train learned, sinusoidal, RoPE and ALiBi models at context L; bits/byte on the "
                   "same validation bytes in non-overlapping windows of L, 2L, 4L, 8L and 16L (learned "
                   "positions cannot go past L: n/a). Metric, both halves of the statement at once: the "
                   f"smaller of {FLAT_BPB:g} - ALiBi's loss from L to 16L and sinusoidal's loss - "
                   f"{FLAT_BPB:g} (undefined where ALiBi's or sinusoidal's model is not {LEARNED_BPB:g} "
                   "bits/byte better than byte frequencies at L).",
        rule=Rule(metric="alibi_flat_sinusoidal_not_bpb", op=">", threshold=0.0, noise=0.05,
                  meaning=f"ALiBi loses less than {FLAT_BPB:g} bits/byte (per-byte perplexity up < 7%) "
                          f"from L to 16L, flat as Press et al. report, and sinusoidal loses more than "
                          f"{FLAT_BPB:g}. {FLAT_BPB:g} is a few percent of the ~2 bits/byte these models "
                          "reach; the band 0.05 covers one seed's training noise in a difference of two "
                          "evaluations on the same bytes"),
        measure=measure_extrapolation,
        plot=plot_extrapolation,
        anchor="Press et al. 2022 (ALiBi): trained at 512, perplexity stays flat to 3072 tokens, "
               "while sinusoidal positions explode beyond the training length",
        version=2,  # v1's rule tested only ALiBi's half; v2 also sinusoidal's, and needs both models
        # to have learned context at L (issue 13)
        tags=("positions", "exams"),
    )


# --- interpolation-extends --------------------------------------------------------------------

FACTOR = 4


def measure_interpolation(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    s = SIZES[budget]
    base = base_run("rope", budget, seed, ctx)
    ctx.log(f"fine-tuning at {FACTOR}L: interpolated and extrapolated positions")
    curve = interpolation_curve(base, ctx.store, factor=FACTOR, steps=s["ft_steps"], points=4,
                                seed=seed, quiet=ctx.quiet)
    interp, extrap = curve["interpolation"], curve["extrapolation"]
    return {
        "_runs": [base, *curve["runs"]],
        "train_context": s["model"]["context_length"],
        "context": curve["context"],
        "steps": curve["steps"],
        "bpb_interpolation": interp,
        "bpb_extrapolation": extrap,
        "pi_advantage_bpb": extrap[1] - interp[1],  # after a quarter of the fine-tuning steps
        "pi_advantage_bpb_at_0": extrap[0] - interp[0],
        "pi_advantage_bpb_at_end": extrap[-1] - interp[-1],
        "base_val_bpb_at_L": ctx.store.get(base)["figures"]["val_bpb"],
        "eval_check": curve["eval_check"],
    }


def plot_interpolation(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for j, f in enumerate(per_seed):
        first = j == 0
        ax.plot(f["steps"], f["bpb_interpolation"], "o-", color="C0", alpha=0.8,
                label=f"interpolation (rope_scale 1/{FACTOR})" if first else None)
        ax.plot(f["steps"], f["bpb_extrapolation"], "s--", color="C3", alpha=0.8,
                label="extrapolation (rope_scale 1)" if first else None)
        ax.axhline(f["base_val_bpb_at_L"], color="C7", lw=1, ls=":",
                   label="base model at L (whole split)" if first else None)
    ctxs = f"{per_seed[0]['train_context']} -> {per_seed[0]['context']}" if per_seed else ""
    ax.set_xlabel(f"fine-tuning steps at the longer context ({ctxs})")
    ax.set_ylabel("validation bits per byte at the longer context")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


@register
def interpolation_extends() -> Claim:
    return Claim(
        id="interpolation-extends",
        statement="Squeezing a RoPE model's positions into its trained range lets it use a longer "
                  "context after little fine-tuning, where extrapolating its positions does not.",
        source="source-notes: position interpolation extends the context with little fine-tuning",
        experiment=f"A RoPE model trained at L, fine-tuned at {FACTOR}L twice: positions scaled by "
                   f"1/{FACTOR} (interpolation) vs unchanged (extrapolation). Bits/byte at {FACTOR}L on "
                   "fixed validation windows at 0, N/4, N/2, 3N/4 and N steps. Metric: extrapolation "
                   "minus interpolation after N/4 steps.",
        rule=Rule(metric="pi_advantage_bpb", op=">", threshold=0.0, noise=0.03,
                  meaning=f"after a quarter of the fine-tuning steps at {FACTOR}L, the interpolated model "
                          "is better than the extrapolated one (both are scored on the same windows; 0.03 "
                          "bits/byte is one seed's training noise)"),
        measure=measure_interpolation,
        plot=plot_interpolation,
        anchor="Chen et al. 2023 (position interpolation): LLaMA extended to 32k context within 1000 "
               "fine-tuning steps; fine-tuning with extrapolated positions fails to extend it",
        tags=("positions", "exams"),
    )
