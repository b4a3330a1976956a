"""A tiny random Llama-family GGUF written with gguf's own writer, for the fast import tests.

The vocabulary is GPT-2's 256 byte-level symbols, two chat control tokens and a few merges, so
the BPE tokenizer built from it is real; the weights are random, some stored as Q8_0 and Q4_1.
"""

from pathlib import Path

import numpy as np

from imo.data.tokenizer import _byte_level_alphabet

TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
WORDS = ["the", "and", "hello", "world", "def", "return", "print"]
SHAPE = dict(n_layer=2, n_embd=64, n_head=4, n_kv_head=2, ffn_hidden=96)


def vocab() -> tuple[list[str], list[str], list[int]]:
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + list(_byte_level_alphabet())
    types = [3, 3, 3] + [1] * 256
    merges: list[str] = []
    for word in WORDS:  # each word merged left to right, then the space before it
        piece = word[0]
        for ch in word[1:]:
            merges.append(f"{piece} {ch}")
            piece += ch
            if piece not in tokens:
                tokens.append(piece)
        merges.append(f"Ġ {word}")  # Ġ: the byte-level symbol of a space
        tokens.append("Ġ" + word)
        types += [1] * (len(tokens) - len(types))
    merges = list(dict.fromkeys(merges))
    return tokens, merges, types


def write_tiny_gguf(path: Path, arch: str = "llama", seed: int = 0, untie: bool = False) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    tokens, merges, types = vocab()
    s = SHAPE
    hs = s["n_embd"] // s["n_head"]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny-llama")
    w.add_block_count(s["n_layer"])
    w.add_context_length(128)
    w.add_embedding_length(s["n_embd"])
    w.add_feed_forward_length(s["ffn_hidden"])
    w.add_head_count(s["n_head"])
    w.add_head_count_kv(s["n_kv_head"])
    w.add_rope_freq_base(100000.0)
    w.add_rope_dimension_count(hs)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(TEMPLATE)

    def tensor(name: str, shape: tuple[int, ...], qtype=None, scale: float = 0.08) -> None:
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        if qtype is None:
            w.add_tensor(name, a)
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_shape=gguf.quants.quant_shape_to_byte_shape(a.shape, qtype), raw_dtype=qtype)

    Q8, Q4 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_1
    C, F, V, kv = s["n_embd"], s["ffn_hidden"], len(tokens), s["n_kv_head"] * hs
    tensor("token_embd.weight", (V, C), Q8, scale=0.5)
    for i in range(s["n_layer"]):
        w.add_tensor(f"blk.{i}.attn_norm.weight", rng.uniform(0.5, 1.5, C).astype(np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", rng.uniform(0.5, 1.5, C).astype(np.float32))
        tensor(f"blk.{i}.attn_q.weight", (C, C), Q4, scale=0.3)
        tensor(f"blk.{i}.attn_k.weight", (kv, C), Q4, scale=0.3)
        tensor(f"blk.{i}.attn_v.weight", (kv, C), Q8)
        tensor(f"blk.{i}.attn_output.weight", (C, C), Q8)
        tensor(f"blk.{i}.ffn_gate.weight", (F, C), Q4)
        tensor(f"blk.{i}.ffn_up.weight", (F, C), None)
        tensor(f"blk.{i}.ffn_down.weight", (C, F), Q8)
    w.add_tensor("output_norm.weight", rng.uniform(0.5, 1.5, C).astype(np.float32))
    if untie:
        tensor("output.weight", (V, C), Q8)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `imo ARGS...` run in this process."""
    from imo.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
