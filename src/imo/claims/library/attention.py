"""Claims about attention backends: tiled ("flash") attention is faster than the naive form.

* `tiled-attention`: the notes credit FlashAttention's speed to tiling (Dao et al. 2022 compute
  softmax attention block by block with a running maximum and sum, so the (T, T) score matrix
  never exists). Whether that makes attention *faster* is an opinion that can fail: imo's tiled
  backend is plain PyTorch with a Python loop over key blocks, not a fused GPU kernel, and here it
  runs on a CPU. The claim times one forward + backward of the naive backend (the whole score
  matrix) and the tiled one on the same q, k, v at growing lengths, each backend's fastest of k
  calls after an untimed warm-up call, the two interleaved so that drifting load hits both; the
  metric is naive's time over tiled's at the longest length. torch's fused `sdpa` is timed beside
  them for scale, outside the rule. If the tiled output or gradients differ from naive's by more
  than 1e-4 the metric is undefined (NaN: inconclusive): a wrong backend's speed says nothing.

  That tiling is exact and never allocates a (T, T) tensor is a mathematical certainty, not an
  opinion: it is a verified property (imo.claims.properties), decided by tests/model/test_tiled.py.

  The claim measures time, so it should run alone (`flock /tmp/imo-heavy.lock` on a shared machine).

    imo check tiled-attention --quick
"""

import math
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.model.attention import BACKENDS  # noqa: E402

EXACT_ATOL = 1e-4  # float32: the two backends sum in different orders; 1e-4 is far above that
ARMS = ("naive", "tiled")  # the rule's two arms
CONTEXT_ARM = "sdpa"  # torch's fused kernel, timed for scale only

SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(lengths=[128, 256], repeats=2),
    "quick": dict(lengths=[512, 1024, 2048], repeats=3),
    "full": dict(lengths=[1024, 2048, 4096], repeats=5),
}
B, N_HEAD, HEAD_SIZE, TILE = 1, 4, 32, 64


def fwd_bwd(name: str, q, k, v, d_out) -> tuple[float, torch.Tensor, list[torch.Tensor]]:
    """Seconds of one forward + backward of backend `name`, its output and q/k/v gradients."""
    qi, ki, vi = (t.clone().requires_grad_() for t in (q, k, v))
    t0 = time.perf_counter()
    y = BACKENDS.get(name)(qi, ki, vi, tile=TILE)
    y.backward(d_out)
    seconds = time.perf_counter() - t0
    return seconds, y.detach(), [t.grad for t in (qi, ki, vi)]


def time_length(T: int, repeats: int, seed: int) -> dict[str, Any]:
    """Fastest and median seconds of each backend at length T (one warm-up call each, untimed;
    repeats interleaved, the order flipped every round), and tiled's max error against naive."""
    gen = torch.Generator().manual_seed(seed * 1000 + T)
    q, k, v, d_out = (torch.randn(B, N_HEAD, T, HEAD_SIZE, generator=gen) for _ in range(4))
    names = (*ARMS, CONTEXT_ARM)
    results = {name: fwd_bwd(name, q, k, v, d_out) for name in names}  # warm-up; kept for the error
    (_, y_n, g_n), (_, y_t, g_t) = results["naive"], results["tiled"]
    error = max([float((y_n - y_t).abs().max())] + [float((a - b).abs().max()) for a, b in zip(g_n, g_t, strict=True)])
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(fwd_bwd(name, q, k, v, d_out)[0])
    out: dict[str, Any] = {"T": T, "max_abs_error": error}
    for name in names:
        out[f"{name}_s"] = min(times[name])
        out[f"{name}_s_median"] = float(np.median(times[name]))
    out["speedup"] = out["naive_s"] / out["tiled_s"]
    return out


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    s = SIZES[budget]
    rows = []
    for T in s["lengths"]:
        rows.append(time_length(T, s["repeats"], seed))
        r = rows[-1]
        ctx.log(f"T={T}: naive {r['naive_s']:.3f} s, tiled {r['tiled_s']:.3f} s, sdpa {r['sdpa_s']:.3f} s "
                f"(speedup {r['speedup']:.2f})")
    error = max(r["max_abs_error"] for r in rows)
    exact = error <= EXACT_ATOL
    last = rows[-1]
    return {
        "speedup_at_max_T": last["speedup"] if exact else math.nan,
        "speedup_at_max_T_measured": last["speedup"],
        "max_T": last["T"],
        "sdpa_speedup_at_max_T": last["naive_s"] / last["sdpa_s"],
        "max_abs_error": error,
        "exact": "yes" if exact else "no",
        "repeats": s["repeats"],
        "threads": torch.get_num_threads(),
        "lengths": [r["T"] for r in rows],
        "speedups": [r["speedup"] for r in rows],
        **{f"{name}_s": [r[f"{name}_s"] for r in rows] for name in (*ARMS, CONTEXT_ARM)},
        "_runs": [],
    }


def plot(per_seed: list[dict[str, Any]], path) -> None:
    """Left: seconds of one forward + backward per backend against length; right: naive / tiled."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=100)
    for j, f in enumerate(per_seed):
        for i, name in enumerate((*ARMS, CONTEXT_ARM)):
            ax.plot(f["lengths"], f[f"{name}_s"], "o-", color=f"C{i}", alpha=0.8,
                    label=(name if name != CONTEXT_ARM else f"{name} (torch's fused kernel, for scale)") if j == 0 else None)
        ax2.plot(f["lengths"], f["speedups"], "o-", color="C1", alpha=0.8, label="naive / tiled" if j == 0 else None)
    ax2.axhline(1.0, color="C7", ls="--", lw=1, label="equal speed")
    for axis in (ax, ax2):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("sequence length T")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("seconds, forward + backward (fastest call)")
    ax2.set_ylabel("speedup of tiled over naive")
    threads = per_seed[0]["threads"] if per_seed else "?"
    ax.set_title(f"B={B}, {N_HEAD} heads, head size {HEAD_SIZE}, tile {TILE}, {threads} thread(s)", fontsize=10)
    save_figure(fig, path)


@register
def tiled_attention() -> Claim:
    return Claim(
        id="tiled-attention",
        statement="Tiled attention (key blocks with a running max and sum, as in FlashAttention) is "
                  "faster than naive attention over the full score matrix at long sequence lengths, "
                  "here in plain PyTorch on a CPU.",
        source="source-notes: Flash Attention achieves its speed and memory efficiency by tiling",
        experiment=f"One forward + backward of causal attention (B={B}, {N_HEAD} heads, head size "
                   f"{HEAD_SIZE}, float32, one thread, key tile {TILE}) with imo's naive and tiled "
                   "backends on the same inputs at growing lengths (up to 256/2048/4096 at "
                   "smoke/quick/full): each backend's fastest of 2/3/5 interleaved calls after a "
                   "warm-up call; torch's sdpa timed beside them for scale, outside the rule. The "
                   "tiled output and gradients must match naive's within 1e-4.",
        rule=Rule(metric="speedup_at_max_T", op=">", threshold=1.0, effect=0.1, noise=0.25,
                  meaning="at the longest length, tiled attention's forward + backward takes less "
                          "than 1/1.1 of naive attention's time (exact within 1e-4; if not, the "
                          "metric is undefined and the verdict inconclusive)"),
        measure=measure,
        plot=plot,
        anchor="FlashAttention (Dao et al. 2022): 3x faster end-to-end GPT-2 training at length 1K "
               "than standard attention (a fused CUDA kernel on A100 GPUs), memory linear in length",
        version=2,  # v1 tested exactness and memory, now a verified property (issue 13): v2 times speed
        tags=("attention", "model", "benchmarks", "timing"),
    )
