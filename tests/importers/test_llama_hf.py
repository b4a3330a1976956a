"""imo's Llama equals transformers' LlamaForCausalLM on the same weights (random, and dequantized
from a tiny GGUF), and the BPE tokenizer equals transformers' tokenizer read from the same file."""

import random

import pytest
import torch
from hf_reference import hf_llama
from tiny_gguf import WORDS, write_tiny_gguf

from imo.data.tokenizer import BPETokenizer
from imo.importers.gguf import read_gguf
from imo.model.config import ModelConfig
from imo.model.families import build_model

pytest.importorskip("transformers")
pytest.importorskip("gguf")


def test_random_weights_equal_transformers():
    torch.manual_seed(0)
    m = build_model(ModelConfig(family="llama", vocab_size=300, n_layer=2, n_embd=64, n_head=4, n_kv_head=2,
                                ffn_hidden=96, context_length=64, rope_base=50000.0, bias=False)).eval()
    hf = hf_llama(m)
    for T in (1, 5, 17, 40):
        x = torch.randint(0, 300, (2, T))
        with torch.no_grad():
            torch.testing.assert_close(m(x)[0], hf(x).logits, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    g = read_gguf(path)
    m = build_model(ModelConfig.from_dict(g.config)).eval()
    m.load_saved_state({k: torch.from_numpy(v) for k, v in g.weights.items()})
    tok = BPETokenizer.from_vocab(g.tokenizer["tokens"], g.tokenizer["merges"], g.tokenizer["pre"], g.tokenizer["special"])
    return path, g, m, tok


@pytest.mark.parametrize("untie", [False, True])
def test_tiny_gguf_equals_transformers(tmp_path, untie):
    path = write_tiny_gguf(tmp_path / "t.gguf", untie=untie)
    g = read_gguf(path)
    assert g.config["tie_weights"] is not untie
    m = build_model(ModelConfig.from_dict(g.config)).eval()
    m.load_saved_state({k: torch.from_numpy(v) for k, v in g.weights.items()})
    hf = hf_llama(m)
    gen = torch.Generator().manual_seed(1)
    for T in (1, 3, 9, 30, 100):
        x = torch.randint(0, g.config["vocab_size"], (1, T), generator=gen)
        with torch.no_grad():
            torch.testing.assert_close(m(x)[0], hf(x).logits, atol=1e-4, rtol=0)


def mixed_strings(n: int, seed: int = 0) -> list[str]:
    """ASCII words, Unicode, code, digits and whitespace runs, mixed."""
    rng = random.Random(seed)
    pieces = [*WORDS, "Hello", "WORLD", "naïve", "café", "über", "日本語", "中文字", "🙂", "👩‍💻", "ß", "Ω≈ç",
              "def f(x):\n    return x**2", "if (a && b) { c++; }", "12345", "3.14159", "1,000", "x = [1, 2, 3]",
              "  ", "\t", "\n\n", "   \n ", "'s", "'ll", "don't", "https://example.com/a?b=c", "<tag/>", "#", "$"]
    out = []
    for _ in range(n):
        k = rng.randint(1, 6)
        out.append("".join(rng.choice(pieces) + rng.choice(["", " ", "  ", "\n", ""]) for _ in range(k)))
    return out


def test_bpe_round_trips_and_uses_merges(tiny):
    _, _, _, tok = tiny
    for s in mixed_strings(300):
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        assert tok.token_bytes_of(ids) == s.encode()
    assert tok.encode(" hello world") == [tok.hf.token_to_id("Ġhello"), tok.hf.token_to_id("Ġworld")]
    assert tok.encode("<|im_start|>user") == [1, *tok.encode("user")]  # control tokens match whole


def test_bpe_equals_transformers_tokenizer(tiny):
    from transformers import AutoTokenizer

    path, _, _, tok = tiny
    ref = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    for s in mixed_strings(300, seed=1):
        assert tok.encode(s) == ref.encode(s, add_special_tokens=False), s
