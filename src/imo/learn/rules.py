"""The learning rules' common frame: one config, one registry, one MLP, and the two rules that
use a backward pass through the whole network — backprop and feedback alignment.

A rule owns its network and its optimiser. The training loop (imo.learn.loop) only calls
`rule.step(x, y)` on each batch and `rule.errors(x, y)` at the end of each epoch, so every rule
sees the same data in the same order for the same seed.

Feedback alignment (Lillicrap, Cownden, Tweed & Akerman 2016, "Random synaptic feedback weights
support error backpropagation for deep learning", Nat. Commun. 7:13276): the error is sent
backwards through fixed random matrices B instead of the transposed forward weights W^T, so no
layer needs to know another layer's weights; the forward weights come to align with B^T.

    rule = RULES.get("backprop")(RuleConfig(hidden=(256,)), n_in=784, n_classes=10)
    loss = rule.step(x, y); rule.errors(x_val, y_val)   # {"error": 0.031}
"""

import math
from dataclasses import dataclass, field
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from imo.errors import ConfigError
from imo.registry import Registry

RULES: Registry[type["Rule"]] = Registry("learning rule")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class RuleConfig:
    hidden: tuple[int, ...] = (256, 256)
    lr: float | None = None  # None: the rule's own default (DEFAULT_LR, or DEFAULT_SGD_LR with sgd)
    seed: int = 0
    optimizer: str = "adam"  # adam, or sgd (plain, stateless: MeZO's own; the memory claim's common optimiser)
    # MeZO
    eps: float = 1e-3
    samples: int = 1
    # Forward-Forward
    ff_threshold: float | None = None  # None: the layer width (loeweX's choice)
    label_scale: float = 10.0  # the one-hot label's value in the Forward-Forward input
    # voltage
    volt_threshold: float = 0.05
    decay: float = 0.9
    # dynamic sparsity
    sparsity: float = 0.9
    distribution: str = "erk"
    update_every: int = 100
    drop_fraction: float = 0.3
    update_end: float = 0.75  # fraction of training after which the topology freezes (RigL's T_end)
    total_steps: int = 0  # filled in by the loop: steps in the whole run
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"--hidden needs positive layer widths, got {self.hidden}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not self.eps > 0:
            raise ConfigError(f"--eps must be > 0, got {self.eps}")
        if not self.label_scale > 0:
            raise ConfigError(f"--label-scale must be > 0, got {self.label_scale}")
        if not self.volt_threshold > 0:
            raise ConfigError(f"--volt-threshold must be > 0, got {self.volt_threshold}")
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f"--decay must be in [0, 1), got {self.decay}")
        if self.samples < 1:
            raise ConfigError(f"--samples must be >= 1, got {self.samples}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        if self.distribution not in ("erk", "uniform"):
            raise ConfigError(f"--distribution must be erk or uniform, got {self.distribution!r}")
        if self.update_every < 1:
            raise ConfigError(f"--update-every must be >= 1, got {self.update_every}")
        if not 0.0 < self.drop_fraction < 1.0:
            raise ConfigError(f"--drop-fraction must be in (0, 1), got {self.drop_fraction}")


def make_optimizer(params, cfg: "RuleConfig", lr: float) -> torch.optim.Optimizer:
    """The optimiser every gradient-based rule uses: Adam, or plain SGD (no momentum, no state)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, linear=nn.Linear) -> nn.Sequential:
    """Linear-ReLU layers, then a linear read-out; the one network every MLP rule trains."""
    layers: list[nn.Module] = []
    widths = (n_in, *hidden)
    for a, b in pairwise(widths):
        layers += [linear(a, b), nn.ReLU()]
    layers.append(linear(widths[-1], n_out))
    return nn.Sequential(*layers)


class Rule:
    """A network plus the way it learns. Subclasses set DEFAULT_LR and implement step()."""

    DEFAULT_LR = 1e-3  # with Adam
    DEFAULT_SGD_LR = 0.05  # with plain SGD

    def __init__(self, cfg: RuleConfig, n_in: int, n_classes: int):
        cfg.check()
        self.cfg, self.n_in, self.n_classes = cfg, n_in, n_classes
        default = self.DEFAULT_SGD_LR if cfg.optimizer == "sgd" else self.DEFAULT_LR
        self.lr = cfg.lr if cfg.lr is not None else default
        torch.manual_seed(cfg.seed)  # weight init; the rule's own draws use self.gen
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.steps = 0

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def errors(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Validation error rates (fractions); "error" is the headline one."""
        return {"error": float((self.logits(x).argmax(-1) != y).float().mean())}

    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def describe(self) -> dict:
        return {"rule": self.name, "optimizer": self.optimizer_name(), "lr": self.lr, "params": self.n_params()}

    def optimizer_name(self) -> str:
        return self.cfg.optimizer


@RULES.register("backprop")
class Backprop(Rule):
    """Cross-entropy, one backward pass through the whole MLP, Adam (or plain SGD)."""

    name = "backprop"

    def __init__(self, cfg: RuleConfig, n_in: int, n_classes: int):
        super().__init__(cfg, n_in, n_classes)
        self.net = mlp(n_in, cfg.hidden, n_classes)
        self.opt = make_optimizer(self.net.parameters(), cfg, self.lr)

    def step(self, x, y):
        loss = F.cross_entropy(self.net(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1
        return loss.item()


class _FeedbackLinear(torch.autograd.Function):
    """y = x W^T + b; backward sends grad_out through the fixed matrix B (out, in), not W."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback):
        ctx.save_for_backward(x, feedback)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x, feedback = ctx.saved_tensors
        grad_x = grad_out @ feedback  # (B, out) @ (out, in): the random feedback path
        return grad_x, grad_out.T @ x, grad_out.sum(0), None


class FeedbackLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int):
        super().__init__(n_in, n_out)
        # B is drawn like the forward weights (same scale) and never trained
        self.register_buffer("feedback", torch.empty(n_out, n_in).uniform_(-1, 1) / math.sqrt(n_in))

    def forward(self, x):
        return _FeedbackLinear.apply(x, self.weight, self.bias, self.feedback)


@RULES.register("fa")
class FeedbackAlignment(Backprop):
    """Backprop's loss and optimiser, but errors travel backwards through fixed random matrices."""

    name = "fa"

    def __init__(self, cfg: RuleConfig, n_in: int, n_classes: int):
        Rule.__init__(self, cfg, n_in, n_classes)
        self.net = mlp(n_in, cfg.hidden, n_classes, linear=FeedbackLinear)
        self.opt = make_optimizer(self.net.parameters(), cfg, self.lr)
