"""PopArt: per-task normalised values that keep a network's outputs when the scale moves.

van Hasselt et al. 2016 ("Learning values across many orders of magnitude", arXiv:1602.07714)
learn normalised values n and read Q = sigma * n + mu, with mu and sigma running estimates of
the targets' mean and spread. Each time the estimates move, the last layer is rescaled so that
every Q it outputs stays the same ("Preserving Outputs Precisely"). Hessel et al. 2018
(arXiv:1809.04474) keep one (mu, sigma) per task, so that a task with returns in the hundreds
(CartPole) does not drown the gradients of one with returns near 1.

    popart = PopArt(tasks=2)
    popart.update_(targets, task, heads=[q.net[-1], target.net[-1]], n_actions=3)
    loss = mse(n_online, popart.normalise(targets, task))
"""

from __future__ import annotations

import torch
from torch import nn


class PopArt(nn.Module):
    def __init__(self, tasks: int, beta: float = 3e-4, min_sigma: float = 1e-2):
        super().__init__()
        self.beta, self.min_sigma = beta, min_sigma
        self.register_buffer("mu", torch.zeros(tasks))  # running mean of the targets
        self.register_buffer("nu", torch.ones(tasks))   # running mean of their squares

    @property
    def sigma(self) -> torch.Tensor:
        return (self.nu - self.mu ** 2).clamp_min(self.min_sigma ** 2).sqrt()

    def normalise(self, y: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        return (y - self.mu[task]) / self.sigma[task]

    def unnormalise(self, n: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """n: (B,) or (B, A) normalised values of rows of the given tasks (B,)."""
        sigma, mu = self.sigma[task], self.mu[task]
        if n.dim() == 2:
            sigma, mu = sigma[:, None], mu[:, None]
        return sigma * n + mu

    @torch.no_grad()
    def update_(self, targets: torch.Tensor, task: torch.Tensor, heads: list[nn.Linear],
                n_actions: int) -> None:
        """Move each task's estimates toward this batch's targets (B,), then rescale the rows of
        every head that output that task's values, so that sigma * n + mu is unchanged.
        A head's rows k * n_actions ... (k + 1) * n_actions - 1 belong to task k."""
        old_mu, old_sigma = self.mu.clone(), self.sigma.clone()
        for k in task.unique().tolist():
            y = targets[task == k]
            self.mu[k] = (1 - self.beta) * self.mu[k] + self.beta * y.mean()
            self.nu[k] = (1 - self.beta) * self.nu[k] + self.beta * (y * y).mean()
        new_mu, new_sigma = self.mu, self.sigma
        for head in heads:
            w = head.weight.view(-1, n_actions, head.weight.shape[1])  # (tasks, A, width)
            b = head.bias.view(-1, n_actions)                          # (tasks, A)
            w.mul_((old_sigma / new_sigma)[:, None, None])
            b.copy_((old_sigma[:, None] * b + (old_mu - new_mu)[:, None]) / new_sigma[:, None])
