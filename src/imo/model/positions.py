"""Position encodings, registered by name.

An encoding can act in three places, and each class fills in the ones it uses:
  * `embed(pos)`   -> (T, C) vectors added to the token embeddings (learned, sinusoidal);
  * `rotate(x, pos)` -> q or k rotated by position (RoPE, Su et al. 2021);
  * `alibi_slopes` -> per-head slopes of a linear distance penalty added to the scores
                      (ALiBi, Press et al. 2022).
With `none` the model has no notion of order and is permutation-equivariant.

    enc = POSITIONS.get("rope")(cfg); q = enc.rotate(q, torch.arange(T))
"""

import math

import torch
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.registry import Registry

POSITIONS: Registry[type["PositionEncoding"]] = Registry("position encoding")


class PositionEncoding(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg

    def embed(self, pos: Tensor) -> Tensor | None:
        return None

    def rotate(self, x: Tensor, pos: Tensor) -> Tensor:
        return x

    alibi_slopes: Tensor | None = None

    def check_length(self, max_pos: int) -> None:
        """Raise if a position beyond what the encoding can express is asked for."""


@POSITIONS.register("none")
class NoPositions(PositionEncoding):
    pass


@POSITIONS.register("learned")
class Learned(PositionEncoding):
    """A trained table of context_length vectors (GPT-2); cannot go past its length."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.wpe = nn.Embedding(cfg.context_length, cfg.n_embd)

    def embed(self, pos: Tensor) -> Tensor:
        return self.wpe(pos)

    def check_length(self, max_pos: int) -> None:
        if max_pos > self.cfg.context_length:
            raise ConfigError(
                f"context {max_pos} is longer than the learned position table ({self.cfg.context_length}); "
                f"use a context <= {self.cfg.context_length} or a model with rope/alibi/sinusoidal positions"
            )


@POSITIONS.register("sinusoidal")
class Sinusoidal(PositionEncoding):
    """Fixed sines and cosines of geometric frequencies (Vaswani et al. 2017).

    Vaswani et al. scale the token embeddings up by sqrt(d) so that the unit-size sinusoids do not
    swamp them; here the token embeddings start at std 0.02 (GPT-2), so the sinusoids are scaled
    down instead, to the same RMS per component as a freshly initialised learned table."""

    SCALE = 0.02 * math.sqrt(2)  # sin/cos have RMS 1/sqrt(2)

    def embed(self, pos: Tensor) -> Tensor:
        C = self.cfg.n_embd
        i = torch.arange(0, C, 2, device=pos.device, dtype=torch.float32)
        freq = torch.exp(-math.log(10000.0) * i / C)  # (C/2,)
        angle = pos.float()[:, None] * freq[None, :]  # (T, C/2)
        out = torch.zeros(pos.numel(), C, device=pos.device)
        out[:, 0::2] = torch.sin(angle)
        out[:, 1::2] = torch.cos(angle)[:, : C // 2]
        return out * self.SCALE


@POSITIONS.register("rope")
class RoPE(PositionEncoding):
    """Rotary embeddings: rotate pairs of q/k channels by position-dependent angles, so that
    q_m . k_n depends only on m - n. `rope_scale` < 1 is position interpolation (Chen et al. 2023):
    positions are squeezed into the trained range instead of extrapolated past it."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        hs = cfg.n_embd // cfg.n_head
        inv_freq = cfg.rope_base ** (-torch.arange(0, hs, 2, dtype=torch.float32) / hs)  # (hs/2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def rotate(self, x: Tensor, pos: Tensor) -> Tensor:
        # x: (B, nh, T, hs); channel pairs (2i, 2i+1) are rotated by angle pos * scale * inv_freq[i]
        angle = (pos.float() * self.cfg.rope_scale)[:, None] * self.inv_freq[None, :]  # (T, hs/2)
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, nh, T, hs/2) each
        out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, nh, T, hs/2, 2)
        return out.flatten(-2)


def alibi_slopes(n_head: int) -> Tensor:
    """Press et al. 2022: a geometric sequence starting at 2^(-8/n) with ratio 2^(-8/n); for a
    head count that is not a power of two, the closest power's slopes plus every other slope of
    the next power."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        s = power_of_two(n_head)
    else:
        closest = 2 ** math.floor(math.log2(n_head))
        s = power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(s, dtype=torch.float32)


@POSITIONS.register("alibi")
class ALiBi(PositionEncoding):
    """No position vectors; each head subtracts slope * distance from its attention scores."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.register_buffer("slopes", alibi_slopes(cfg.n_head), persistent=False)

    @property
    def alibi_slopes(self) -> Tensor:  # type: ignore[override]
        return self.slopes
