"""The Llama family: backends agree, cached decoding equals the full pass, GQA, hooks, quantizers,
and older configs. Equality with transformers: tests/importers/test_llama_hf.py."""

import pytest
import torch

from imo.errors import ConfigError
from imo.model.attention import BACKENDS
from imo.model.config import ModelConfig
from imo.model.families import build_model
from imo.model.hooks import run_with_cache
from imo.model.llama import Llama


def tiny_cfg(**kw) -> ModelConfig:
    base = dict(family="llama", vocab_size=300, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, ffn_hidden=96,
                context_length=64, rope_base=50000.0, bias=False, attn="naive", attn_tile=8)
    return ModelConfig(**{**base, **kw})


def tiny(**kw) -> Llama:
    torch.manual_seed(0)
    m = build_model(tiny_cfg(**kw)).eval()
    with torch.no_grad():  # norms away from 1, so a mistake in them shows
        for n, p in m.named_parameters():
            if n.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.uniform_(0.5, 1.5)
    return m


def test_family_field_and_old_configs():
    assert isinstance(build_model(tiny_cfg()), Llama)
    old = ModelConfig.from_dict({"n_layer": 2, "n_embd": 32, "n_head": 4, "block_size": 64})  # no family field
    assert old.family == "gpt" and type(build_model(old)).__name__ == "GPT"
    with pytest.raises(ConfigError, match="model family"):
        tiny_cfg(family="mamba")
    with pytest.raises(ConfigError, match="n_kv_head"):
        tiny_cfg(n_kv_head=3)
    with pytest.raises(ConfigError, match="rope"):
        Llama(tiny_cfg(pos="alibi"))


@pytest.mark.parametrize("attn", ["tiled", "sdpa"])
def test_backends_agree(attn):
    ref = tiny()
    x = torch.randint(0, 300, (2, 19))
    with torch.no_grad():
        a, _ = ref(x)
        with ref.attention_backend(attn):
            b, _ = ref(x)
    torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("attn", BACKENDS.names())
def test_cached_decoding_equals_full_forward(attn):
    from imo.engine.cache import KVCache

    m = tiny(attn=attn)
    x = torch.randint(0, 300, (2, 23))
    with torch.no_grad():
        full, _ = m(x)
        cache = KVCache.for_model(m, batch=2, capacity=4)  # small: the buffer must grow
        parts = [m(x[:, :9], cache=cache)[0]]
        for t in range(9, 23):
            parts.append(m(x[:, t : t + 1], cache=cache)[0])
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-4)


def test_grouped_query_attention_is_multi_head_with_shared_kv():
    """With n_kv_head = n_head and each K/V head's weights copied into its group, GQA computes
    the same function as the model with fewer K/V heads."""
    gqa = tiny()
    mha = build_model(tiny_cfg(n_kv_head=4)).eval()
    sd = gqa.state_dict()
    for i in range(2):
        for w in ("k_proj", "v_proj"):
            key = f"transformer.h.{i}.attn.{w}.weight"
            sd[key] = sd[key].view(2, 16, 64).repeat_interleave(2, dim=0).reshape(64, 64)
    mha.load_state_dict(sd)
    x = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(mha(x)[0], gqa(x)[0], atol=1e-5, rtol=1e-4)


def test_hooks_and_save_load():
    m = tiny()
    x = torch.randint(0, 300, (1, 10))
    logits, acts = run_with_cache(m, x)
    assert acts["blocks.1.attn.hook_pattern"].shape == (1, 4, 10, 10)
    assert acts["blocks.0.mlp.hook_post"].shape == (1, 10, 96)
    sd = m.state_dict_for_save()
    assert "lm_head.weight" not in sd  # tied
    again = build_model(m.cfg).eval()
    again.load_saved_state(sd)
    with torch.no_grad():
        assert torch.equal(again(x)[0], logits)


def test_quantizers_run_on_it():
    from imo.compress.quantize import QuantConfig, quantize_

    m = tiny()
    x = torch.randint(0, 300, (1, 16))
    with torch.no_grad():
        ref, _ = m(x)
        quantize_(m, QuantConfig(bits=8), skip=["lm_head", "transformer.wte"])
        q, _ = m(x)
    assert not torch.equal(q, ref)
    assert (q.softmax(-1) - ref.softmax(-1)).abs().max() < 0.05


def test_rope_tables_rotate_as_rope_does():
    """llama.py's once-per-forward RoPE (complex table) equals positions.RoPE.rotate, and a model
    cast to bfloat16 keeps float32 angles although its inv_freq buffer is rounded."""
    from imo.model.llama import rope_tables, rotate_pairs

    m = tiny()
    x, pos = torch.randn(2, 4, 7, 16), torch.arange(300, 307)
    table = rope_tables(m.positions, pos)
    torch.testing.assert_close(rotate_pairs(x, table), m.positions.rotate(x, pos), atol=1e-5, rtol=1e-5)
    m.to(torch.bfloat16)
    assert m.positions.inv_freq.dtype == torch.bfloat16
    torch.testing.assert_close(rope_tables(m.positions, pos), table, atol=0, rtol=0)
    assert rotate_pairs(x.bfloat16(), table).dtype == torch.bfloat16
