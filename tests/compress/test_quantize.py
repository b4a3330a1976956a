"""Quantization: round trips within their bound, packing, the outlier split, filters and refusals."""

import copy

import pytest
import torch
from torch import nn

from imo.compress.quantize import (
    QuantConfig,
    QuantLinear,
    dequantize_int4,
    dequantize_int8,
    fbgemm_available,
    quantize_,
    quantize_int4,
    quantize_int8,
    tinygemm_available,
)
from imo.errors import ConfigError
from imo.model import GPT, ModelConfig


def test_int8_round_trip_within_half_a_step():
    w = torch.randn(48, 40) * torch.linspace(0.01, 3, 48)[:, None]
    w[5] = 0.0  # an all-zero row
    q, s = quantize_int8(w)
    assert q.dtype == torch.int8 and s.shape == (48,)
    assert (q.abs() <= 127).all()
    err = (dequantize_int8(q, s) - w).abs()
    assert (err <= s[:, None] / 2 + 1e-7).all()
    assert (dequantize_int8(q, s)[5] == 0).all()


@pytest.mark.parametrize("group", [2, 8, 40])
def test_int4_round_trip_within_half_a_step_and_packed(group):
    w = torch.randn(6, 80)
    packed, s = quantize_int4(w, group)
    assert packed.dtype == torch.uint8 and packed.shape == (6, 40) and s.shape == (6, 80 // group)
    err = (dequantize_int4(packed, s, group) - w).abs()
    assert (err <= s.repeat_interleave(group, dim=1) / 2 + 1e-7).all()


def test_int4_nibble_order():
    packed = torch.tensor([[0x2F]], dtype=torch.uint8)  # low nibble 15 -> q=7, high 2 -> q=-6
    assert dequantize_int4(packed, torch.ones(1, 1), 2).tolist() == [[7.0, -6.0]]


def test_zeros_stay_zeros():
    w = torch.randn(16, 32)
    w[w.abs() < 0.5] = 0
    assert (dequantize_int8(*quantize_int8(w))[w == 0] == 0).all()
    assert (dequantize_int4(*quantize_int4(w, 8), 8)[w == 0] == 0).all()


KERNELS = ["weight-only", "vectorwise"] + (["fbgemm"] if fbgemm_available() else [])


def _vnni() -> bool:
    from imo.train.precision import cpu_flags

    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni"})


# A known bug, left open: on an x86 CPU without VNNI (e.g. AMD Zen 2, AVX2 only) the fbgemm kernel is far
# off (max error 0.42 of 1.46 here). The likely cause (not yet confirmed): fbgemm then multiplies
# u8 x s8 pairs with vpmaddubsw, whose int16 sums saturate unless activations are quantized to 7
# bits (reduce_range), which imo.compress.quantize does not do. The fix is in compress/quantize.py, frozen by 31 recorded claims, so it
# waits for the next recording round; strict, so the fix makes this test say so.
FBGEMM_SATURATES = pytest.mark.xfail(not _vnni(), strict=True, reason="fbgemm without VNNI saturates (see above)")


@pytest.mark.parametrize("kernel", [pytest.param(k, marks=FBGEMM_SATURATES) if k == "fbgemm" else k for k in KERNELS])
def test_quant_linear_close_to_float(kernel):
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    model = nn.Sequential(lin)
    ref_w = lin.weight.detach().clone()
    x = torch.randn(2, 5, 64)
    want = nn.functional.linear(x, ref_w, lin.bias)
    quantize_(model, QuantConfig(bits=8, kernel=kernel))
    assert isinstance(model[0], QuantLinear) and model[0].kernel == kernel
    got = model(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 0.02 * want.abs().max()


def test_outlier_split_recovers_what_activation_quantization_loses():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32, bias=False)
    x = torch.randn(16, 64) * 0.5
    x[:, 7] = 100.0  # one outlier feature column
    want = lin(x)
    errs = {}
    for thr in (None, 6.0):
        model = nn.Sequential(nn.Linear(64, 32, bias=False))
        model[0].load_state_dict(lin.state_dict())
        quantize_(model, QuantConfig(kernel="vectorwise", outlier_threshold=thr))
        errs[thr] = float((model(x) - want).abs().mean().detach())
        if thr is not None:
            assert model[0].outlier_columns_seen == 1
    assert errs[6.0] < errs[None] / 3


def test_gpt_tied_head_is_quantized_once_and_kept_together():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_embd=32, n_head=2, context_length=16))
    rep = quantize_(model, QuantConfig(bits=8, kernel="weight-only"))
    assert model.lm_head.qweight is model.transformer.wte.qweight
    assert "transformer.wte = lm_head" in rep.layers
    for d in rep.layers.values():
        assert d["max_error"] <= d["bound"] + 1e-7
    logits, _ = model(torch.randint(0, 256, (1, 8)))
    assert logits.shape == (1, 8, 256)


def test_keep_list_and_refusals():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_embd=32, n_head=2, context_length=16))
    with pytest.raises(ConfigError, match="tied"):
        quantize_(model, QuantConfig(), skip=["lm_head"])
    with pytest.raises(ConfigError, match="matches no layer"):
        quantize_(model, QuantConfig(), skip=["decoder.*"])
    with pytest.raises(ConfigError, match="matches no Linear"):
        quantize_(model, QuantConfig(), filter_fn=lambda n, m: False)
    rep = quantize_(model, QuantConfig(bits=4, group_size=16), skip=["lm_head", "transformer.wte", "*.mlp.*"])
    assert set(rep.kept) == {"transformer.wte", "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj"}
    assert isinstance(model.transformer.h[0].mlp.c_fc, nn.Linear)
    with pytest.raises(ConfigError, match="already quantized"):
        quantize_(model, QuantConfig())
    for bad in (dict(bits=3), dict(bits=4, group_size=3), dict(outlier_threshold=-1.0),
                dict(bits=4, outlier_threshold=6.0), dict(kernel="avx")):
        with pytest.raises(ConfigError):
            QuantConfig(**bad)
    with pytest.raises(ConfigError, match="does not divide"):
        quantize_(GPT(ModelConfig(n_layer=1, n_embd=32, n_head=2, context_length=16)), QuantConfig(bits=4, group_size=24))


@pytest.mark.skipif(not tinygemm_available(), reason="this PyTorch has no CPU int4 kernel")
def test_tinygemm_int4_runs_imo_codes_like_weight_only():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(128, 48))
    x = torch.randn(3, 7, 128)
    out = {}
    for kernel in ("weight-only", "tinygemm"):
        model = copy.deepcopy(base)
        quantize_(model, QuantConfig(bits=4, group_size=64, kernel=kernel))
        out[kernel] = model(x)
        assert model[0].kernel == kernel
    assert isinstance(model[0]._packed, tuple)  # the int4 kernel ran, not the fallback
    # the same codes and scales: only bfloat16 activations separate the two
    ref = out["weight-only"]
    assert (out["tinygemm"] - ref).abs().max() < 0.02 * ref.abs().max()
    assert (out["tinygemm"] - ref).abs().max() > 0  # (and it is a different product)


def test_a_kernel_of_the_other_width_is_refused():
    with pytest.raises(ConfigError, match="for int4"):
        QuantConfig(bits=8, kernel="tinygemm").resolved_kernel()
    with pytest.raises(ConfigError, match="for int8"):
        QuantConfig(bits=4, kernel="vectorwise").resolved_kernel()
