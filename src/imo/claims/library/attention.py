"""Claims about attention backends: tiled ("flash") attention is exact and linear in memory.

* `tiled-attention`: Dao et al. 2022 (FlashAttention) compute softmax attention block by block
  with a running maximum and sum, so the (T, T) score matrix never exists. Two parts, both needed:
  (1) exactness: imo's tiled backend against its naive one in float32, forward output and the
  gradients of q, k and v, at lengths that do and do not divide the key block, with and without
  ALiBi biases; (2) memory: the peak extra resident memory of one forward + backward at growing
  lengths, each point in a fresh process (imo.exams.memory), and the slope of log memory against
  log length (1: linear, 2: quadratic). If the tiled backend is not exact (max error > 1e-4), the
  metric is 2.0, so a fast but wrong backend cannot be supported.

    imo check tiled-attention --quick
"""

from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.exams.memory import run_point  # noqa: E402
from imo.model.attention import BACKENDS  # noqa: E402
from imo.model.positions import alibi_slopes  # noqa: E402

EXACT_ATOL = 1e-4  # float32: the two backends sum in different orders; 1e-4 is far above that
NOT_EXACT_SLOPE = 2.0  # the metric's value when the tiled backend is not exact: quadratic

# error_lengths: include 1, a length inside one key block, block multiples and ragged ones
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(error_lengths=[1, 7, 64, 65, 130], memory_lengths=[256, 512]),
    "quick": dict(error_lengths=[1, 37, 64, 200, 513, 1000], memory_lengths=[512, 1024, 2048]),
    "full": dict(error_lengths=[1, 37, 64, 200, 513, 1000, 2048],
                 memory_lengths=[1024, 2048, 4096, 8192]),
}
B, N_HEAD, HEAD_SIZE, BLOCK = 2, 4, 32, 64


def max_errors(T: int, alibi: bool, seed: int) -> tuple[float, float]:
    """(forward, gradient) max abs difference of tiled vs naive at length T, float32."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v, d_out = (torch.randn(B, N_HEAD, T, HEAD_SIZE, generator=gen) for _ in range(4))
    slopes = alibi_slopes(N_HEAD) if alibi else None
    outs, grads = [], []
    for name in ("naive", "tiled"):
        qi, ki, vi = (t.clone().requires_grad_() for t in (q, k, v))
        y = BACKENDS.get(name)(qi, ki, vi, alibi_slopes=slopes, tile=BLOCK)
        y.backward(d_out)
        outs.append(y.detach())
        grads.append([t.grad for t in (qi, ki, vi)])
    fwd = float((outs[0] - outs[1]).abs().max())
    grad = max(float((a - b).abs().max()) for a, b in zip(*grads, strict=True))
    return fwd, grad


def loglog_slope(lengths: list[int], mib: list[float]) -> float:
    """Least-squares slope of log memory against log length; a growth below one KiB (the
    kernel's unit) counts as one KiB, so the log stays finite."""
    return float(np.polyfit(np.log(lengths), np.log(np.maximum(mib, 1 / 1024)), 1)[0])


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    s = SIZES[budget]
    fwd_err = grad_err = 0.0
    for T in s["error_lengths"]:
        for alibi in (False, True):
            f, g = max_errors(T, alibi, seed)
            fwd_err, grad_err = max(fwd_err, f), max(grad_err, g)
    ctx.log(f"exactness: forward {fwd_err:.2g}, gradients {grad_err:.2g}")
    lengths = s["memory_lengths"]
    mib: dict[str, list[float]] = {"naive": [], "tiled": []}
    for T in lengths:
        for name in mib:
            mib[name].append(run_point(name, T, tile=BLOCK, threads=torch.get_num_threads(),
                                       seed=seed)["peak_mib"])
            ctx.log(f"memory {name} T={T}: {mib[name][-1]:.1f} MiB")
    exact = max(fwd_err, grad_err) <= EXACT_ATOL
    tiled_slope = loglog_slope(lengths, mib["tiled"])
    return {
        "tiled_memory_slope": tiled_slope if exact else NOT_EXACT_SLOPE,
        "tiled_memory_slope_measured": tiled_slope,
        "naive_memory_slope": loglog_slope(lengths, mib["naive"]),
        "memory_ratio_at_max_T": mib["naive"][-1] / max(mib["tiled"][-1], 1 / 1024),
        "max_abs_error": max(fwd_err, grad_err),
        "max_abs_error_forward": fwd_err,
        "max_abs_error_grad": grad_err,
        "exact": "yes" if exact else "no",
        "lengths": lengths,
        "naive_mib": mib["naive"],
        "tiled_mib": mib["tiled"],
        "error_lengths": s["error_lengths"],
        "_runs": [],
    }


def plot(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    slope_key = {"naive": "naive_memory_slope", "tiled": "tiled_memory_slope_measured"}
    for j, f in enumerate(per_seed):
        for i, name in enumerate(("naive", "tiled")):
            label = f"{name} (slope {f[slope_key[name]]:.2f})" if j == 0 else None
            ax.plot(f["lengths"], f[f"{name}_mib"], "o-", color=f"C{i}", alpha=0.8, label=label)
    if per_seed:  # reference slopes 1 and 2 through the first tiled / naive points
        f = per_seed[0]
        T0 = f["lengths"][0]
        xs = np.array(f["lengths"], dtype=float)
        ax.plot(xs, f["tiled_mib"][0] * xs / T0, ":", color="C7", lw=1, label="linear")
        ax.plot(xs, f["naive_mib"][0] * (xs / T0) ** 2, "--", color="C7", lw=1, label="quadratic")
        err = max(g["max_abs_error"] for g in per_seed)
        ax.set_title(f"peak memory of forward + backward; max |tiled - naive| = {err:.1e}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("peak extra resident memory (MiB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


@register
def tiled_attention() -> Claim:
    return Claim(
        id="tiled-attention",
        statement="Computing attention in key blocks with a running max and sum (online softmax) "
                  "gives exactly the same result as the full score matrix, in memory that grows "
                  "linearly with length instead of quadratically.",
        source="source-notes: tiling + online softmax gives exact attention in linear memory",
        experiment="Tiled vs naive attention in float32 (B=2, 4 heads, head size 32, key block 64): max "
                   "abs difference of outputs and q/k/v gradients at several lengths, with and without "
                   "ALiBi. Peak extra resident memory of one forward + backward (B=1) at growing lengths, "
                   "each point in a fresh process; metric: the log-log slope of tiled's memory vs length.",
        rule=Rule(metric="tiled_memory_slope", op="<", threshold=1.5, noise=0.2,
                  meaning="the tiled backend equals naive attention within 1e-4 (forward and gradients; "
                          f"if not, the metric is set to {NOT_EXACT_SLOPE:g}) and its peak memory grows "
                          "closer to linearly (slope 1) than quadratically (slope 2): log-log slope below 1.5"),
        measure=measure,
        plot=plot,
        anchor="FlashAttention (Dao et al. 2022): exact attention, tiled with a running max and sum, "
               "memory linear in sequence length",
        tags=("attention", "model", "benchmarks"),
    )

