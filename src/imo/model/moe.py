"""Mixture of experts: a GPT whose blocks' MLPs are E expert MLPs behind a learned router.

Built by composition, so that nothing in imo.model.config/gpt changes: `MoEGPT` is an ordinary
imo GPT (every position encoding, attention backend and the engine's KV cache work unchanged)
whose blocks' `mlp` modules are replaced by `MoEMLP`s. The MoE's own knobs live in `MoEConfig`,
stored beside the ModelConfig in a run's config (under "moe", JSON).

MoEMLP, per token x (C):
  * router: logits r = W_r x (E, no bias), probabilities p = softmax(r);
  * token choice top-k: the k experts with the largest p, their gates renormalised to sum to 1
    (Mixtral's top-2, Jiang et al. 2024); output y = sum_j g_j * expert_j(x). Each expert is
    shaped like the GPT's MLP (C -> hidden -> C, GELU; hidden 4C by default);
  * load-balancing loss (Switch Transformer, Fedus et al. 2021, eq. 4): aux = E * sum_i f_i P_i,
    with f_i the fraction of the N*k token-to-expert assignments that chose expert i and P_i the
    mean router probability of expert i over the N tokens. Uniform routing gives exactly 1 (its
    minimum over f at fixed uniform P, and the value the paper's scaling is chosen for); all
    tokens on one expert gives E. Its gradient flows through P (f is a count);
  * capacity (training only): each expert takes at most ceil(capacity_factor * N * k / E)
    assignments of a batch, first choices before second choices, earlier tokens first (Switch /
    GShard); an assignment over capacity is dropped, so that token's expert output is missing
    and it passes on the residual stream alone. At evaluation and decode there is no capacity:
    each token's output depends on that token only, so routing is causal and a cached decode
    gives the full forward's logits.

The model's training loss is the next-byte cross-entropy plus `aux_coef` times the mean aux over
layers; in eval mode the loss is the cross-entropy alone (comparable with a dense GPT). Each
MoEMLP counts the assignments of every forward pass in `load` (E,), per layer, for the
expert-usage histogram and the coefficient of variation (std / mean of the counts).

`experts=1` is a dense MLP of width `hidden` (no router, no aux): the dense baselines at equal
active or equal total parameters.

    moe = MoEConfig(experts=8, top_k=2)
    model = MoEGPT(ModelConfig.preset("tiny"), moe); logits, loss = model(x, y)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.model.config import ModelConfig
from imo.model.gpt import GPT


@dataclass(frozen=True)
class MoEConfig:
    experts: int = 8  # E; 1 is a dense MLP of width `hidden`
    top_k: int = 2  # experts per token
    hidden: int = 0  # each expert's hidden width; 0: 4 * n_embd (the GPT's MLP)
    capacity_factor: float = 1.25  # training only; 0: no capacity limit
    aux_coef: float = 0.01  # weight of the load-balancing loss

    def __post_init__(self) -> None:
        for name in ("experts", "top_k", "hidden", "capacity_factor", "aux_coef"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"{name} must be a number, got {v!r}")
        if not isinstance(self.experts, int) or self.experts < 1:
            raise ConfigError(f"experts must be a positive integer, got {self.experts}")
        if not isinstance(self.top_k, int) or not 1 <= self.top_k <= self.experts:
            raise ConfigError(f"top-k must be an integer in 1..experts ({self.experts}), got {self.top_k}")
        if not isinstance(self.hidden, int) or self.hidden < 0:
            raise ConfigError(f"hidden must be a non-negative integer (0: 4 * n_embd), got {self.hidden}")
        if not (self.capacity_factor == 0 or self.capacity_factor >= 1.0) or not math.isfinite(self.capacity_factor):
            raise ConfigError(f"capacity factor must be 0 (no limit) or >= 1, got {self.capacity_factor}")
        if not self.aux_coef >= 0 or not math.isfinite(self.aux_coef):
            raise ConfigError(f"aux coefficient must be >= 0, got {self.aux_coef}")

    def width(self, n_embd: int) -> int:
        return self.hidden or 4 * n_embd

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MoEConfig:
        from imo.config import from_dict

        return from_dict(cls, d, "moe")


def balance_loss(probs: Tensor, chosen: Tensor, experts: int) -> Tensor:
    """Switch Transformer's load-balancing loss E * sum_i f_i P_i. probs: (N, E) router
    probabilities; chosen: (N, k) expert indices; f_i counts assignments (over N*k)."""
    f = torch.bincount(chosen.reshape(-1), minlength=experts).to(probs.dtype) / chosen.numel()
    P = probs.mean(0)
    return experts * (f * P).sum()


def load_cv(load: Tensor) -> float:
    """Coefficient of variation of per-expert counts (population std / mean); 0 is even."""
    load = load.double()
    m = load.mean()
    return float(load.std(unbiased=False) / m) if m > 0 else 0.0


class MoEMLP(nn.Module):
    def __init__(self, cfg: ModelConfig, moe: MoEConfig) -> None:
        super().__init__()
        C, H, E = cfg.n_embd, moe.width(cfg.n_embd), moe.experts
        self.moe, self.n_embd, self.hidden = moe, C, H
        # expert weights stacked (E, in, out): w_fc as x @ w_fc[e], then GELU, then @ w_proj[e]
        self.w_fc = nn.Parameter(torch.randn(E, C, H) * 0.02)
        self.w_proj = nn.Parameter(torch.randn(E, H, C) * (0.02 / math.sqrt(2 * cfg.n_layer)))
        if cfg.bias:
            self.b_fc = nn.Parameter(torch.zeros(E, H))
            self.b_proj = nn.Parameter(torch.zeros(E, C))
        else:
            self.b_fc = self.b_proj = None
        self.router = nn.Linear(C, E, bias=False) if E > 1 else None
        if self.router is not None:
            nn.init.normal_(self.router.weight, mean=0.0, std=0.02)
        self.dropout = nn.Dropout(cfg.dropout)
        self.register_buffer("load", torch.zeros(E, dtype=torch.long), persistent=False)
        self.aux = torch.zeros(())  # the last forward's balance loss
        self.dropped = 0  # assignments over capacity, since the last reset
        self.assigned = 0

    def reset_load(self) -> None:
        self.load.zero_()
        self.dropped = self.assigned = 0

    def expert(self, e: int, x: Tensor) -> Tensor:
        h = x @ self.w_fc[e]
        if self.b_fc is not None:
            h = h + self.b_fc[e]
        y = F.gelu(h) @ self.w_proj[e]
        return y + self.b_proj[e] if self.b_proj is not None else y

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # (N, C)
        N, E, k = flat.size(0), self.moe.experts, self.moe.top_k
        if self.router is None:
            self.aux = flat.new_zeros(())
            self.load[0] += N
            self.assigned += N
            return self.dropout(self.expert(0, flat)).view(shape)
        probs = F.softmax(self.router(flat).float(), dim=-1)  # (N, E)
        gates, chosen = probs.topk(k, dim=-1)  # (N, k), largest first
        gates = gates / gates.sum(-1, keepdim=True)
        self.aux = balance_loss(probs, chosen, E)
        # assignment order: all first choices (token order), then all second choices, ...
        order_e = chosen.t().reshape(-1)  # (k*N,)
        order_tok = torch.arange(N, device=flat.device).repeat(k)
        order_gate = gates.t().reshape(-1).to(flat.dtype)
        keep = torch.ones_like(order_e, dtype=torch.bool)
        if self.training and self.moe.capacity_factor > 0:
            cap = math.ceil(self.moe.capacity_factor * N * k / E)
            onehot = F.one_hot(order_e, E)  # (kN, E)
            rank = (onehot.cumsum(0) * onehot).sum(-1) - 1  # position of each assignment in its expert's queue
            keep = rank < cap
        with torch.no_grad():
            self.load += torch.bincount(order_e, minlength=E)
            self.assigned += int(order_e.numel())
            self.dropped += int((~keep).sum())
        out = torch.zeros_like(flat)
        for e in range(E):
            sel = ((order_e == e) & keep).nonzero().squeeze(1)
            if sel.numel() == 0:
                continue
            tok = order_tok[sel]
            y = self.expert(e, flat[tok]) * order_gate[sel, None]
            out.index_add_(0, tok, y)
        return self.dropout(out).view(shape)


class MoEGPT(GPT):
    """A GPT with every block's MLP (the multi-token heads' too) an MoEMLP."""

    def __init__(self, cfg: ModelConfig, moe: MoEConfig) -> None:
        if cfg.family != "gpt":
            raise ConfigError(f"mixture of experts is built on the gpt family, got {cfg.family}")
        super().__init__(cfg)
        self.moe = moe
        for block in [*self.transformer.h, *self.future]:
            block.mlp = MoEMLP(cfg, moe)

    def moe_layers(self) -> list[MoEMLP]:
        return [b.mlp for b in self.transformer.h]

    def aux_loss(self) -> Tensor:
        layers = [b.mlp for b in [*self.transformer.h, *self.future]]
        return torch.stack([m.aux for m in layers]).mean()

    def loads(self) -> list[list[int]]:
        return [m.load.tolist() for m in self.moe_layers()]

    def reset_load(self) -> None:
        for b in [*self.transformer.h, *self.future]:
            b.mlp.reset_load()

    def forward(self, idx: Tensor, targets: Tensor | None = None, cache=None) -> tuple[Tensor, Tensor | None]:
        logits, loss = super().forward(idx, targets, cache)
        if loss is not None and self.training and self.moe.experts > 1 and self.moe.aux_coef > 0:
            loss = loss + self.moe.aux_coef * self.aux_loss()
        return logits, loss

    def params(self) -> dict[str, int]:
        """Total parameters, and those one token passes through (top-k of E experts, the router)."""
        total = self.num_params()
        C, H = self.cfg.n_embd, self.moe.width(self.cfg.n_embd)
        per_expert = 2 * C * H + ((H + C) if self.cfg.bias else 0)
        n_mlp = len(self.transformer.h) + len(self.future)
        return {"total": total, "active": total - n_mlp * per_expert * (self.moe.experts - self.moe.top_k)}


def training_flops_per_token(cfg: ModelConfig, moe: MoEConfig, context: int | None = None) -> int:
    """Training FLOPs per token (forward + backward), counted as imo.train.flops counts a GPT (6 per
    weight a token passes through, LN gains and biases included, plus attention's 12 * L * C * T),
    with each block's dense MLP (8C^2 + 5C) replaced by the MoE's active share: k experts of
    2 * C * hidden weights (+ hidden + C biases) each, plus the router's C * E weights."""
    from imo.train.flops import flops_per_token

    C, H = cfg.n_embd, moe.width(cfg.n_embd)
    L = cfg.n_layer + cfg.n_future - 1
    dense = 8 * C * C + (5 * C if cfg.bias else 0)
    active = moe.top_k * (2 * C * H + ((H + C) if cfg.bias else 0)) + (C * moe.experts if moe.experts > 1 else 0)
    return flops_per_token(cfg, context) + 6 * L * (active - dense)
