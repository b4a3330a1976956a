"""Tiled ("flash") causal attention in plain PyTorch, with a memory-light custom backward.

The forward pass walks over blocks of keys/values, keeping a running row maximum, a running
softmax denominator and a running output (the online softmax), so the full T x T score matrix
is never materialised: peak extra memory is O(Tq * tile) per (batch, head). The backward
pass recomputes each block's scores from q and k and the saved log-sum-exp instead of storing
the probabilities. This follows Dao et al. 2022, "FlashAttention", Algorithms 1-2, in spirit
(queries are kept whole and only keys are tiled; there is no fused kernel, so the gain is memory,
not speed). Optional ALiBi biases (Press et al. 2022) are added to the scores.

Usage: ``y = tiled_attention(q, k, v, q_offset=cache_len, alibi_slopes=slopes, tile=64)``
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["tiled_attention"]


def _block_scores(
    q: Tensor,
    k_blk: Tensor,
    q_pos: Tensor,
    k_pos: Tensor,
    scale: float,
    slopes: Tensor | None,
    crosses_diagonal: bool,
) -> Tensor:
    """Scaled, biased, causally masked scores of query rows ``q`` against one key block.

    q: (B, nh, R, hs), k_blk: (B, nh, C, hs), q_pos: (R,), k_pos: (C,) -> (B, nh, R, C).
    """
    s = torch.matmul(q, k_blk.transpose(-2, -1)) * scale  # (B, nh, R, C)
    rel = k_pos[None, :] - q_pos[:, None]  # (R, C); <= 0 exactly where the key is visible
    if slopes is not None:
        # ALiBi: slope_h * (j - i), a linear penalty on distance; (nh, 1, 1) * (R, C) -> (nh, R, C)
        s = s + slopes[:, None, None] * rel.to(s.dtype)
    if crosses_diagonal:  # some key is after some query: mask; else the whole block is visible
        s = s.masked_fill(rel > 0, float("-inf"))
    return s


def _first_row(j0: int, q_offset: int) -> int:
    """First query row that can see key ``j0``; rows before it see no key of the block at all."""
    return max(0, j0 - q_offset)


class _TiledAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        q_offset: int,
        alibi_slopes: Tensor | None,
        tile: int,
    ) -> Tensor:
        B, nh, Tq, hs = q.shape
        Tk = k.shape[-2]
        scale = 1.0 / math.sqrt(hs)
        # Accumulate in at least fp32: the running sums lose too much in fp16/bf16.
        acc_dtype = torch.promote_types(q.dtype, torch.float32)
        slopes = None if alibi_slopes is None else alibi_slopes.to(q.device, acc_dtype)
        q_pos = torch.arange(Tq, device=q.device) + q_offset  # absolute query positions
        k_pos_all = torch.arange(Tk, device=q.device)

        m = torch.full((B, nh, Tq), float("-inf"), dtype=acc_dtype, device=q.device)  # row max
        l = torch.zeros((B, nh, Tq), dtype=acc_dtype, device=q.device)  # row sum of exp(s - m)
        acc = torch.zeros((B, nh, Tq, hs), dtype=acc_dtype, device=q.device)  # unnormalised out

        for j0 in range(0, Tk, tile):
            r0 = _first_row(j0, q_offset)
            if r0 >= Tq:  # every query precedes this block (and all later ones): fully masked
                break
            j1 = min(j0 + tile, Tk)
            k_blk = k[:, :, j0:j1].to(acc_dtype)  # (B, nh, C, hs)
            v_blk = v[:, :, j0:j1].to(acc_dtype)
            s = _block_scores(q[:, :, r0:].to(acc_dtype), k_blk, q_pos[r0:], k_pos_all[j0:j1],
                              scale, slopes, j1 - 1 > q_offset + r0)  # (B, nh, R, C), R = Tq - r0

            # Online softmax: rescale what we have so far to the new running max. Every row in
            # the slice sees key j0, so m_new is finite and exp(-inf - m_new) = 0 on first visit.
            m_old = m[:, :, r0:]
            m_new = torch.maximum(m_old, s.amax(dim=-1))  # (B, nh, R)
            p = torch.exp(s - m_new[..., None])  # (B, nh, R, C); masked entries -> 0
            alpha = torch.exp(m_old - m_new)  # (B, nh, R)
            l[:, :, r0:] = l[:, :, r0:] * alpha + p.sum(dim=-1)
            acc[:, :, r0:] = acc[:, :, r0:] * alpha[..., None] + torch.matmul(p, v_blk)
            m[:, :, r0:] = m_new

        # A row with no visible key (only possible if Tk == 0) has l == 0 and acc == 0: give 0.
        out = acc / l.clamp_min(torch.finfo(acc_dtype).tiny)[..., None]  # (B, nh, Tq, hs)
        lse = m + torch.log(l)  # (B, nh, Tq); log of the softmax denominator
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.q_offset, ctx.tile, ctx.scale, ctx.slopes = q_offset, tile, scale, slopes
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, d_out: Tensor):  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        q_offset, tile, scale, slopes = ctx.q_offset, ctx.tile, ctx.scale, ctx.slopes
        Tq, Tk = q.shape[-2], k.shape[-2]
        acc_dtype = out.dtype
        do = d_out.to(acc_dtype)
        qa = q.to(acc_dtype)
        q_pos = torch.arange(Tq, device=q.device) + q_offset
        k_pos_all = torch.arange(Tk, device=q.device)

        # D_i = sum_d dO_id O_id = sum_j P_ij dP_ij: the softmax Jacobian's correction term.
        delta = (do * out).sum(dim=-1)  # (B, nh, Tq)
        dq = torch.zeros_like(qa)
        dk = torch.zeros(k.shape, dtype=acc_dtype, device=k.device)
        dv = torch.zeros(v.shape, dtype=acc_dtype, device=v.device)

        for j0 in range(0, Tk, tile):
            r0 = _first_row(j0, q_offset)
            if r0 >= Tq:
                break
            j1 = min(j0 + tile, Tk)
            k_blk = k[:, :, j0:j1].to(acc_dtype)  # (B, nh, C, hs)
            v_blk = v[:, :, j0:j1].to(acc_dtype)
            q_s, do_s = qa[:, :, r0:], do[:, :, r0:]  # (B, nh, R, hs)
            s = _block_scores(q_s, k_blk, q_pos[r0:], k_pos_all[j0:j1], scale, slopes,
                              j1 - 1 > q_offset + r0)
            # Recompute the probabilities exactly from the saved log-sum-exp (no re-normalising).
            # Rows in the slice see key j0, so their lse is finite; masked s = -inf gives p = 0.
            p = torch.exp(s - lse[:, :, r0:, None])  # (B, nh, R, C)
            dv[:, :, j0:j1] = torch.matmul(p.transpose(-2, -1), do_s)  # (B, nh, C, hs)
            dp = torch.matmul(do_s, v_blk.transpose(-2, -1))  # (B, nh, R, C)
            ds = p * (dp - delta[:, :, r0:, None])  # softmax backward, (B, nh, R, C)
            dq[:, :, r0:] += torch.matmul(ds, k_blk) * scale
            dk[:, :, j0:j1] = torch.matmul(ds.transpose(-2, -1), q_s) * scale

        # No gradient for q_offset, alibi_slopes (a constant by design) or tile.
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None


def tiled_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    q_offset: int = 0,
    alibi_slopes: Tensor | None = None,
    tile: int = 64,
) -> Tensor:
    """Causal softmax attention computed block by block; never builds the Tq x Tk matrix.

    q: (B, nh, Tq, hs); k, v: (B, nh, Tk, hs) -> (B, nh, Tq, hs). Query i sits at absolute
    position ``q_offset + i`` and sees key j iff ``j <= q_offset + i`` (``q_offset = Tk - Tq``
    when decoding with a KV cache). ``alibi_slopes`` (nh,) adds ``slope_h * (j - (q_offset+i))``
    to each score and is treated as a constant (it receives no gradient).
    """
    if q.dim() != 4 or k.shape != v.shape or k.shape[:2] != q.shape[:2] or k.shape[-1] != q.shape[-1]:
        raise ValueError(f"expected q (B, nh, Tq, hs), k = v (B, nh, Tk, hs); got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if tile < 1 or q_offset < 0:
        raise ValueError(f"need tile >= 1 and q_offset >= 0, got {tile}, {q_offset}")
    if alibi_slopes is not None and alibi_slopes.shape != (q.shape[1],):
        raise ValueError(f"alibi_slopes must have shape ({q.shape[1]},), got {tuple(alibi_slopes.shape)}")
    return _TiledAttention.apply(q, k, v, q_offset, alibi_slopes, tile)
