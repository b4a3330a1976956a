"""Dynamic sparse training on a byte LM's MLP layers: SET and RigL beside a static mask and dense.

The digit MLP's rules (`imo.learn.sparse`) moved onto an imo GPT: every block's two MLP matrices
(`mlp.c_fc`, `mlp.c_proj`) keep exactly k_l nonzero weights, with the per-layer densities of
`layer_densities` (ERK or uniform) and the same random initial masks (`random_mask`); attention,
embeddings and norms stay dense in every arm. Every `update_every` steps, until `update_end` of
training, a cosine-decayed fraction of each sparse layer's active weights is dropped (smallest
magnitude) and as many are regrown among the inactive positions:

  * `set`    at random, with the layer's initial scale (Mocanu et al. 2018);
  * `rigl`   where the dense gradient of the current batch is largest, from zero (Evci et al. 2020);
  * `static` never: the initial random mask stays;
  * `dense`  no mask at all (the reference).

All arms use the same AdamW, learning-rate schedule, batches (one seeded generator) and steps;
AdamW's moments are zeroed where the mask changes, and masked weights are re-zeroed after each
step. Validation bits/byte is measured on fixed windows of the corpus's validation split.

    out = train_sparse_lm("rigl", SparseLMConfig(sparsity=0.9, steps=1500), seed=0)
    out["val_bpb"], out["mlp_density"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from imo.errors import ConfigError
from imo.learn.sparse import layer_densities, random_mask

ARMS = ("dense", "static", "set", "rigl")
DISTRIBUTIONS = ("erk", "uniform")


@dataclass(frozen=True)
class SparseLMConfig:
    corpus: str = "python-docs"
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    context_length: int = 128
    steps: int = 1500
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.0
    sparsity: float = 0.9  # of the MLP weights
    distribution: str = "erk"
    update_every: int = 100
    drop_fraction: float = 0.3
    update_end: float = 0.75
    eval_batches: int = 16

    def check(self) -> None:
        if not 0.0 < self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"unknown distribution {self.distribution!r}; choose erk or uniform")
        if self.steps < 1 or self.batch_size < 1 or self.update_every < 1 or self.eval_batches < 1:
            raise ConfigError("steps, batch size, update interval and eval batches must be >= 1")
        if not 0.0 <= self.drop_fraction <= 1.0 or not 0.0 <= self.update_end <= 1.0:
            raise ConfigError("drop fraction and update end must be in [0, 1]")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


def mlp_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The MLP matrices of every block, in order (c_fc then c_proj)."""
    out = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".mlp." in f".{n}."]
    if not out:
        raise ConfigError("the model has no MLP Linear layers to sparsify")
    return out


class MaskedMLPs:
    """The masks of a model's MLP layers and the SET/RigL topology update."""

    def __init__(self, model: nn.Module, arm: str, cfg: SparseLMConfig, gen: torch.Generator):
        self.arm, self.cfg, self.gen = arm, cfg, gen
        self.layers = mlp_linears(model)
        shapes = [tuple(m.weight.shape) for _, m in self.layers]
        dens = layer_densities(shapes, 1.0 - cfg.sparsity, cfg.distribution)
        self.counts = [max(1, round(d * o * i)) for d, (o, i) in zip(dens, shapes, strict=True)]
        self.masks = [random_mask(s, k, gen) for s, k in zip(shapes, self.counts, strict=True)]
        self.initial = [m.clone() for m in self.masks]
        self.updates = 0
        self.apply_()

    @torch.no_grad()
    def apply_(self) -> None:
        for (_, m), mask in zip(self.layers, self.masks, strict=True):
            m.weight.mul_(mask)

    def mask_grads_(self) -> None:
        for (_, m), mask in zip(self.layers, self.masks, strict=True):
            if m.weight.grad is not None:
                m.weight.grad.mul_(mask)

    def drop_fraction(self, step: int) -> float:
        end = self.cfg.update_end * self.cfg.steps
        return self.cfg.drop_fraction / 2 * (1 + math.cos(math.pi * step / end)) if end else 0.0

    def due(self, step: int) -> bool:
        return (self.arm in ("set", "rigl") and step > 0 and step % self.cfg.update_every == 0
                and step < self.cfg.update_end * self.cfg.steps)

    @torch.no_grad()
    def update(self, step: int, opt: torch.optim.Optimizer) -> None:
        """Drop the smallest active weights, regrow as many inactive ones (needs the dense grads)."""
        frac = self.drop_fraction(step)
        for (_, m), mask, k in zip(self.layers, self.masks, self.counts, strict=True):
            w, flat = m.weight.view(-1), mask.view(-1)
            n_change = min(int(frac * k), flat.numel() - k)
            if n_change < 1:
                continue
            active = flat.nonzero().squeeze(1)
            drop = active[w[active].abs().argsort()[:n_change]]
            inactive = (~flat).nonzero().squeeze(1)
            if self.arm == "rigl":
                order = m.weight.grad.view(-1)[inactive].abs().argsort(descending=True)
                values = torch.zeros(n_change)
            else:
                order = torch.randperm(len(inactive), generator=self.gen)
                bound = 1.0 / math.sqrt(m.weight.shape[1])
                values = (torch.rand(n_change, generator=self.gen) * 2 - 1) * bound
            grow = inactive[order[:n_change]]
            flat[drop] = False
            flat[grow] = True
            w[drop] = 0.0
            w[grow] = values.to(w.dtype)
            state = opt.state.get(m.weight, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key].view(-1)[drop] = 0.0
                    state[key].view(-1)[grow] = 0.0
        self.updates += 1

    def density(self) -> list[float]:
        return [float(mask.float().mean()) for mask in self.masks]

    def nonzeros(self) -> list[int]:
        return [int((m.weight != 0).sum()) for _, m in self.layers]

    def moved_fraction(self) -> float:
        new = sum(int((m & ~f).sum()) for m, f in zip(self.masks, self.initial, strict=True))
        return new / sum(self.counts)


def train_sparse_lm(arm: str, cfg: SparseLMConfig = SparseLMConfig(), seed: int = 0,
                    log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Train one arm from scratch; validation bits/byte and the MLP layers' densities."""
    from imo.data.batches import random_batch
    from imo.data.corpora import load_corpus
    from imo.model import GPT, ModelConfig
    from imo.train.evaluate import fixed_eval_set, mean_bpb
    from imo.train.schedule import lr_at

    if arm not in ARMS:
        raise ConfigError(f"unknown arm {arm!r}; choose one of: {', '.join(ARMS)}")
    cfg.check()
    corpus = load_corpus(cfg.corpus)
    torch.manual_seed(seed)
    model = GPT(ModelConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                            context_length=cfg.context_length))
    gen = torch.Generator().manual_seed(seed)  # masks and SET's regrowth
    masks = None if arm == "dense" else MaskedMLPs(model, arm, cfg, torch.Generator().manual_seed(10_000 + seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    evals = fixed_eval_set(corpus.val, cfg.context_length, cfg.batch_size, cfg.eval_batches)
    t0, curve = time.perf_counter(), []
    model.train()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps, 0.1)
        x, y = random_batch(corpus.train, cfg.context_length, cfg.batch_size, gen)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if masks is not None:
            if masks.due(step):
                masks.update(step, opt)
            masks.mask_grads_()
        opt.step()
        if masks is not None:
            masks.apply_()  # AdamW's momentum must not revive a masked weight
        if (step + 1) % max(1, cfg.steps // 5) == 0 or step + 1 == cfg.steps:
            bpb = mean_bpb(model, evals)
            curve.append({"step": step + 1, "val_bpb": bpb, "train_bpb": loss.item() / math.log(2)})
            log(f"{arm} step {step + 1}/{cfg.steps}: val {bpb:.4f} bits/byte")
    mlp = mlp_linears(model)
    total_mlp = sum(m.weight.numel() for _, m in mlp)
    nnz_mlp = sum(int((m.weight != 0).sum()) for _, m in mlp)
    return {"arm": arm, "seed": seed, "config": asdict(cfg), "val_bpb": curve[-1]["val_bpb"], "curve": curve,
            "seconds": time.perf_counter() - t0, "params": model.num_params(),
            "mlp_weights": total_mlp, "mlp_nonzeros": nnz_mlp, "mlp_density": nnz_mlp / total_mlp,
            "layer_density": masks.density() if masks else [1.0] * len(mlp),
            "topology_updates": masks.updates if masks else 0,
            "moved_fraction": masks.moved_fraction() if masks else 0.0}
