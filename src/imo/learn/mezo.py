"""MeZO: zeroth-order SGD with the seed trick (Malladi et al. 2023, "Fine-Tuning Language Models
with Just Forward Passes", NeurIPS; arXiv:2305.17333; code princeton-nlp/MeZO).

SPSA estimates the gradient from two forward passes along one random direction z ~ N(0, I):

    g = (L(θ + εz) − L(θ − εz)) / (2ε)          (a scalar: the projected gradient)
    θ ← θ − lr · g · z

The memory trick: z is never stored. Only its seed is kept; z is regenerated, one parameter
tensor at a time, each time it is needed (perturb by +εz, by −2εz, restore by +εz, then update by
−lr·g·z). Training therefore needs the memory of inference plus one parameter-sized temporary at
a time. n-SPSA averages the estimate over n directions, each with its own seed, all measured at
the same θ and applied together.

    mezo_step_(params, loss_fn, lr=1e-3, eps=1e-3, seeds=[17])   # -> ([projected gradient], loss)
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from imo.learn.rules import RULES, Rule, RuleConfig, mlp


def perturb_(params: Sequence[torch.Tensor], seed: int, scale: float) -> None:
    """θ ← θ + scale · z(seed), in place, drawing z one tensor at a time from a generator seeded
    with `seed` (the same seed gives the same z, tensor by tensor, in the same order)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for p in params:
        z = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        p.add_(z.to(p.device), alpha=scale)


@torch.no_grad()
def mezo_step_(params: Sequence[torch.Tensor], loss_fn: Callable[[], float], lr: float, eps: float,
               seeds: Sequence[int]) -> tuple[list[float], float]:
    """One (n-)SPSA step on `params` in place; `loss_fn()` evaluates the loss at the current θ.
    Returns the projected gradients (one per seed) and the mean of the perturbed losses (an
    estimate of the loss before the step that costs no extra forward pass)."""
    grads, total = [], 0.0
    for seed in seeds:
        perturb_(params, seed, eps)
        plus = float(loss_fn())
        perturb_(params, seed, -2 * eps)
        minus = float(loss_fn())
        perturb_(params, seed, eps)  # back to θ (up to rounding)
        grads.append((plus - minus) / (2 * eps))
        total += plus + minus
    for seed, g in zip(seeds, grads, strict=True):
        perturb_(params, seed, -lr * g / len(seeds))
    return grads, total / (2 * len(seeds))


@RULES.register("mezo")
class MeZO(Rule):
    """The MLP trained by MeZO on the cross-entropy, plain SGD (the paper's optimiser)."""

    name = "mezo"
    DEFAULT_LR = DEFAULT_SGD_LR = 1e-3  # always plain SGD, whatever cfg.optimizer says

    def __init__(self, cfg: RuleConfig, n_in: int, n_classes: int):
        super().__init__(cfg, n_in, n_classes)
        self.net = mlp(n_in, cfg.hidden, n_classes)
        self.params = [p for p in self.net.parameters()]
        for p in self.params:
            p.requires_grad_(False)  # no autograd graph is ever built
        self.last_grads: list[float] = []

    def step(self, x, y):
        seeds = [int(torch.randint(0, 2**62, (1,), generator=self.gen)) for _ in range(self.cfg.samples)]
        loss_fn = lambda: F.cross_entropy(self.net(x), y)  # noqa: E731
        self.last_grads, loss = mezo_step_(self.params, loss_fn, self.lr, self.cfg.eps, seeds)
        self.steps += 1
        return loss

    def optimizer_name(self) -> str:
        return "sgd"

    def describe(self) -> dict:
        return {**super().describe(), "eps": self.cfg.eps, "samples": self.cfg.samples,
                "forward_passes_per_step": 2 * self.cfg.samples}
