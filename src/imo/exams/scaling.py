"""Scaling exam: train a sweep of model shapes on equal tokens, count their parameters and FLOPs,
and fit the loss against size, L(N) = E + A * N^-alpha (Kaplan et al. 2020; Hoffmann et al. 2022
"Chinchilla" fit E + A/N^a + B/D^b, of which this is the fixed-D slice).

For a fixed alpha the law is linear in (E, A), so a dense grid over alpha with an exact
non-negative least squares for (E, A) at each point finds the global basin without a guess;
scipy.optimize.curve_fit (bounded trust-region least squares) then refines all three from it. The
prediction interval at a new N is a residual bootstrap through scipy.stats.bootstrap (refit on
fitted values plus resampled residuals: the percentile interval of the prediction), widened by
the residuals' own quantiles for the new point's noise (conservative: quantiles add).

    points = train_sweep([dict(n_layer=2, n_embd=32, n_head=2, context_length=64)], dict(steps=200), 0, ctx)
    E, A, alpha = fit_power_law(N, L); pred, low, high = prediction_interval(N, L, 1e6)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import curve_fit
from scipy.stats import bootstrap

from imo.model import GPT, ModelConfig
from imo.train.config import RunConfig
from imo.train.trainer import train_or_reuse

CORPUS = "python-docs"
ALPHA_RANGE = (0.01, 3.0)  # exponents outside it are not a power law worth the name here


# ---- parameters, FLOPs and the sweep --------------------------------------------------------


def non_embedding_params(model: dict[str, Any]) -> int:
    """Parameters of a model config without the token and learned position tables (Kaplan's N;
    the tied lm_head shares the token table). Built on the meta device: nothing is allocated."""
    with torch.device("meta"):
        return GPT(ModelConfig.from_dict(model)).num_params(non_embedding=True)


def train_flops(n_params: int, n_layer: int, n_embd: int, context: int, tokens: int) -> float:
    """Training FLOPs, Kaplan et al. 2020 (Table 1): 6 N per token for the weights plus
    6 n_layer n_ctx d_model per token for attention scores and the weighted sum."""
    return 6.0 * n_params * tokens + 6.0 * n_layer * context * n_embd * tokens


def train_sweep(models: list[dict[str, Any]], train: dict[str, Any], seed: int, ctx) -> list[dict[str, Any]]:
    """Train (or reuse) one run per model config with the same training settings and seed;
    return one point per model: run id, shape, non-embedding parameters, tokens, FLOPs and the
    final figures (val_bpb on the whole validation split, seconds)."""
    steps = int(train["steps"])  # a step budget, never minutes: equal tokens for every shape
    t = dict(corpus=CORPUS, eval_every=steps, log_every=max(1, steps // 20), ckpt_every=steps,
             seed=seed, **train)  # fmt: skip
    points = []
    for m in models:
        cfg = RunConfig.build(preset=None, model=m, train=t)
        ctx.log(f"train {m} for {steps} steps")
        run_id = train_or_reuse(cfg, store=ctx.store, quiet=ctx.quiet,
                                code_fingerprint=getattr(ctx, "code_fingerprint", None))
        fig = ctx.store.get(run_id)["figures"]
        mc = cfg.model
        n = non_embedding_params(mc.to_dict())
        points.append({
            "run": run_id, "n_layer": mc.n_layer, "n_embd": mc.n_embd, "n_future": mc.n_future,
            "params": n, "tokens": int(fig["tokens"]), "val_bpb": float(fig["val_bpb"]),
            "flops": train_flops(n, mc.n_layer, mc.n_embd, mc.context_length, int(fig["tokens"])),
            "seconds": float(fig["seconds"]),
        })  # fmt: skip
    return points


# ---- the power-law fit ----------------------------------------------------------------------


def _fit_rows(x: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares L ~ E + A * x with E >= 0 and A >= 0, for every row of x at once.
    x: (G, n) features (one row per alpha), L: (n,) -> E, A, rss, each (G,).
    The constrained optimum of two variables is the unconstrained one if feasible, else the
    better of the two boundary fits (E = 0, or A = 0)."""
    xm, Lm = x.mean(1, keepdims=True), L.mean()
    sxx = ((x - xm) ** 2).sum(1)
    sxy = ((x - xm) * (L - Lm)).sum(1)
    A_free = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
    E_free = Lm - A_free * xm[:, 0]
    A_zero_E = np.maximum((x * L).sum(1) / (x * x).sum(1), 0.0)  # E = 0, through the origin
    cands = [(E_free, A_free), (np.zeros_like(E_free), A_zero_E), (np.full_like(E_free, max(Lm, 0.0)), np.zeros_like(E_free))]
    best_E, best_A, best_rss = None, None, None
    for E, A in cands:
        rss = ((E[:, None] + A[:, None] * x - L) ** 2).sum(1)
        rss = np.where((E >= 0) & (A >= 0), rss, np.inf)
        if best_rss is None:
            best_E, best_A, best_rss = E, A, rss
        else:
            take = rss < best_rss
            best_E, best_A, best_rss = np.where(take, E, best_E), np.where(take, A, best_A), np.minimum(rss, best_rss)
    return best_E, best_A, best_rss


def fit_power_law(N, L, alpha_range: tuple[float, float] = ALPHA_RANGE) -> tuple[float, float, float]:
    """Least-squares fit of L = E + A * N^-alpha with E, A >= 0; returns (E, A, alpha).

    N is scaled by its geometric mean inside (so N^-alpha neither overflows nor underflows) and A
    is given back for the unscaled N. Needs at least 3 points with at least 2 distinct N."""
    N, L = np.asarray(N, dtype=float), np.asarray(L, dtype=float)
    if N.shape != L.shape or N.ndim != 1 or len(N) < 3:
        raise ValueError(f"need two 1-D arrays of the same length >= 3, got shapes {N.shape}, {L.shape}")
    if np.any(N <= 0) or len(np.unique(N)) < 2 or not np.all(np.isfinite(L)):
        raise ValueError("N must be positive with at least two distinct values, and L finite")
    n0 = float(np.exp(np.log(N).mean()))
    logn = np.log(N / n0)
    lo, hi = np.log(alpha_range[0]), np.log(alpha_range[1])
    grid = np.exp(np.linspace(lo, hi, 801))
    for _ in range(2):  # a coarse grid over the whole range, then a fine one around its best
        E, A, rss = _fit_rows(np.exp(-grid[:, None] * logn[None, :]), L)
        i = int(np.argmin(rss))
        a_lo, a_hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        best = (float(E[i]), float(A[i]), float(grid[i]))
        grid = np.linspace(a_lo, a_hi, 401)
    E_s, A_s, alpha = best
    rss_grid = float(((E_s + A_s * np.exp(-alpha * logn) - L) ** 2).sum())
    try:
        (E_c, A_c, a_c), _ = curve_fit(
            lambda x, E, A, a: E + A * np.exp(-a * x), logn, L, p0=(E_s, A_s, alpha),
            bounds=([0.0, 0.0, alpha_range[0]], [np.inf, np.inf, alpha_range[1]]), method="trf")
        if float(((E_c + A_c * np.exp(-a_c * logn) - L) ** 2).sum()) < rss_grid:
            E_s, A_s, alpha = float(E_c), float(A_c), float(a_c)
    except (RuntimeError, ValueError):  # no convergence: the grid's optimum stands
        pass
    return E_s, A_s * n0**alpha, alpha  # A_s (N/n0)^-a = (A_s n0^a) N^-a


def power_law(N, E: float, A: float, alpha: float) -> np.ndarray:
    return E + A * np.asarray(N, dtype=float) ** -alpha


def prediction_interval(N, L, N_new: float, n_boot: int = 300, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float, float]:
    """(prediction, low, high) of the loss at N_new: the fit's prediction and a residual-bootstrap
    interval for a new observation there. Residuals are inflated by sqrt(n / (n - 3)) for the
    three fitted parameters (with only a few points they would otherwise look too small)."""
    N, L = np.asarray(N, dtype=float), np.asarray(L, dtype=float)
    params = fit_power_law(N, L)
    fitted = power_law(N, *params)
    resid = L - fitted
    n = len(N)
    resid = (resid - resid.mean()) * np.sqrt(n / max(n - 3, 1))
    pred = float(power_law(N_new, *params))

    def refit(r: np.ndarray) -> float:
        return float(power_law(N_new, *fit_power_law(N, fitted + r)))

    ci = bootstrap((resid,), refit, vectorized=False, n_resamples=n_boot, confidence_level=level,
                   method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    q = (1 - level) / 2
    r_lo, r_hi = np.quantile(resid, [q, 1 - q])
    low, high = ci.low + r_lo, ci.high + r_hi
    return pred, float(min(low, pred)), float(max(high, pred))
