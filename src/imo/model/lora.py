"""LoRA: low-rank adapters on a model's linear projections (Hu et al. 2021, arXiv:2106.09685).

A frozen weight W (out, in) gets a trainable update B @ A of rank r, scaled by alpha / r:

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T        A: (r, in), B: (out, r)

A starts small and random and B at zero (the paper's section 4.1), so a fresh adapter leaves the
model's function unchanged and only A and B get gradients. After training, merge_lora_ folds
W + (alpha / r) B A back into plain nn.Linear layers: the saved run is an ordinary checkpoint of
the base family, which `imo sample`, `imo chat` and `imo serve` load like any other, and the
merged model costs nothing extra at inference.

Which projections get adapters is a per-family list of short names (`LORA_TARGETS`); the Llama
family's are the attention's q/k/v/o and the SwiGLU's gate/up/down, the modules the QLoRA paper
(Dettmers et al. 2023) found it pays to adapt all of.

    n = apply_lora_(model, LoRAConfig(rank=8, alpha=16))   # freezes the rest, returns adapters added
    ...train...
    merge_lora_(model)                                    # plain nn.Linear again
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.errors import ConfigError

# short target name -> the attribute path inside one block, per model family
LORA_TARGETS: dict[str, dict[str, str]] = {
    "llama": {"q": "attn.q_proj", "k": "attn.k_proj", "v": "attn.v_proj", "o": "attn.o_proj",
              "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"},
}
DEFAULT_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.0  # on the adapter's input only
    targets: tuple[str, ...] = DEFAULT_TARGETS

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"lora rank must be >= 1, got {self.rank}")
        if not self.alpha > 0:
            raise ConfigError(f"lora alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora dropout must be in [0, 1), got {self.dropout}")
        if not self.targets:
            raise ConfigError("lora needs at least one target projection")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable rank-r update. The base keeps its parameter names
    (`weight`, `bias`), so a checkpoint taken mid-training holds the base weights under their
    usual names and the adapters beside them (`lora_A`, `lora_B`)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank, self.scale = rank, alpha / rank
        dev, dt = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, device=dev, dtype=dt))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, device=dev, dtype=dt))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own init, as the paper's code
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight, self.bias)
        return y + F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * self.scale

    def delta(self) -> Tensor:
        """The update the adapter adds to the weight: scale * B @ A, shape (out, in)."""
        return (self.lora_B @ self.lora_A) * self.scale

    def merged(self) -> nn.Linear:
        """A plain nn.Linear computing the same function (W + scale * B A, the same bias)."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.weight + self.delta())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, scale={self.scale:g}"


def target_paths(family: str, targets: tuple[str, ...]) -> list[str]:
    """The in-block attribute paths of `targets` in a model family (refuses what it cannot adapt)."""
    names = LORA_TARGETS.get(family)
    if names is None:
        raise ConfigError(f"LoRA is built for the {', '.join(LORA_TARGETS)} family; this run's model is the "
                          f"{family} family (fine-tune it in full: drop --lora-rank)")
    unknown = [t for t in targets if t not in names]
    if unknown:
        raise ConfigError(f"unknown LoRA target(s) {', '.join(unknown)}; the {family} family has: {', '.join(names)}")
    return [names[t] for t in targets]


def _targets(model: nn.Module, cfg: LoRAConfig) -> list[tuple[nn.Module, str]]:
    """(parent module, attribute) of every projection the config adapts, checked up front."""
    paths = target_paths(getattr(getattr(model, "cfg", None), "family", "gpt"), cfg.targets)
    out = []
    for block in model.transformer.h:
        for t, full in zip(cfg.targets, paths, strict=True):
            *path, attr = full.split(".")
            parent = block
            for p in path:
                parent = getattr(parent, p)
            lin = getattr(parent, attr, None)
            if not isinstance(lin, nn.Linear):
                raise ConfigError(f"LoRA target {t} ({full}) is {type(lin).__name__}, not a float nn.Linear "
                                  "(a quantized or already adapted model)")
            out.append((parent, attr))
    return out


def apply_lora_(model: nn.Module, cfg: LoRAConfig) -> int:
    """Freeze every parameter of `model` and put a LoRALinear on each target projection of every
    block, in place; returns the number of adapters added."""
    targets = _targets(model, cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    for parent, attr in targets:
        setattr(parent, attr, LoRALinear(getattr(parent, attr), cfg.rank, cfg.alpha, cfg.dropout))
    return len(targets)


def lora_modules(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora_(model: nn.Module) -> int:
    """Replace every LoRALinear with its merged nn.Linear, in place; returns how many. The
    parameters of the merged model are trainable again (as a freshly built model's are)."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merged())
                count += 1
    for p in model.parameters():
        p.requires_grad_(True)
    return count
