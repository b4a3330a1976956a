"""Packed int8/int4 linears (imo/model/qlinear.py): each equals its dequantized float matrix up to
the bfloat16 rounding of its input and output, the int4 grid holds Q4_1-style weights exactly, and a
packed tiny Llama decodes with the KV cache as it does without."""

import pytest
import torch
from torch import nn

from imo.errors import ConfigError
from imo.model import qlinear
from imo.model.config import ModelConfig
from imo.model.families import build_model

pytestmark = pytest.mark.skipif(not qlinear.kernels_available(), reason="needs torch's CPU int8/int4 kernels")


def bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float()


def close_to(y: torch.Tensor, ref: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> None:
    """|y - ref| within bfloat16's rounding of the input, the products' sums and the output
    (2^-8 relative each), measured against the sum of |x| |w| of each output."""
    bound = 3 * 2.0**-8 * (x.abs() @ w.abs().t()) + 1e-6
    assert ((y - ref).abs() <= bound).all(), float(((y - ref).abs() / bound).max())


def test_int8_equals_its_dequantized_matrix():
    torch.manual_seed(0)
    w, x, b = torch.randn(96, 64) * 0.05, torch.randn(5, 64), torch.randn(96)
    lin = qlinear.PackedLinear(w, b, 8)
    deq = lin.q.float() * lin.scale.float()[:, None]  # the bfloat16 scales the kernel uses
    step = w.abs().amax(1, keepdim=True) / 127  # (out, 1)
    assert ((deq - w).abs() <= step * (0.5 + 127 * 2.0**-8)).all()  # half a step + the scale's bfloat16 rounding
    close_to(lin(x) - b, bf16(x) @ deq.t(), x, deq)


@pytest.mark.parametrize("group", [32, 64])
def test_int4_equals_its_dequantized_matrix(group):
    torch.manual_seed(1)
    w, x = torch.randn(48, 128) * 0.05, torch.randn(3, 2, 128)
    lin = qlinear.PackedLinear(w, None, 4, group)
    q, s, z = qlinear.quantize_int4_minmax(w, group)
    deq = qlinear.dequantize_int4_minmax(q, bf16(s), bf16(z), group)
    assert (qlinear.dequantize_int4_minmax(q, s, z, group) - w).abs().max() <= s.max() / 2 * 1.0001
    y = lin(x)
    assert y.shape == (3, 2, 48) and y.dtype == torch.float32
    close_to(y.view(6, 48), bf16(x.view(6, 128)) @ deq.t(), x.view(6, 128), deq)


def test_int4_grid_keeps_q4_1_weights():
    """Weights made as llama.cpp's Q4_1 makes them (d * q + m per block, q in 0..15, both ends used)
    come back exactly from the min/max grid (before the kernel's bfloat16 scales)."""
    torch.manual_seed(2)
    q = torch.randint(0, 16, (8, 64))
    q[:, 0::32], q[:, 1::32] = 0, 15
    d, m = torch.rand(8, 2) * 0.01 + 0.001, -torch.rand(8, 2) * 0.05
    w = (q.view(8, 2, 32) * d[..., None] + m[..., None]).view(8, 64)
    qq, s, z = qlinear.quantize_int4_minmax(w, 32)
    assert torch.equal(qq, q.int())
    torch.testing.assert_close(qlinear.dequantize_int4_minmax(qq, s, z, 32), w, atol=1e-7, rtol=0)


def tiny_llama():
    torch.manual_seed(0)
    cfg = ModelConfig(family="llama", vocab_size=300, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, ffn_hidden=128,
                      context_length=64, rope_base=50000.0, bias=False, attn="sdpa")
    return build_model(cfg).eval()


@pytest.mark.parametrize("weights", ["int8", "int4", "bfloat16"])
def test_prepared_llama_decodes_like_float(weights):
    from imo.engine.cache import KVCache

    m = tiny_llama()
    x = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        ref, _ = m(x)
        report = qlinear.prepare(m, weights)
        if weights != "bfloat16":
            packed = qlinear.packed_modules(m)
            assert isinstance(m.lm_head, qlinear.PackedLinear) and m.lm_head.bits == 8  # tied: int8
            assert isinstance(m.transformer.wte, qlinear.PackedEmbedding) and m.transformer.wte.q is m.lm_head.q
            assert len(packed) == 2 * 4 + 2 and isinstance(m.transformer.h[0].attn.qkv, qlinear.PackedLinear)
            assert report.packed_bytes < report.float_bytes / 3
            assert not any(isinstance(mod, nn.Linear) for mod in m.modules())
        full, _ = m(x)
        cache = KVCache.for_model(m, batch=2, capacity=4)
        parts = [m(x[:, :7], cache=cache)[0]] + [m(x[:, t : t + 1], cache=cache)[0] for t in range(7, 20)]
    assert (full.float().softmax(-1) - ref.softmax(-1)).abs().max() < 0.02
    torch.testing.assert_close(torch.cat(parts, 1).float(), full.float(), atol=0.05, rtol=0.02)


def test_refusals():
    m = tiny_llama()
    with pytest.raises(ConfigError, match="--weights must be one of"):
        qlinear.prepare(m, "int2")
    with pytest.raises(ConfigError, match="group size must be one of"):
        qlinear.pack_(m, "int4", group_size=48)
    qlinear.pack_(m, "int8")
    with pytest.raises(ConfigError, match="already packed"):
        qlinear.pack_(m, "int8")


@pytest.mark.parametrize("bits", [8, 4])
def test_fused_product_equals_its_parts(bits):
    """pack_ fuses q, k, v (gate, up) into one PackedLinear: rows are quantized one by one, so the
    fused product gives the parts' own numbers."""
    torch.manual_seed(3)
    w1, w2, x = torch.randn(64, 96), torch.randn(32, 96), torch.randn(4, 96)
    fused = qlinear.PackedLinear(torch.cat([w1, w2]), None, bits)(x)
    parts = torch.cat([qlinear.PackedLinear(w, None, bits)(x) for w in (w1, w2)], dim=-1)
    torch.testing.assert_close(fused, parts, atol=0, rtol=0)
