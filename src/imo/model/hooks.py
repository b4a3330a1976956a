"""Hook points at the interesting activations, TransformerLens-style, and `run_with_cache`.

Every activation worth inspecting passes through a `HookPoint` (an identity module). They are
addressed by short names, `blocks.3.attn.hook_pattern`, which map onto the nanoGPT module tree
(`transformer.h.3.attn.hook_pattern`). A forward hook may read an activation or replace it.

    logits, cache = run_with_cache(model, idx)
    cache["blocks.0.attn.hook_pattern"]   # (B, nh, T, T)
"""

import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from imo.errors import ConfigError


class HookPoint(nn.Module):
    """Identity; exists so that hooks have a named place to attach."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def short_name(module_name: str) -> str:
    return re.sub(r"^transformer\.h\.(\d+)\.", r"blocks.\1.", module_name).removeprefix("transformer.")


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    return {short_name(n): m for n, m in model.named_modules() if isinstance(m, HookPoint)}


@contextmanager
def hooks(model: nn.Module, fns: dict[str, Callable[[Tensor], Tensor | None]]):
    """Attach `fn(activation) -> replacement or None` at each named hook point for a block of code."""
    points = hook_points(model)
    handles = []
    try:
        for name, fn in fns.items():
            if name not in points:
                raise ConfigError(f"unknown hook point {name!r}; e.g. {', '.join(list(points)[:6])}, ...")
            handles.append(points[name].register_forward_hook(lambda m, i, out, fn=fn: fn(out)))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def run_with_cache(
    model: nn.Module, idx: Tensor, names: Iterable[str] | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run the model on the naive attention path and return (logits, {hook name: activation})."""
    wanted = list(names) if names is not None else list(hook_points(model))
    cache: dict[str, Tensor] = {}

    def saver(name: str):
        def save(x: Tensor) -> None:
            cache[name] = x.detach()

        return save

    with hooks(model, {n: saver(n) for n in wanted}), model.attention_backend("naive"):
        logits, _ = model(idx)
    return logits, cache
