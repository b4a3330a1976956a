"""A tiny Llama-family model with random weights and a small byte-level BPE tokenizer, built in
memory for the engine's BPE tests (no GGUF file, no wheel).

The vocabulary: three control tokens, GPT-2's 256 byte symbols, every pair of lowercase letters,
a space before each letter, "é" as one token and the emoji 🙂 as two tokens of two bytes each
(so a character is split across tokens). Most tokens are several bytes long, so a random model's
output has many token boundaries inside words.
"""

import string

import torch

from imo.data.tokenizer import BPETokenizer, _byte_level_alphabet
from imo.engine.decode import Engine
from imo.engine.text import TokenText
from imo.model.config import ModelConfig
from imo.model.families import build_model

TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
EOS = 2  # <|im_end|>
CHAT = {"template": TEMPLATE, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "stop_ids": [EOS]}


def tokenizer() -> BPETokenizer:
    sym = {b: c for c, b in _byte_level_alphabet().items()}  # byte -> its symbol
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + [sym[b] for b in range(256)]
    merges = [f"{a} {b}" for a in string.ascii_lowercase for b in string.ascii_lowercase]
    merges += [f"{sym[32]} {a}" for a in string.ascii_lowercase]
    merges += [f"{sym[a]} {sym[b]}" for a, b in ((0xC3, 0xA9), (0xF0, 0x9F), (0x99, 0x82))]  # é, 🙂 in two halves
    tokens += [m.replace(" ", "") for m in merges]
    return BPETokenizer.from_vocab(tokens, merges, "gpt2", {s: i for i, s in enumerate(specials)})


def model(vocab: int, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(family="llama", vocab_size=vocab, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                      ffn_hidden=64, context_length=128, pos="rope", bias=False, tie_weights=True, attn="sdpa")
    return build_model(cfg).eval()


def engine(tree=None, eos=(EOS,)) -> Engine:
    tok = tokenizer()
    return Engine(model(tok.vocab_size), tree, text=TokenText(tok, eos))
