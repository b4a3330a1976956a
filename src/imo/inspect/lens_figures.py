"""Figures for the lens tools (matplotlib, Agg, written atomically): the logit lens as a layer x
position grid, the patching heatmap, attention patterns per head, direct logit attribution by head.

    lens_figure(probs, top_tokens, tokens, Path("lens.png"))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from imo.inspect.figures import _plt, _save

MAX_LABELLED = 48  # beyond this many positions, tick labels and cell texts are left out


def _show(token: str) -> str:
    return token.replace(" ", "␣")  # a space as a tick label or cell text would be invisible


def _ticks(ax, tokens: list[str], axis: str = "x") -> None:
    if len(tokens) > MAX_LABELLED:
        return
    tokens = [_show(t) for t in tokens]
    pos = range(len(tokens))
    if axis == "x":
        ax.set_xticks(pos, tokens, rotation=90, fontsize=7, family="monospace")
    else:
        ax.set_yticks(pos, tokens, fontsize=7, family="monospace")


def lens_figure(top_prob: torch.Tensor, top_text: list[list[str]], tokens: list[str], layers: list[str],
                path: Path, title: str = "") -> Path:
    """top_prob (L + 1, T): the probability of each layer's top prediction, whose text is
    top_text[layer][position]; rows are the residual after the embedding, then after each block."""
    plt = _plt()
    L, T = top_prob.shape
    fig, ax = plt.subplots(figsize=(max(5, 0.42 * T + 2), 0.45 * L + 1.8))
    im = ax.imshow(top_prob.numpy(), aspect="auto", cmap="Blues", vmin=0, vmax=1, origin="lower")
    if T <= MAX_LABELLED:
        for layer in range(L):
            for t in range(T):
                ax.text(t, layer, _show(top_text[layer][t]), ha="center", va="center", fontsize=6,
                        family="monospace", color="white" if top_prob[layer, t] > 0.6 else "black")
    _ticks(ax, tokens)
    ax.set_yticks(range(L), layers, fontsize=7)
    ax.set_xlabel("input token (the cell is the prediction of the next one)")
    ax.set_title(title or "logit lens: top next token and its probability", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, label="p(top token)")
    return _save(fig, path)


def patch_figure(score: torch.Tensor, tokens: list[str], path: Path, title: str) -> Path:
    """score (L, T): the share of the clean logit difference a patch restores, per layer x position."""
    plt = _plt()
    L, T = score.shape
    fig, ax = plt.subplots(figsize=(max(5, 0.32 * T + 2), 0.4 * L + 1.8))
    lim = max(1.0, float(np.nanmax(np.abs(score.numpy()))))
    im = ax.imshow(score.numpy(), aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower")
    _ticks(ax, tokens)
    ax.set_yticks(range(L), [f"block {i}" for i in range(L)], fontsize=7)
    ax.set_xlabel("position patched from the clean prompt (token of the corrupted one)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, label="logit difference restored")
    return _save(fig, path)


def attn_figure(patterns: torch.Tensor, tokens: list[str], layers: list[int], path: Path) -> Path:
    """patterns (len(layers), nh, T, T): one panel per (layer, head); rows are queries."""
    plt = _plt()
    nl, nh, T, _ = patterns.shape
    size = 2.4 if T <= 16 else 3.2
    fig, axes = plt.subplots(nl, nh, figsize=(size * nh, size * nl + 0.3), squeeze=False)
    for r, layer in enumerate(layers):
        for h in range(nh):
            ax = axes[r][h]
            ax.imshow(patterns[r, h].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"L{layer} H{h}", fontsize=8)
            if T <= 24:
                _ticks(ax, tokens, "x")
                _ticks(ax, tokens, "y")
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle("attention patterns (row: query, column: key)", fontsize=9)
    return _save(fig, path)


def dla_figure(d: dict, path: Path, title: str) -> Path:
    """Heads as an (L, nh) grid beside the embedding, attention-bias and MLP parts as bars."""
    plt = _plt()
    heads = d["heads"].numpy()
    L, nh = heads.shape
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(6 + 0.5 * nh, 0.3 * L + 3), layout="constrained",
                                 gridspec_kw={"width_ratios": [max(nh, 2) + 1, 4]})
    lim = float(np.abs(heads).max()) or 1.0
    im = a1.imshow(heads, cmap="RdBu", vmin=-lim, vmax=lim, origin="lower", aspect="auto")
    a1.set_xticks(range(nh), [f"H{h}" for h in range(nh)], fontsize=7)
    a1.set_yticks(range(L), [f"L{i}" for i in range(L)], fontsize=7)
    a1.set_title("attention heads", fontsize=9)
    fig.colorbar(im, ax=a1, fraction=0.08, location="left", label="direct effect on the logit")
    names = ["embed"] + [f"mlp {i}" for i in range(L)] + ["attn bias", "norm bias"]
    vals = [d["embed"], *d["mlp"].tolist(), float(d["attn_bias"].sum()), d["norm_bias"]]
    a2.barh(range(len(vals)), vals, color=["#cf222e" if v < 0 else "#0969da" for v in vals])
    a2.set_yticks(range(len(vals)), names, fontsize=7)
    a2.axvline(0, color="black", lw=0.5)
    a2.set_title("other parts", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
