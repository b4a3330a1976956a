"""Dynamic sparse training of the MLP: SET and RigL, beside a static sparse mask.

Every weight matrix keeps exactly k_l nonzero entries (its mask); biases stay dense. Every
`update_every` steps, until `update_end` of training, a fraction of each layer's active weights
is dropped and the same number regrown elsewhere, so the density never changes:
- SET (Mocanu et al. 2018, "Scalable training of artificial neural networks with adaptive sparse
  connectivity inspired by network science", Nat. Commun. 9:2383): drop the smallest-magnitude
  weights, regrow at random positions with fresh random values;
- RigL (Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners", ICML;
  arXiv:1911.11134): drop the smallest-magnitude weights, regrow where the dense gradient of the
  current batch is largest, starting from zero. The drop fraction follows RigL's cosine decay
  α/2 · (1 + cos(π t / T_end)).
- static: the initial random mask is kept for the whole run.
Regrowth only picks positions that were inactive before the drop, so the topology really moves.
The per-layer densities are uniform or Erdős–Rényi (ERK in RigL's paper: density ∝
(n_in + n_out) / (n_in · n_out), scaled to the global target, layers that would exceed 1 dense).
All three use backprop's Adam; Adam's moments are zeroed where the mask changes.

The trained masks also give a real sparse path for inference: `csr_forward()` multiplies by torch
CSR matrices, so the work grows with the nonzeros, not with the dense size.

    rule = RULES.get("set")(RuleConfig(hidden=(1000, 1000), sparsity=0.97), 784, 10)
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from imo.learn.rules import RULES, Rule, RuleConfig, make_optimizer, mlp


def layer_densities(shapes: list[tuple[int, int]], density: float, distribution: str) -> list[float]:
    """Per-layer densities for weight matrices of `shapes` (out, in) with total density `density`."""
    if distribution == "uniform":
        return [density] * len(shapes)
    sizes = [o * i for o, i in shapes]
    raw = [(o + i) / (o * i) for o, i in shapes]
    dense: set[int] = set()
    while True:  # RigL's procedure: solve for the scale, make over-full layers dense, repeat
        budget = density * sum(sizes) - sum(sizes[j] for j in dense)
        free = sum(raw[j] * sizes[j] for j in range(len(shapes)) if j not in dense)
        eps = budget / free
        over = [j for j in range(len(shapes)) if j not in dense and eps * raw[j] > 1]
        if not over:
            return [1.0 if j in dense else eps * raw[j] for j in range(len(shapes))]
        dense.update(over)


def random_mask(shape: tuple[int, int], k: int, gen: torch.Generator) -> torch.Tensor:
    mask = torch.zeros(math.prod(shape), dtype=torch.bool)
    mask[torch.randperm(mask.numel(), generator=gen)[:k]] = True
    return mask.view(shape)


class SparseMLP(Rule):
    """Shared by static, set and rigl: masks, masked steps, the topology update."""

    dynamic = True

    def __init__(self, cfg: RuleConfig, n_in: int, n_classes: int):
        super().__init__(cfg, n_in, n_classes)
        self.net = mlp(n_in, cfg.hidden, n_classes)
        self.linears = [m for m in self.net if isinstance(m, nn.Linear)]
        shapes = [tuple(m.weight.shape) for m in self.linears]
        dens = layer_densities(shapes, 1.0 - cfg.sparsity, cfg.distribution)
        self.counts = [max(1, round(d * o * i)) for d, (o, i) in zip(dens, shapes, strict=True)]
        self.masks = [random_mask(s, k, self.gen) for s, k in zip(shapes, self.counts, strict=True)]
        self.initial = [mask.clone() for mask in self.masks]  # to report how far the topology moved
        with torch.no_grad():
            for m, mask in zip(self.linears, self.masks, strict=True):
                m.weight.mul_(mask)
        self.opt = make_optimizer(self.net.parameters(), cfg, self.lr)
        self.updates = 0

    def drop_fraction(self) -> float:
        end = self.cfg.update_end * self.cfg.total_steps
        return self.cfg.drop_fraction / 2 * (1 + math.cos(math.pi * self.steps / end)) if end else 0.0

    def step(self, x, y):
        loss = F.cross_entropy(self.net(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        end = self.cfg.update_end * self.cfg.total_steps
        if self.dynamic and self.steps > 0 and self.steps % self.cfg.update_every == 0 and self.steps < end:
            self.update_topology()
        for m, mask in zip(self.linears, self.masks, strict=True):
            m.weight.grad.mul_(mask)
        self.opt.step()
        with torch.no_grad():
            for m, mask in zip(self.linears, self.masks, strict=True):
                m.weight.mul_(mask)  # Adam's momentum must not revive a pruned weight
        self.steps += 1
        return loss.item()

    @torch.no_grad()
    def update_topology(self) -> None:
        frac = self.drop_fraction()
        for m, mask, k in zip(self.linears, self.masks, self.counts, strict=True):
            w, flat = m.weight.view(-1), mask.view(-1)
            n_change = min(int(frac * k), flat.numel() - k)
            if n_change < 1:
                continue
            active = flat.nonzero().squeeze(1)
            drop = active[w[active].abs().argsort()[:n_change]]
            inactive = (~flat).nonzero().squeeze(1)
            grow = inactive[self.grow_order(m, inactive)[:n_change]]
            flat[drop] = False
            flat[grow] = True
            w[drop] = 0.0
            w[grow] = self.grow_values(m, n_change)
            state = self.opt.state.get(m.weight, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key].view(-1)[drop] = 0.0
                    state[key].view(-1)[grow] = 0.0
        self.updates += 1

    def grow_order(self, m: nn.Linear, inactive: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grow_values(self, m: nn.Linear, n: int) -> torch.Tensor:
        return torch.zeros(n)

    def density(self) -> list[float]:
        return [float(mask.float().mean()) for mask in self.masks]

    def describe(self) -> dict:
        nnz = sum(int(mask.sum()) for mask in self.masks)
        total = sum(mask.numel() for mask in self.masks)
        return {**super().describe(), "sparsity": self.cfg.sparsity, "distribution": self.cfg.distribution,
                "layer_density": self.density(), "weight_nonzeros": nnz, "weight_entries": total,
                "topology_updates": self.updates, "moved_fraction": self.moved_fraction()}

    def moved_fraction(self) -> float:
        """Share of the nonzero weights whose position was not in the initial mask."""
        new = sum(int((mask & ~first).sum()) for mask, first in zip(self.masks, self.initial, strict=True))
        return new / sum(self.counts)

    @torch.no_grad()
    def csr_forward(self):
        """A function x -> logits that multiplies by torch CSR copies of the masked weights (the
        sparse inference path); the copies are made once, here."""
        import warnings

        with warnings.catch_warnings():  # torch calls its CSR support beta; we rely only on CSR @ dense
            warnings.simplefilter("ignore", UserWarning)
            mats = [m.weight.detach().to_sparse_csr() for m in self.linears]
        biases = [m.bias.detach()[:, None] for m in self.linears]

        def forward(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                h = x.T  # (features, B): CSR @ dense keeps the sparse matrix on the left
                for i, (mat, b) in enumerate(zip(mats, biases, strict=True)):
                    h = (mat @ h) + b
                    if i < len(mats) - 1:
                        h = h.relu()
                return h.T

        return forward


@RULES.register("static")
class StaticSparse(SparseMLP):
    """A fixed random sparse mask (ERK or uniform), trained by backprop."""

    name = "static"
    dynamic = False


@RULES.register("set")
class SET(SparseMLP):
    """Sparse MLP; drop the smallest weights, regrow as many at random (Mocanu et al. 2018)."""

    name = "set"

    def grow_order(self, m, inactive):
        return torch.randperm(len(inactive), generator=self.gen)

    def grow_values(self, m, n):
        # the layer's own initial scale (nn.Linear: uniform in ±1/sqrt(fan_in))
        bound = 1.0 / math.sqrt(m.weight.shape[1])
        return (torch.rand(n, generator=self.gen) * 2 - 1) * bound


@RULES.register("rigl")
class RigL(SparseMLP):
    """Sparse MLP; drop the smallest weights, regrow where the gradient is largest (Evci et al. 2020)."""

    name = "rigl"

    def grow_order(self, m, inactive):
        return m.weight.grad.view(-1)[inactive].abs().argsort(descending=True)
