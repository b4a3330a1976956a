"""Attention backends, registered by name. All compute causal softmax(q k^T / sqrt(hs) + bias) v
and take the same arguments, so every position encoding works with every backend:

  * `naive` materialises the (Tq, Tk) score matrix; the only backend with a hook on the pattern;
  * `tiled` the FlashAttention algorithm in PyTorch: key blocks, running max and sum, a custom
            backward that recomputes blocks; memory linear in length (imo/model/tiled.py);
  * `sdpa`  torch's fused scaled_dot_product_attention.

Causality with an offset: query i sits at position q_offset + i and sees keys 0 .. q_offset + i
(q_offset > 0 when decoding against a KV cache). ALiBi adds slope_h * (j - i) to each score.

    y = BACKENDS.get("tiled")(q, k, v, q_offset=0, alibi_slopes=None)   # q, k, v: (B, nh, T, hs)
"""

import math
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from imo.model.tiled import tiled_attention
from imo.registry import Registry


class Backend(Protocol):
    def __call__(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        *,
        q_offset: int = 0,
        alibi_slopes: Tensor | None = None,
        tile: int = 64,
        pattern_hook: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor: ...


BACKENDS: Registry[Backend] = Registry("attention backend")


def score_bias(Tq: int, Tk: int, q_offset: int, alibi_slopes: Tensor | None, device) -> Tensor:
    """Additive (nh or 1, Tq, Tk) bias: ALiBi distances where visible, -inf where causally masked."""
    qpos = torch.arange(Tq, device=device)[:, None] + q_offset  # (Tq, 1)
    kpos = torch.arange(Tk, device=device)[None, :]  # (1, Tk)
    visible = kpos <= qpos  # (Tq, Tk)
    if alibi_slopes is None:
        bias = torch.zeros(1, Tq, Tk, device=device)
    else:
        bias = alibi_slopes.to(device)[:, None, None] * (kpos - qpos).float()  # (nh, Tq, Tk)
    return bias.masked_fill(~visible, float("-inf"))


@BACKENDS.register("naive")
def naive_attention(q, k, v, *, q_offset=0, alibi_slopes=None, tile=64, pattern_hook=None):
    Tq, Tk, hs = q.size(-2), k.size(-2), q.size(-1)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, Tq, Tk)
    att = att + score_bias(Tq, Tk, q_offset, alibi_slopes, q.device).to(att.dtype)
    att = F.softmax(att, dim=-1)
    if pattern_hook is not None:
        att = pattern_hook(att)
    return att @ v  # (B, nh, Tq, hs)


@BACKENDS.register("sdpa")
def sdpa_attention(q, k, v, *, q_offset=0, alibi_slopes=None, tile=64, pattern_hook=None):
    Tq, Tk = q.size(-2), k.size(-2)
    if alibi_slopes is None and q_offset == 0 and Tq == Tk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)  # the fused fast path
    if alibi_slopes is None and Tq == 1 and q_offset == Tk - 1:
        return F.scaled_dot_product_attention(q, k, v)  # one decoding query sees every key: no mask
    if alibi_slopes is None:  # a boolean mask is cheaper than an additive one for torch's CPU kernel
        qpos = torch.arange(Tq, device=q.device)[:, None] + q_offset
        return F.scaled_dot_product_attention(q, k, v, attn_mask=torch.arange(Tk, device=q.device)[None, :] <= qpos)
    bias = score_bias(Tq, Tk, q_offset, alibi_slopes, q.device).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


@BACKENDS.register("tiled")
def tiled_backend(q, k, v, *, q_offset=0, alibi_slopes=None, tile=64, pattern_hook=None):
    return tiled_attention(q, k, v, q_offset=q_offset, alibi_slopes=alibi_slopes, tile=tile)
