"""The toy-models figures as PNGs (matplotlib, Agg): WᵀW and ‖W_i‖ bars per sparsity (the paper's
Figure 2/3), dimensions per feature against 1/(1-S) (Figure 4), and the n=2, m=1 phase diagram
beside its theory.

    paths = tms_figures(result, Path("out/"))
"""

from __future__ import annotations

from pathlib import Path

import torch

from imo.atomic import atomic_path
from imo.inspect.tms import (
    PHASES,
    TMSResult,
    dimensions_per_feature,
    dimensions_per_represented_feature,
    feature_norms,
    interference,
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def tms_figures(res: TMSResult, out: Path) -> list[Path]:
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    W, S = res.W, res.config.sparsities
    k, _, n = W.shape
    # Figure 2/3: WᵀW (blue-red) above, ‖W_i‖ bars coloured by interference below
    fig, axes = plt.subplots(2, k, figsize=(2.2 * k, 5.2), squeeze=False)
    norms, inter = feature_norms(W), interference(W)
    for i in range(k):
        g = (W[i].T @ W[i]).numpy()
        axes[0, i].imshow(g, cmap="RdBu", vmin=-1, vmax=1)
        axes[0, i].set_title(f"S={S[i]:g}", fontsize=9)
        axes[0, i].set_xticks([])
        axes[0, i].set_yticks([])
        colour = plt.cm.viridis((inter[i] / (inter[i] + norms[i] ** 2).clamp_min(1e-8)).numpy())
        axes[1, i].barh(range(n), norms[i].numpy(), color=colour)
        axes[1, i].invert_yaxis()
        axes[1, i].set_xlim(0, 1.3)
        axes[1, i].set_yticks([])
    axes[0, 0].set_ylabel("WᵀW")
    axes[1, 0].set_ylabel("‖W_i‖ (colour: interference)")
    paths = [_save(fig, out / "tms_wtw.png")]
    # Figure 4: D* (line) and each feature's D_i (dots) against 1/(1-S)
    fig, ax = plt.subplots(figsize=(6, 4))
    x = (1 / (1 - torch.tensor(S))).numpy()
    ax.plot(x, dimensions_per_represented_feature(W).numpy(), "k-", label="D* = m/‖W‖²_F")
    Di = dimensions_per_feature(W)
    for i in range(k):
        keep = norms[i] > 0.5
        ax.scatter([x[i]] * int(keep.sum()), Di[i][keep].numpy(), s=10, alpha=0.6, color="tab:blue")
    for frac in (1 / 2, 2 / 3, 2 / 5, 1 / 3):
        ax.axhline(frac, color="grey", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("1/(1-S)")
    ax.set_ylabel("dimensions per feature")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "tms_dimensionality.png"))
    return paths


def phase_figure(empirical: torch.Tensor, theory: torch.Tensor, density: torch.Tensor,
                 importance: torch.Tensor, path: Path) -> Path:
    plt = _plt()
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#eeeeee", "#3b6fb6", "#d1495b"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    ext = [importance[0].item(), importance[-1].item(), density[0].item(), density[-1].item()]
    for ax, grid, title in ((axes[0], theory, "theory (exact loss)"), (axes[1], empirical, "trained")):
        ax.pcolormesh(importance.numpy(), density.numpy(), grid.numpy(), cmap=cmap, vmin=0, vmax=2,
                      shading="nearest")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("relative importance of feature 2")
        ax.set_xlim(ext[0], ext[1])
    axes[0].set_ylabel("feature density 1-S")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(3)]
    # below the axes' labels (bbox_inches="tight" keeps it in the saved image)
    fig.legend(handles, PHASES, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
    return _save(fig, path)
