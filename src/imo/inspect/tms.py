"""Toy models of superposition: many tiny ReLU autoencoders x' = ReLU(WᵀW x + b), trained as one
batched tensor, and the measures the paper reads off them.

Source: Elhage et al. 2022, "Toy Models of Superposition" (transformer-circuits.pub); the batched
phase diagram follows the idea of zfurman56's replication (every cell of the grid is one slice of
W[instance, m, n]). Sparsity S is P(x_i = 0), so density is 1 - S.

    result = train_tms(TMSConfig(n=20, m=5, sparsities=(0.0, 0.9, 0.99)))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from imo.errors import ConfigError

PHASES = ("not represented", "dedicated", "superposed")
REPRESENTED = 0.5  # a feature counts as represented when its column of W has norm above this


@dataclass(frozen=True)
class TMSConfig:
    n: int = 20                 # features
    m: int = 5                  # hidden dimensions
    decay: float = 0.7          # importance of feature i is decay**i
    sparsities: tuple[float, ...] = (0.0, 0.7, 0.9, 0.97, 0.99, 0.997, 0.999)
    steps: int = 10_000
    batch: int = 1024
    lr: float = 1e-3
    seed: int = 0

    def check(self) -> None:
        if self.n < 1 or self.m < 1:
            raise ConfigError(f"n and m must be >= 1, got n={self.n}, m={self.m}")
        if not 0 < self.decay <= 1:
            raise ConfigError(f"decay must lie in (0, 1], got {self.decay}")
        if not self.sparsities or any(not 0 <= s < 1 for s in self.sparsities):
            raise ConfigError("every sparsity S = P(x_i = 0) must lie in [0, 1)")
        if self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ConfigError("steps, batch and lr must be positive")


@dataclass
class TMSResult:
    config: TMSConfig
    W: torch.Tensor             # [instances, m, n]
    b: torch.Tensor             # [instances, n]
    loss: torch.Tensor          # [instances], importance-weighted, mean over the last steps
    extra: dict = field(default_factory=dict)


def sample(density: torch.Tensor, batch: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """x[instance, batch, n]: each x_i is U[0, 1] with probability density[instance], else 0."""
    k = density.shape[0]
    on = torch.rand(k, batch, n, generator=gen) < density.view(k, 1, 1)
    return torch.rand(k, batch, n, generator=gen) * on


def forward(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if W.shape[1] == 1:  # the phase diagram: one hidden unit, where broadcasting beats bmm
        w = W[:, None, 0, :]
        return torch.relu((x * w).sum(-1, keepdim=True) * w + b[:, None, :])
    h = torch.einsum("kmn,kbn->kbm", W, x)
    return torch.relu(torch.einsum("kmn,kbm->kbn", W, h) + b[:, None, :])


def train_batched(density: torch.Tensor, importance: torch.Tensor, m: int, *, steps: int,
                  batch: int, lr: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train one toy model per row of `density` [k] / `importance` [k, n]; returns W, b, loss.

    Each instance has its own loss, and their sum is minimised: the gradients do not mix, so the
    batch is k independent models. The reported loss averages the last 10% of steps."""
    k, n = importance.shape
    gen = torch.Generator().manual_seed(seed)
    # Xavier-normal init, as in the paper's notebook
    W = (torch.randn(k, m, n, generator=gen) * math.sqrt(2.0 / (m + n))).requires_grad_()
    b = torch.zeros(k, n, requires_grad=True)
    opt = torch.optim.AdamW([W, b], lr=lr, weight_decay=0.0)
    tail = max(1, steps // 10)
    acc = torch.zeros(k)
    for step in range(steps):
        x = sample(density, batch, n, gen)
        err = (forward(W, b, x) - x) ** 2
        per = (err * importance[:, None, :]).sum(-1).mean(-1)   # [k]
        opt.zero_grad(set_to_none=True)
        per.sum().backward()
        opt.step()
        if step >= steps - tail:
            acc += per.detach()
    return W.detach(), b.detach(), acc / tail


def train_tms(cfg: TMSConfig) -> TMSResult:
    """The n-feature model at every sparsity of `cfg`, one batched run."""
    cfg.check()
    density = 1.0 - torch.tensor(cfg.sparsities, dtype=torch.float32)
    importance = (cfg.decay ** torch.arange(cfg.n, dtype=torch.float32)).expand(len(density), -1)
    W, b, loss = train_batched(density, importance.contiguous(), cfg.m, steps=cfg.steps,
                               batch=cfg.batch, lr=cfg.lr, seed=cfg.seed)
    return TMSResult(cfg, W, b, loss)


# --- measures -------------------------------------------------------------------------------

def feature_norms(W: torch.Tensor) -> torch.Tensor:
    """‖W_i‖ for each feature column: [..., n]."""
    return W.norm(dim=-2)


def interference(W: torch.Tensor) -> torch.Tensor:
    """Σ_{j≠i} (Ŵ_i·W_j)²: how much of other features lies along feature i's direction."""
    unit = W / W.norm(dim=-2, keepdim=True).clamp_min(1e-8)
    dots = torch.einsum("...mi,...mj->...ij", unit, W) ** 2
    return dots.sum(-1) - torch.diagonal(dots, dim1=-2, dim2=-1)


def dimensions_per_feature(W: torch.Tensor) -> torch.Tensor:
    """D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)²: the share of a hidden dimension feature i holds (1 for a
    dedicated dimension, 1/2 for an antipodal pair, 0 when not represented)."""
    unit = W / W.norm(dim=-2, keepdim=True).clamp_min(1e-8)
    dots = torch.einsum("...mi,...mj->...ij", unit, W) ** 2
    return (W.norm(dim=-2) ** 2) / dots.sum(-1).clamp_min(1e-8)


def dimensions_per_represented_feature(W: torch.Tensor) -> torch.Tensor:
    """D* = m / ‖W‖_F²: hidden dimensions per (norm-weighted) represented feature."""
    return W.shape[-2] / (W ** 2).sum((-2, -1)).clamp_min(1e-8)


# --- the n=2, m=1 phase diagram -----------------------------------------------------------------

@dataclass(frozen=True)
class PhaseConfig:
    size: int = 20                  # grid is size x size
    density: tuple[float, float] = (0.01, 1.0)      # log-spaced, 1 - S
    importance: tuple[float, float] = (0.1, 10.0)   # relative importance of the extra feature
    seeds: int = 3
    steps: int = 4000
    batch: int = 1024
    lr: float = 1e-2
    seed: int = 0

    def check(self) -> None:
        if self.size < 1 or self.seeds < 1 or self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ConfigError("size, seeds, steps, batch and lr must be positive")
        lo, hi = self.density
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"density range must lie in (0, 1], got {self.density}")
        if not 0 < self.importance[0] <= self.importance[1]:
            raise ConfigError(f"importance range must be positive, got {self.importance}")

    def axes(self) -> tuple[torch.Tensor, torch.Tensor]:
        d = torch.logspace(math.log10(self.density[0]), math.log10(self.density[1]), self.size)
        r = torch.logspace(math.log10(self.importance[0]), math.log10(self.importance[1]), self.size)
        return d, r


def classify(W: torch.Tensor) -> torch.Tensor:
    """Phase of the extra feature (index 1) for W[..., 1, 2]: 0 not represented, 1 dedicated
    (it holds the dimension alone), 2 superposed (both features share it)."""
    norms = feature_norms(W)
    on1, on2 = norms[..., 0] > REPRESENTED, norms[..., 1] > REPRESENTED
    return torch.where(~on2, 0, torch.where(on1, 2, 1))


def _expected_loss(w1, w2, b1, b2, density, r, nodes, weights):
    """Exact expected loss of x' = ReLU(WᵀW x + b) for n=2, m=1, by Gauss-Legendre quadrature
    over the four on/off cases (each x_i uniform on [0, 1] when on). Shapes broadcast over cells."""
    total = 0.0
    for z1 in (0, 1):
        for z2 in (0, 1):
            p = (density if z1 else 1 - density) * (density if z2 else 1 - density)
            x1 = nodes[:, None] if z1 else torch.zeros(1, 1)
            x2 = nodes[None, :] if z2 else torch.zeros(1, 1)
            wq = (weights[:, None] if z1 else torch.ones(1, 1)) * (weights[None, :] if z2 else torch.ones(1, 1))
            e = lambda t: t[..., None, None]  # noqa: E731 - broadcast a cell tensor over the nodes
            h = e(w1) * x1 + e(w2) * x2
            o1 = torch.relu(e(w1) * h + e(b1))
            o2 = torch.relu(e(w2) * h + e(b2))
            err = (o1 - x1) ** 2 + e(r) * (o2 - x2) ** 2
            total = total + p * (err * wq).sum((-2, -1))
    return total


def theory_phases(cfg: PhaseConfig, steps: int = 600, order: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """The phase each cell should take, from the exact expected loss of the three candidate
    solutions (no sampling): feature 1 only (W=[w,0]), feature 2 only (W=[0,w]) and the
    antipodal pair (W=[a,-c]), each with its free parameters and biases optimised.

    Returns (phase[size, size] indexed [density, importance], losses[3, size, size]).
    The pair wins only when it beats both single-feature solutions by a relative 1e-3; otherwise
    its optimum is one of them in disguise (c or a shrunk towards 0)."""
    cfg.check()
    d, r = cfg.axes()
    D, R = torch.meshgrid(d, r, indexing="ij")
    x, w = torch.tensor(_legendre(order)[0]), torch.tensor(_legendre(order)[1])
    nodes, weights = ((x + 1) / 2).float(), (w / 2).float()
    # the single-feature solutions have closed forms: reconstruct the kept feature exactly, the
    # other one by its mean (a bias), losing its variance, times its importance
    var = D / 3 - D ** 2 / 4
    only1, only2 = R * var, var
    # the antipodal pair: optimise a, c > 0 and both biases on every cell at once
    a = torch.ones_like(D).requires_grad_()
    c = torch.ones_like(D).requires_grad_()
    b1 = torch.zeros_like(D).requires_grad_()
    b2 = torch.zeros_like(D).requires_grad_()
    opt = torch.optim.Adam([a, c, b1, b2], lr=0.02)
    for _ in range(steps):
        loss = _expected_loss(a, -c, b1, b2, D, R, nodes, weights)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        pair = _expected_loss(a, -c, b1, b2, D, R, nodes, weights)
    best_single = torch.minimum(only1, only2)
    phase = torch.where(only1 <= only2, 0, 1)
    phase = torch.where(pair < best_single * (1 - 1e-3), 2, phase)
    return phase, torch.stack([only1, only2, pair])


def _legendre(order: int):
    import numpy as np

    return np.polynomial.legendre.leggauss(order)


def train_phase_diagram(cfg: PhaseConfig) -> dict:
    """Train every (density, importance, seed) cell as one batch; keep each cell's lowest-loss
    seed and classify it. Returns W [size, size, 1, 2], loss and phase [size, size]."""
    cfg.check()
    d, r = cfg.axes()
    D, R = torch.meshgrid(d, r, indexing="ij")
    cells = cfg.size * cfg.size
    density = D.reshape(-1).repeat(cfg.seeds)
    imp = torch.stack([torch.ones(cells), R.reshape(-1)], -1).repeat(cfg.seeds, 1)
    W, b, loss = train_batched(density, imp, 1, steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed)
    W = W.view(cfg.seeds, cells, 1, 2)
    loss = loss.view(cfg.seeds, cells)
    best = loss.argmin(0)
    Wb = W[best, torch.arange(cells)].view(cfg.size, cfg.size, 1, 2)
    return {"W": Wb, "loss": loss.min(0).values.view(cfg.size, cfg.size),
            "phase": classify(Wb), "density": d, "importance": r}
