"""transformers' LlamaForCausalLM holding an imo Llama's weights: the reference of the equality tests."""

import torch

from imo.model.llama import Llama


def to_hf_layout(w: torch.Tensor, heads: int) -> torch.Tensor:
    """q/k rows from channel-pair order (GGUF, imo) to transformers' half-split RoPE order."""
    out, inp = w.shape
    return w.view(heads, out // heads // 2, 2, inp).transpose(1, 2).reshape(out, inp)


def hf_llama(model: Llama):
    """transformers' LlamaForCausalLM with model's weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = model.cfg
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=c.ffn_hidden or 4 * c.n_embd,
        num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.kv_heads,
        max_position_embeddings=c.context_length, rms_norm_eps=c.norm_eps, rope_theta=c.rope_base,
        tie_word_embeddings=c.tie_weights, attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )).eval()
    names = {"transformer.wte": "model.embed_tokens", "transformer.ln_f": "model.norm", "transformer.h": "model.layers",
             ".attn.": ".self_attn.", "ln_1": "input_layernorm", "ln_2": "post_attention_layernorm"}
    sd = {}
    for k, v in model.state_dict_for_save().items():
        if k.endswith("q_proj.weight"):
            v = to_hf_layout(v, c.n_head)
        elif k.endswith("k_proj.weight"):
            v = to_hf_layout(v, c.kv_heads)
        for a, b in names.items():
            k = k.replace(a, b)
        sd[k] = v
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    return hf
