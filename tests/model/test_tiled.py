"""Tiled (FlashAttention-style) attention against a naive float64 reference: values, gradients,
gradcheck, KV-cache decoding offsets, and that no T x T tensor is ever allocated."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from imo.model.tiled import tiled_attention

LENGTHS = [1, 7, 63, 64, 65, 130]
BLOCKS = [16, 64]


def reference(q: Tensor, k: Tensor, v: Tensor, q_offset: int = 0, slopes: Tensor | None = None) -> Tensor:
    """Materialise the scores in float64: bias, causal mask with offset, softmax, @ v."""
    q, k, v = q.double(), k.double(), v.double()
    Tq, Tk, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    s = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, nh, Tq, Tk)
    qpos = torch.arange(Tq)[:, None] + q_offset
    kpos = torch.arange(Tk)[None, :]
    if slopes is not None:
        s = s + slopes.double()[:, None, None] * (kpos - qpos)
    s = s.masked_fill(kpos > qpos, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def alibi(nh: int, dtype=torch.float32) -> Tensor:
    return torch.tensor([2.0 ** (-8 * (h + 1) / nh) for h in range(nh)], dtype=dtype)


def make_qkv(B, nh, Tq, Tk, hs, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, nh, Tq, hs, generator=g, dtype=dtype, requires_grad=True)
    k = torch.randn(B, nh, Tk, hs, generator=g, dtype=dtype, requires_grad=True)
    v = torch.randn(B, nh, Tk, hs, generator=g, dtype=dtype, requires_grad=True)
    return q, k, v


@pytest.mark.parametrize("use_alibi", [False, True])
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("T", LENGTHS)
def test_forward_matches_reference(T, block, use_alibi):
    q, k, v = make_qkv(2, 4, T, T, 16, seed=T)
    slopes = alibi(4) if use_alibi else None
    out = tiled_attention(q, k, v, alibi_slopes=slopes, tile=block)
    assert out.shape == q.shape and out.dtype == q.dtype
    torch.testing.assert_close(out.double(), reference(q, k, v, 0, slopes), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_alibi", [False, True])
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("T", [1, 7, 64, 65, 130])
def test_gradients_match_reference(T, block, use_alibi):
    q, k, v = make_qkv(1, 2, T, T, 8, seed=100 + T)
    slopes = alibi(2) if use_alibi else None
    d_out = torch.randn(1, 2, T, 8, generator=torch.Generator().manual_seed(T))
    got = torch.autograd.grad(tiled_attention(q, k, v, alibi_slopes=slopes, tile=block),
                              (q, k, v), d_out)
    want = torch.autograd.grad(reference(q, k, v, 0, slopes), (q, k, v), d_out.double())
    for name, g, w in zip("qkv", got, want, strict=True):
        torch.testing.assert_close(g.double(), w.double(), atol=1e-4, rtol=1e-4, msg=f"d{name}")


@pytest.mark.parametrize("use_alibi", [False, True])
def test_gradcheck_float64(use_alibi):
    q, k, v = make_qkv(1, 2, 9, 9, 4, dtype=torch.float64, seed=7)
    slopes = alibi(2, torch.float64) if use_alibi else None
    fn = lambda q, k, v: tiled_attention(q, k, v, alibi_slopes=slopes, tile=4)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize("use_alibi", [False, True])
@pytest.mark.parametrize("Tq,Tk", [(Tq, Tk) for Tq in (1, 2, 3) for Tk in (1, 5, 17, 40) if Tq <= Tk])
def test_decoding_with_offset(Tq, Tk, use_alibi):
    # A KV cache of Tk - Tq earlier positions plus Tq new queries; blocks of 16 so that the
    # longer caches span several key blocks.
    q, k, v = make_qkv(2, 2, Tq, Tk, 8, seed=Tk)
    slopes = alibi(2) if use_alibi else None
    off = Tk - Tq
    out = tiled_attention(q, k, v, q_offset=off, alibi_slopes=slopes, tile=16)
    torch.testing.assert_close(out.double(), reference(q, k, v, off, slopes), atol=1e-5, rtol=1e-5)
    d_out = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), d_out)
    want = torch.autograd.grad(reference(q, k, v, off, slopes), (q, k, v), d_out.double())
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), w.double(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("Tq,Tk,off", [(5, 70, 20), (10, 4, 0), (3, 64, 0), (8, 33, 17)])
def test_general_offsets_and_unseen_keys(Tq, Tk, off):
    # Keys after the last query's position are never visible: their blocks are skipped and they
    # must get exactly zero gradient.
    q, k, v = make_qkv(1, 2, Tq, Tk, 8, seed=Tq + Tk)
    slopes = alibi(2)
    out = tiled_attention(q, k, v, q_offset=off, alibi_slopes=slopes, tile=16)
    torch.testing.assert_close(out.double(), reference(q, k, v, off, slopes), atol=1e-5, rtol=1e-5)
    d_out = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), d_out)
    want = torch.autograd.grad(reference(q, k, v, off, slopes), (q, k, v), d_out.double())
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.double(), w.double(), atol=1e-4, rtol=1e-4)
    last_visible = off + Tq - 1
    assert (got[1][:, :, last_visible + 1 :] == 0).all() and (got[2][:, :, last_visible + 1 :] == 0).all()


def test_output_and_grads_are_finite_for_large_scores():
    # Large logits would overflow a non-stabilised exp; the running max must keep them finite.
    q, k, v = make_qkv(1, 1, 40, 40, 4, seed=3)
    with torch.no_grad():
        q.mul_(100.0)
    out = tiled_attention(q, k, v, tile=8)
    out.sum().backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(t.grad).all() for t in (q, k, v))
    torch.testing.assert_close(out.double(), reference(q, k, v), atol=1e-4, rtol=1e-4)


def test_rejects_bad_arguments():
    q, k, v = make_qkv(1, 2, 4, 4, 8)
    with pytest.raises(ValueError):
        tiled_attention(q, k[:, :1], v[:, :1])
    with pytest.raises(ValueError):
        tiled_attention(q, k, v, tile=0)
    with pytest.raises(ValueError):
        tiled_attention(q, k, v, alibi_slopes=torch.ones(3))


class ShapeRecorder(TorchDispatchMode):
    """Records the shape of every tensor produced by an aten op run under the mode."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[str, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor):
                self.shapes.append((str(func), tuple(t.shape)))
        return out


def test_no_T_by_T_tensor_in_forward_or_backward():
    T, block = 256, 32
    q, k, v = make_qkv(1, 2, T, T, 8, seed=1)
    slopes = alibi(2)
    with ShapeRecorder() as fwd:
        out = tiled_attention(q, k, v, alibi_slopes=slopes, tile=block)
    with ShapeRecorder() as bwd:
        torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
    assert any(op.startswith("aten.mm") or "bmm" in op or "matmul" in op for op, _ in fwd.shapes)
    assert len(bwd.shapes) > 10, "backward ops were not recorded"
    for phase, rec in (("forward", fwd), ("backward", bwd)):
        big = [(op, s) for op, s in rec.shapes if len(s) >= 2 and s[-2:] == (T, T)]
        assert not big, f"{phase} allocated a T x T tensor: {big[:3]}"
        # Nothing larger than (T, block) per (batch, head), beyond the q/k/v-sized tensors.
        assert max(math.prod(s[-2:]) for _, s in rec.shapes if len(s) >= 2) <= T * block


def test_the_naive_reference_does_allocate_T_by_T():
    # Guards the test above: the recorder must be able to see a T x T score matrix.
    T = 64
    q, k, v = make_qkv(1, 1, T, T, 8)
    with ShapeRecorder() as rec:
        reference(q, k, v)
    assert any(s[-2:] == (T, T) for _, s in rec.shapes if len(s) >= 2)


def test_bfloat16_inputs_accumulate_in_float32():
    q, k, v = make_qkv(1, 2, 50, 50, 16, dtype=torch.bfloat16, seed=5)
    out = tiled_attention(q, k, v, tile=16)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and q.grad.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), reference(q, k, v), atol=2e-2, rtol=2e-2)
