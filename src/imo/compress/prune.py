"""Pruning: zero a chosen fraction of the weights of the selected layers, and keep them zero.

Masks are 0/1 buffers named `weight_mask` on each pruned module (non-persistent, so a model's
state dict and nanoGPT names are unchanged). The weights themselves are multiplied by the mask
in place, so a pruned model is an ordinary model whose zeros are real; during further training
`keep_masks(optimizer, model)` re-applies every mask after each optimizer step (AdamW's moments
would otherwise move pruned weights away from zero). Saving (imo.compress.storage) stores the
zeros compactly as a bitmask plus the surviving values.

Methods (registry PRUNERS): `magnitude` (|w|), `random`, and `synflow` (Tanaka et al. 2020,
"Pruning neural networks without any data by iteratively conserving synaptic flow": score
|w * dR/dw| with R = 1^T (prod |W_l|) 1 computed from an all-ones input, pruned in 100 rounds
with an exponential schedule, data-free). Scope `global` ranks all selected weights together;
`layer` prunes each layer to the same (or its own) fraction.

    report = prune_(model, "magnitude", 0.5, scope="global")
    print(report.table())
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.registry import Registry

FilterFn = Callable[[str, nn.Module], bool]
SCOPES = ("global", "layer")
MASK = "weight_mask"


def check_sparsity(s: float, what: str = "sparsity") -> float:
    if isinstance(s, bool) or not isinstance(s, int | float) or not 0.0 <= s < 1.0:
        raise ConfigError(f"{what} must be in [0, 1) (the fraction of weights removed), got {s!r}")
    return float(s)


def linear_filter(skip: list[str] | tuple[str, ...] = ()) -> FilterFn:
    """Every nn.Linear (and every already-pruned layer) whose name matches none of the `skip`
    glob patterns (e.g. 'lm_head', '*.attn.*')."""

    def pick(name: str, m: nn.Module) -> bool:
        return isinstance(m, nn.Linear) and not any(fnmatch.fnmatchcase(name, p) for p in skip)

    return pick


def select(model: nn.Module, filter_fn: FilterFn | None = None) -> dict[str, nn.Module]:
    """The modules to prune, by name; a filter that matches nothing is an error (not a no-op).
    A weight shared by two modules (a tied output head) is pruned once, under its first name."""
    filter_fn = filter_fn or linear_filter()
    out, seen = {}, set()
    for name, m in model.named_modules(remove_duplicate=False):
        w = getattr(m, "weight", None)
        if not isinstance(w, nn.Parameter) or w.dim() < 2 or not filter_fn(name, m):
            continue
        if id(w) in seen:
            continue
        seen.add(id(w))
        out[name] = m
    if not out:
        raise ConfigError("the layer filter matches no weight matrix; nothing would be pruned "
                          "(check the --skip patterns or the model)")
    return out


def get_mask(m: nn.Module) -> Tensor:
    mask = getattr(m, MASK, None)
    return mask if mask is not None else torch.ones_like(m.weight, dtype=torch.bool)


def set_mask(m: nn.Module, mask: Tensor) -> None:
    """Attach (or replace) a module's mask and zero its pruned weights."""
    mask = mask.to(device=m.weight.device, dtype=torch.bool)
    if mask.shape != m.weight.shape:
        raise ConfigError(f"mask of shape {tuple(mask.shape)} does not fit weight {tuple(m.weight.shape)}")
    if hasattr(m, MASK):
        setattr(m, MASK, mask)
    else:
        m.register_buffer(MASK, mask, persistent=False)
    with torch.no_grad():
        m.weight.mul_(mask)


def masked_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if getattr(m, MASK, None) is not None}


@torch.no_grad()
def apply_masks_(model: nn.Module) -> None:
    for m in masked_modules(model).values():
        m.weight.mul_(getattr(m, MASK))


def keep_masks(optimizer: torch.optim.Optimizer, model: nn.Module):
    """Re-apply the model's masks after every optimizer step; returns the hook handle."""
    return optimizer.register_step_post_hook(lambda *_: apply_masks_(model))


# --- the report ---------------------------------------------------------------------------------


@dataclass
class PruneReport:
    method: str
    scope: str
    target: float
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (kept, total)

    @property
    def sparsity(self) -> float:
        kept = sum(k for k, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        return 1.0 - kept / total

    def table(self) -> str:
        w = max(len(n) for n in self.layers) if self.layers else 5
        lines = [f"{'layer':<{w}}  {'weights':>9}  {'kept':>9}  sparsity"]
        for n, (k, t) in self.layers.items():
            lines.append(f"{n:<{w}}  {t:>9,}  {k:>9,}  {1 - k / t:8.2%}")
        lines.append(f"{'all':<{w}}  {sum(t for _, t in self.layers.values()):>9,}  "
                     f"{sum(k for k, _ in self.layers.values()):>9,}  {self.sparsity:8.2%}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"method": self.method, "scope": self.scope, "target": self.target,
                "sparsity": self.sparsity,
                "layers": {n: {"kept": k, "total": t} for n, (k, t) in self.layers.items()}}


def report(model: nn.Module, modules: dict[str, nn.Module], method: str, scope: str, target: float) -> PruneReport:
    r = PruneReport(method, scope, target)
    for n, m in modules.items():
        r.layers[n] = (int(get_mask(m).sum()), m.weight.numel())
    return r


# --- ranking scores into masks ------------------------------------------------------------------


def _keep_top(scores: Tensor, n_keep: int) -> Tensor:
    """A boolean mask keeping exactly the n_keep highest scores (ties: the earlier index wins)."""
    flat = scores.flatten()
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[order[:n_keep]] = True
    return mask.view_as(scores)


def masks_from_scores(scores: dict[str, Tensor], old: dict[str, Tensor], sparsity: float | dict[str, float],
                      scope: str) -> dict[str, Tensor]:
    """Masks with exactly round(sparsity * n) weights removed (globally, or per layer); weights
    already pruned (old mask 0) score -inf, so they stay pruned."""
    if scope not in SCOPES:
        raise ConfigError(f"unknown pruning scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    scores = {n: torch.where(old[n], s.double(), -torch.inf) for n, s in scores.items()}
    if scope == "layer" or isinstance(sparsity, dict):
        out = {}
        for n, s in scores.items():
            sp = check_sparsity(sparsity.get(n, 0.0) if isinstance(sparsity, dict) else sparsity)
            sp = max(sp, 1.0 - int(old[n].sum()) / s.numel())  # never un-prune
            out[n] = _keep_top(s, s.numel() - round(sp * s.numel()))
        return out
    sparsity = check_sparsity(sparsity)
    names = list(scores)
    flat = torch.cat([scores[n].flatten() for n in names])
    total = flat.numel()
    already = total - int(sum(int(old[n].sum()) for n in names))
    n_keep = total - max(round(sparsity * total), already)
    keep = _keep_top(flat, n_keep)
    out, i = {}, 0
    for n in names:
        k = scores[n].numel()
        out[n] = keep[i:i + k].view_as(scores[n])
        i += k
    return out


# --- methods ------------------------------------------------------------------------------------


class Pruner:
    """One-shot: score every selected weight once, keep the highest."""

    def scores(self, model: nn.Module, modules: dict[str, nn.Module], gen: torch.Generator) -> dict[str, Tensor]:
        raise NotImplementedError

    def prune(self, model: nn.Module, modules: dict[str, nn.Module], sparsity, scope: str,
              gen: torch.Generator) -> None:
        old = {n: get_mask(m) for n, m in modules.items()}
        masks = masks_from_scores(self.scores(model, modules, gen), old, sparsity, scope)
        for n, m in modules.items():
            set_mask(m, masks[n])


PRUNERS: Registry[Pruner] = Registry("pruning method")


@PRUNERS.register("magnitude")
class Magnitude(Pruner):
    """Keep the largest |w| (Han et al. 2015)."""

    def scores(self, model, modules, gen):
        return {n: m.weight.detach().abs() for n, m in modules.items()}


@PRUNERS.register("random")
class RandomPrune(Pruner):
    """Keep a uniformly random subset (the ablation every method must beat)."""

    def scores(self, model, modules, gen):
        return {n: torch.rand(m.weight.shape, generator=gen).to(m.weight.device) for n, m in modules.items()}


def synflow_scores(model: nn.Module, modules: dict[str, nn.Module], input_shape: tuple[int, ...]) -> dict[str, Tensor]:
    """SynFlow scores |w * dR/dw|, with R = sum of the outputs of the network whose parameters are
    replaced by their absolute values (pruned ones stay 0), fed one all-ones input. For a chain of
    linear layers R = 1^T |W_L| ... |W_1| 1 (plus bias paths): the score of a weight is the total
    "synaptic flow" through every input-output path that uses it. Computed in float64."""
    was_training = model.training
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    dtype = params[0].dtype
    model.double().eval()
    try:
        with torch.no_grad():
            for p in params:
                p.abs_()
        for m in modules.values():
            m.weight.grad = None
        x = torch.ones((1, *input_shape), dtype=torch.float64, device=params[0].device)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
        return {n: (m.weight.grad * m.weight).detach().abs().clone() for n, m in modules.items()}
    finally:
        model.to(dtype)
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
                p.grad = None
        model.train(was_training)


@PRUNERS.register("synflow")
class SynFlow(Pruner):
    """Iterative SynFlow: `rounds` rounds (100 by default), the kept fraction shrinking
    exponentially, (1 - s)^(k / rounds) after round k, rescoring the pruned network each round.
    Needs a feed-forward model whose input shape is known (`input_shape`); data-free."""

    def __init__(self, rounds: int = 100, input_shape: tuple[int, ...] | None = None) -> None:
        if rounds < 1:
            raise ConfigError(f"synflow rounds must be >= 1, got {rounds}")
        self.rounds, self.input_shape = rounds, input_shape

    def prune(self, model, modules, sparsity, scope, gen):
        shape = self.input_shape or getattr(model, "input_shape", None)
        if shape is None:
            raise ConfigError("synflow needs a feed-forward model with a fixed input (an MLP); a GPT's "
                              "token and LayerNorm inputs give no synaptic flow; use magnitude or random")
        if isinstance(sparsity, dict):
            raise ConfigError("synflow prunes globally to one sparsity")
        sparsity = check_sparsity(sparsity)
        for k in range(1, self.rounds + 1):
            target = 1.0 - (1.0 - sparsity) ** (k / self.rounds)
            old = {n: get_mask(m) for n, m in modules.items()}
            masks = masks_from_scores(synflow_scores(model, modules, tuple(shape)), old, target, scope)
            for n, m in modules.items():
                set_mask(m, masks[n])


def make_pruner(method: str, **options) -> Pruner:
    cls = PRUNERS.get(method)
    return cls(**options)


def prune_(model: nn.Module, method: str, sparsity: float | dict[str, float], *,
           filter_fn: FilterFn | None = None, scope: str = "global", seed: int = 0,
           **options) -> PruneReport:
    """Prune `model` in place: the selected layers lose `sparsity` of their weights (counted over
    all of them for scope global, in each for scope layer, or per layer from a dict name -> s).
    Returns a per-layer report. Weights pruned before stay pruned."""
    pruner = make_pruner(method, **options)
    if scope not in SCOPES:
        raise ConfigError(f"unknown pruning scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    if isinstance(sparsity, dict):
        for v in sparsity.values():
            check_sparsity(v)
    else:
        check_sparsity(sparsity)
    modules = select(model, filter_fn)
    if isinstance(sparsity, dict):
        unknown = sorted(set(sparsity) - set(modules))
        if unknown:
            raise ConfigError(f"no selected layer named {', '.join(unknown)}; layers: {', '.join(modules)}")
    gen = torch.Generator().manual_seed(seed)
    pruner.prune(model, modules, sparsity, scope, gen)
    target = sparsity if not isinstance(sparsity, dict) else float("nan")
    return report(model, modules, method, scope, target)
