"""The experts-scale claim (issue 19; imo.model.moe, imo.learn.moe): the notes' "GPT4 ... 16-way
mixture model". A byte GPT whose MLPs are 8 experts with top-2 routing against a dense GPT of
equal active parameters (and so equal training FLOPs, up to the router), judged also against a
dense GPT of equal total parameters and by wall-clock. Its own module, so its fingerprint covers
no other claim's code.

    imo check experts-scale --quick
"""

from __future__ import annotations

from typing import Any

from imo.claims.plotting import plt, save_figure
from imo.claims.registry import Claim, Context, Rule, register

# the tiny preset's GPT (4 x 128, 4 heads; smoke shortens the context), python-docs, AdamW 3e-3
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(steps=3, batch=2, context=32, eval_bytes=2048),
    "quick": dict(steps=50, batch=8, context=256, eval_bytes=32768),
    "full": dict(steps=150, batch=8, context=256, eval_bytes=65536),
}


def arms() -> dict[str, Any]:
    from imo.model.moe import MoEConfig

    return {"moe8x2": MoEConfig(experts=8, top_k=2, aux_coef=0.01),
            "moe8x2-aux0": MoEConfig(experts=8, top_k=2, aux_coef=0.0),  # the load without the balance loss
            "dense-active": MoEConfig(experts=1, top_k=1, hidden=2 * 512),  # the 2 active experts' matrices
            "dense-total": MoEConfig(experts=1, top_k=1, hidden=8 * 512)}  # all 8 experts' matrices


def measure_experts(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.learn.moe import train_moe
    from imo.train.config import RunConfig

    size = SIZES[budget]
    steps = size["steps"]
    cfg = RunConfig.build(preset="tiny", model={"context_length": size["context"]}, train={
        "corpus": "python-docs", "steps": steps, "batch_size": size["batch"], "lr": 3e-3,
        "warmup": max(1, steps // 10), "seed": seed, "device": "cpu", "eval_every": max(1, steps // 6),
        "eval_batches": 2, "log_every": max(1, steps // 6)})
    out: dict[str, Any] = {}
    for name, moe in arms().items():
        ctx.log(f"experts-scale {name} ({budget}, seed {seed})")
        _, f = train_moe(cfg, moe, record=False, quiet=True, eval_bytes=size["eval_bytes"])
        out[name] = {k: f[k] for k in ("val_bpb", "train_flops", "params", "active_params", "seconds",
                                       "train_tokens_per_s", "load_cv", "curve", "steps", "tokens")}
    moe, act, tot = out["moe8x2"], out["dense-active"], out["dense-total"]
    return {"arms": out,
            "gain_vs_active_bpb": act["val_bpb"] - moe["val_bpb"],
            "gain_vs_total_bpb": tot["val_bpb"] - moe["val_bpb"],
            "flops_ratio_vs_active": moe["train_flops"] / act["train_flops"],
            "seconds_ratio_vs_active": moe["seconds"] / act["seconds"],
            "seconds_ratio_vs_total": moe["seconds"] / tot["seconds"],
            "load_cv_max": max(moe["load_cv"]), "load_cv_max_aux0": max(out["moe8x2-aux0"]["load_cv"]),
            "gain_vs_active_bpb_aux0": act["val_bpb"] - out["moe8x2-aux0"]["val_bpb"]}


def plot_experts(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for i, name in enumerate(("moe8x2", "moe8x2-aux0", "dense-active", "dense-total")):
        for f in per_seed:
            c = f["arms"][name]["curve"]
            ax.plot([p["train_flops"] for p in c], [p["val_bpb"] for p in c], "o-", ms=3, color=f"C{i}",
                    alpha=0.7, label=name if f is per_seed[0] else None)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("validation bits/byte")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("tiny GPT on python-docs: 8 experts top-2 vs dense (equal steps and tokens)", fontsize=9)
    save_figure(fig, path)


@register
def experts_scale() -> Claim:
    return Claim(
        id="experts-scale",
        statement="A mixture of experts beats a dense model at equal active compute.",
        source="notes: \"GPT4 ... 16-way mixture model\" (issue 19)",
        experiment="The tiny preset's byte GPT (4 blocks, n_embd 128, 4 heads, context 256, RoPE) on python-docs, "
                   "batch 8, 150 steps (307,200 tokens), AdamW 3e-3, warmup 10%, "
                   "cosine, the same seed and batches for every arm. MoE: every MLP is 8 experts of the GPT's MLP "
                   "shape (128-512-128), top-2 token choice with renormalised gates, Switch load-balancing loss "
                   "0.01, capacity factor 1.25 in training. Dense at equal active parameters: one MLP of width "
                   "1,024 (the 2 active experts' matrices; equal training FLOPs up to the router). Metric: dense "
                   "minus MoE validation bits/byte on the first 64 KiB of the validation split. Also reported, not "
                   "deciding: the gap to a dense MLP of width 4,096 (equal total parameters, 4x the MLP FLOPs), "
                   "the wall-clock ratios, and the MoE with the balance loss off (its expert-load CV).",
        anchor="Fedus et al. 2021 (Switch Transformer): at equal FLOPs per token a sparse model reaches the dense "
               "model's quality several times faster in steps; Jiang et al. 2024 (Mixtral): 8 experts, top-2",
        rule=Rule(metric="gain_vs_active_bpb", op=">", threshold=0.0, noise=0.03,
                  meaning="the MoE reaches lower validation bits/byte than the dense model of equal active "
                          "parameters, at equal steps, tokens and (up to the router) training FLOPs"),
        measure=measure_experts, plot=plot_experts, tags=("learning", "model"))
