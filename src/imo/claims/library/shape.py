"""Claims about the network's shape: width against depth, and more output heads.

`width-over-depth` trains deep-narrow, balanced and shallow-wide GPTs with the same non-embedding
parameter count (within a few percent) on the same tokens, so about the same training FLOPs
(6 N D plus attention, Kaplan et al. 2020), and compares next-byte bits per byte on held-out
text. Fair arms: every shape gets the same small learning-rate grid (LR_GRID: three rates, 4x
from end to end, centred on imo's default 3e-3), the same steps and tokens for every grid point,
so equal compute and equal tuning effort; each shape is judged at its own best rate. The best is
chosen on the first half of the validation split and scored on the second half, so the choice
never sees the bytes it is judged on (the halves are disjoint in their targets).

`more-output-heads` trains the same trunk with 1, 2 and 4 multi-token prediction heads
(Gloeckle et al. 2024, "Better & Faster Large Language Models via Multi-token Prediction"; heads
are one block each on the shared trunk, see imo.model.gpt) for the same steps and tokens, and
compares the next-byte loss of the first head. The paper finds gains at 13B and losses at small
sizes, so at these sizes it predicts no gain.

    imo check width-over-depth --quick
"""

from __future__ import annotations

from typing import Any

from imo.claims.plotting import save_figure
from imo.claims.registry import Claim, Context, Rule, register
from imo.exams.scaling import CORPUS, train_sweep

HEAD_SIZE = 16

# (n_layer, n_embd), deepest first; each list has equal non-embedding parameters within 10%
# (tests/claims/test_library_shape.py checks it): n_layer * n_embd^2 is held constant.
SHAPES: dict[str, list[tuple[int, int]]] = {
    "smoke": [(4, 16), (2, 22), (1, 32)],  # ~13k parameters
    "quick": [(9, 32), (4, 48), (1, 96)],  # ~113k
    "full": [(16, 64), (4, 128), (1, 256)],  # ~0.79M, the size of the "tiny" preset
}
# the learning rates every shape is trained at (the same grid for each: equal tuning effort)
LR_GRID = (1.5e-3, 3e-3, 6e-3)

# the training recipe of the heads claim, and of every width-over-depth grid point but its rate;
# tokens = steps * batch_size * context_length, the same for every model
TRAIN: dict[str, dict[str, Any]] = {
    "smoke": dict(steps=8, batch_size=4, warmup=2, eval_batches=1),
    "quick": dict(steps=300, batch_size=8, warmup=30, eval_batches=2),
    "full": dict(steps=400, batch_size=16, warmup=40, eval_batches=4),
}
# width-over-depth trains len(LR_GRID) runs per shape, so it gets fewer steps than the heads
# claim to keep a full check (3 seeds x 3 shapes x 3 rates) within 30 minutes on one core
WIDTH_TRAIN: dict[str, dict[str, Any]] = {
    "smoke": dict(steps=8, batch_size=4, warmup=2, eval_batches=1),
    "quick": dict(steps=120, batch_size=8, warmup=12, eval_batches=2),
    "full": dict(steps=200, batch_size=16, warmup=20, eval_batches=4),
}
CONTEXT = {"smoke": 32, "quick": 64, "full": 128}

# the shared trunk of the heads claim: n_layer - 1 trunk blocks, then one block per head
HEADS_TRUNK = {
    "smoke": dict(n_layer=2, n_embd=16, n_head=1),
    "quick": dict(n_layer=3, n_embd=48, n_head=3),
    "full": dict(n_layer=4, n_embd=96, n_head=6),
}
HEADS = (1, 2, 4)

# One-seed margins, from seed-to-seed noise measured at the quick budget (seeds 0, 1, 2):
# width-over-depth v2 (a rate grid, 120 steps) came out 1.132, 0.633, 0.666 (std 0.28; v1, one
# rate and 300 steps, gave 0.383, 0.416, 0.395): the margin is about 2 std.
# The heads claim is noisier: the 1-head model's bpb spread by 0.02 (std), but the multi-head
# models sit on a loss plateau at 300 steps and spread by 0.14, so gain_bpb_4_heads came out
# -0.44, -0.56, -0.70 (std 0.13): one seed decides only beyond about 2 std.
WIDTH_MARGIN = 0.55
HEADS_MARGIN = 0.25

def shape_model(n_layer: int, n_embd: int, context: int) -> dict[str, Any]:
    return dict(n_layer=n_layer, n_embd=n_embd, n_head=max(1, n_embd // HEAD_SIZE), context_length=context)


def _label(p: dict[str, Any]) -> str:
    return f"{p['n_layer']}x{p['n_embd']}"


# ---- width over depth -----------------------------------------------------------------------


def half_split_bpb(store, run: str, context: int) -> tuple[float, float]:
    """Bits/byte of a run's model on the two halves of the validation split: (selection, scored).
    The selection half's targets are val[1..h], the scored half's val[h+1..]: disjoint."""
    from imo.data.corpora import load_corpus
    from imo.train.checkpoint import load_model
    from imo.train.evaluate import evaluate_split

    val = load_corpus(CORPUS).val
    h = len(val) // 2
    model, _ = load_model(store.run_dir(run))
    return evaluate_split(model, val[: h + 1], context), evaluate_split(model, val[h:], context)


def pick_best(select_bpb: list[list[float]]) -> list[int]:
    """Per shape (row), the index of the grid rate with the lowest selection-half bits/byte
    (ties: the lower rate; NaN never wins)."""
    return [min(range(len(row)), key=lambda j: (row[j] != row[j], row[j], j)) for row in select_bpb]


def measure_width(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    context = CONTEXT[budget]
    models = [shape_model(L, d, context) for L, d in SHAPES[budget]]
    grid = {lr: train_sweep(models, dict(WIDTH_TRAIN[budget], lr=lr), seed, ctx) for lr in LR_GRID}
    n = len(models)
    halves = {lr: [half_split_bpb(ctx.store, p["run"], context) for p in pts] for lr, pts in grid.items()}
    select = [[halves[lr][i][0] for lr in LR_GRID] for i in range(n)]
    scored = [[halves[lr][i][1] for lr in LR_GRID] for i in range(n)]
    best = pick_best(select)
    points = [grid[LR_GRID[j]][i] for i, j in enumerate(best)]  # each shape at its own best rate
    bpb = [scored[i][j] for i, j in enumerate(best)]
    params = [p["params"] for p in points]
    tokens = {lr: [p["tokens"] for p in pts] for lr, pts in grid.items()}
    if len({t for ts in tokens.values() for t in ts}) != 1:
        raise RuntimeError(f"grid points trained on unequal tokens: {tokens}")
    return {
        "wide_minus_deep_bpb": bpb[0] - bpb[-1],
        "shapes": [_label(p) for p in points],
        "val_bpb": bpb,  # scored half, each shape at the rate its selection half chose
        "lr_grid": list(LR_GRID),
        "best_lr": [LR_GRID[j] for j in best],
        # a best rate at either end of the grid: that shape might have wanted a rate outside it
        "best_lr_at_grid_edge": [_label(p) for p, j in zip(points, best, strict=True) if j in (0, len(LR_GRID) - 1)],
        "select_bpb": select,  # [shape][rate], the first validation half
        "scored_bpb": scored,  # [shape][rate], the second validation half
        "params": params,
        "param_spread": max(params) / min(params) - 1,  # equal-size check: must stay below 0.10
        "tflops_per_run": [p["flops"] / 1e12 for p in points],
        "runs_per_shape": len(LR_GRID),
        "tokens": points[0]["tokens"],
        "seconds": [round(sum(grid[lr][i]["seconds"] for lr in LR_GRID), 1) for i in range(n)],
        "best_shape": _label(points[min(range(n), key=lambda i: bpb[i])]),
        "_runs": [p["run"] for pts in grid.values() for p in pts],
    }


def plot_width(per_seed: list[dict[str, Any]], path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for i, f in enumerate(per_seed):
        layers = [int(s.split("x")[0]) for s in f["shapes"]]
        ax.plot(layers, f["val_bpb"], "o-", color=f"C{i}", label=f"seed {i}")
        for x, y, s, lr in zip(layers, f["val_bpb"], f["shapes"], f["best_lr"], strict=True):
            ax.annotate(f"{s} @ {lr:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.margins(x=0.2, y=0.1)  # room for the labels
    ax.set_xlabel("layers (width shrinks as depth grows; parameters held equal)")
    ax.set_ylabel("bits per byte, scored validation half")
    p = per_seed[0]
    ax.set_title(f"each shape at its best rate: ~{p['params'][0] / 1e3:.0f}k parameters, "
                 f"{p['tokens'] / 1e6:.2f}M tokens a run", fontsize=9)
    ax.legend(fontsize=8)
    for k, s in enumerate(p["shapes"]):
        for i, f in enumerate(per_seed):
            bx.plot(f["lr_grid"], f["select_bpb"][k], "o-" if i == 0 else "o:", color=f"C{k}",
                    alpha=0.8, label=s if i == 0 else None)
    bx.set_xscale("log")
    bx.set_xticks(p["lr_grid"], [f"{lr:g}" for lr in p["lr_grid"]])
    bx.minorticks_off()
    bx.set_xlabel("peak learning rate (the same grid for every shape)")
    bx.set_ylabel("bits per byte, selection validation half")
    bx.set_title("the rate grid: the lowest point per shape is chosen", fontsize=9)
    bx.legend(fontsize=8)
    save_figure(fig, path)


@register
def width_over_depth() -> Claim:
    return Claim(
        id="width-over-depth",
        statement="At equal parameters and equal training compute, a wide shallow network "
                  "predicts text better than a deep narrow one.",
        source="source-notes.md, Weak Opinions: \"We need to increase embedding token size, "
               "width of network, not the deep of network.\"",
        experiment="Byte-level GPTs of equal non-embedding parameters (n_layer x n_embd^2 held "
                   "constant: smoke 4x16..1x32, quick 9x32, 4x48, 1x96; full 16x64, 4x128, "
                   "1x256), each trained on the same python-docs tokens at each of three peak "
                   "learning rates (1.5e-3, 3e-3, 6e-3; the same grid, steps and tokens for every "
                   "shape: equal compute and equal tuning); each shape's rate is chosen on the "
                   "first half of the validation split and its bits per byte scored on the second.",
        rule=Rule(metric="wide_minus_deep_bpb", op=">", threshold=0.0, noise=WIDTH_MARGIN,
                  meaning="the shallowest, widest shape, at its own best rate, ends with lower "
                          "held-out bits/byte than the deepest, narrowest one at its own (the "
                          "difference is deep minus wide)"),
        measure=measure_width,
        anchor="Kaplan et al. 2020 (Fig. 5, 6): at fixed non-embedding N, changing the aspect "
               "ratio d_model/n_layer by a factor of 40 changes the loss by only a few percent; "
               "only models with fewer than 2 layers or extreme depth-to-width ratios fall off the trend.",
        plot=plot_width,
        # v2: a learning-rate grid per shape, chosen on a validation half and scored on the other;
        # fewer steps (full: 200, was 600; without 7x96) to fit 30 minutes on one core; the
        # one-seed band measured again (0.55, was 0.05) (issue 13)
        version=2,
        tags=("shape", "training"),
    )


# ---- more output heads ----------------------------------------------------------------------


def measure_heads(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    trunk = dict(HEADS_TRUNK[budget], context_length=CONTEXT[budget])
    points = train_sweep([dict(trunk, n_future=k) for k in HEADS], TRAIN[budget], seed, ctx)
    bpb = {p["n_future"]: p["val_bpb"] for p in points}
    gain4 = bpb[1] - bpb[4]
    if gain4 > HEADS_MARGIN:
        paper = "not reproduced: 4 heads help the next byte at this size"
    elif gain4 < -HEADS_MARGIN:
        paper = "reproduced: 4 heads hurt the next byte at this size"
    else:
        paper = "reproduced: no gain from 4 heads at this size (within the margin)"
    return {
        "gain_bpb_4_heads": gain4,
        "gain_bpb_2_heads": bpb[1] - bpb[2],
        "heads": list(HEADS),
        "val_bpb": [bpb[k] for k in HEADS],  # next-byte loss of the first head (eval mode)
        "params": [p["params"] for p in points],  # each extra head is one more block
        "tflops": [p["flops"] / 1e12 for p in points],
        "tokens": points[0]["tokens"],
        "seconds": [round(p["seconds"], 1) for p in points],
        "paper": paper,
        "_runs": [p["run"] for p in points],
    }


def plot_heads(per_seed: list[dict[str, Any]], path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for i, f in enumerate(per_seed):
        ax.plot(f["heads"], f["val_bpb"], "o-", color=f"C{i}", label=f"seed {i}")
    ax.set_xticks(list(HEADS))
    ax.set_xlabel("prediction heads (n_future)")
    ax.set_ylabel("next-byte validation bits per byte")
    ax.set_title(f"multi-token prediction, {per_seed[0]['tokens'] / 1e6:.2f}M tokens each")
    ax.legend()
    save_figure(fig, path)


@register
def more_output_heads() -> Claim:
    return Claim(
        id="more-output-heads",
        statement="Training a network to predict several bytes ahead with more output heads "
                  "makes it better at predicting the next byte.",
        source="source-notes.md, OPENAI: \"My guess OpenAI train AI with more output layers; "
               "More output layers force AI to have deeper understanding.\"",
        experiment="One trunk (quick: 3 layers x 48, context 64; full: 4 x 96, context 128) trained with 1, 2 and 4 "
                   "multi-token heads for the same steps and tokens on python-docs; next-byte "
                   "validation bits per byte of the first head on the whole split.",
        rule=Rule(metric="gain_bpb_4_heads", op=">", threshold=0.0, noise=HEADS_MARGIN,
                  meaning="the model trained with 4 heads predicts the next byte better than the "
                          "one-head model (gain = bpb with 1 head minus bpb with 4)"),
        measure=measure_heads,
        # v2: the full trunk is 4 x 96 (was 4 x 128) trained 400 steps (was 600), so that a full
        # check (3 seeds x 3 models) fits 30 minutes on one core; v1 took about 60
        version=2,
        anchor="Gloeckle et al. 2024: 4-token prediction helps at 13B parameters (+12% HumanEval) "
               "and hurts next-token benchmarks at small sizes (below about 1B).",
        plot=plot_heads,
        tags=("shape", "training", "reproduce"),
    )
