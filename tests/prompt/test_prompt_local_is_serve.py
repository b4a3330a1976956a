"""The prompt claims answer in process (imo.prompt.local.EngineChat) instead of over HTTP: this
checks that doing so changes nothing. For a BPE model with a chat template, every arm's messages
get, token for token, the same greedy answer from EngineChat as from `imo serve`'s
/v1/chat/completions; with and without the prefix tree that EngineChat shares across items."""

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from tiny_bpe import CHAT, EOS, tokenizer  # noqa: E402

from imo.engine.decode import Engine  # noqa: E402
from imo.engine.server import ServerThread, create_app  # noqa: E402
from imo.engine.text import TokenText  # noqa: E402
from imo.model.config import ModelConfig  # noqa: E402
from imo.model.families import build_model  # noqa: E402
from imo.prompt.builder import PromptSpec, build_messages  # noqa: E402
from imo.prompt.local import EngineChat  # noqa: E402
from imo.prompt.tasks import generate, shots_for  # noqa: E402

ARMS = {"baseline": PromptSpec(), "instruction-first": PromptSpec(order="instruction-first"),
        "shots-2": PromptSpec(shots=2), "records": PromptSpec(answer="records")}


def model(vocab: int):
    import torch

    torch.manual_seed(5)
    cfg = ModelConfig(family="llama", vocab_size=vocab, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                      ffn_hidden=64, context_length=4096, pos="rope", bias=False, attn="sdpa")
    return build_model(cfg).eval()


@pytest.fixture(scope="module")
def served():
    tok = tokenizer()
    net = model(tok.vocab_size)
    with ServerThread(create_app(Engine(net, text=TokenText(tok, (EOS,))), "bpe", chat=CHAT)) as url:
        yield url, net, tok


def test_in_process_answers_are_imo_serves_answers(served):
    url, net, tok = served
    chat = EngineChat(net, TokenText(tok, (EOS,)), CHAT, model_key="tiny-bpe")
    items = generate("plain", 3, seed=4)
    asked = 0
    with httpx.Client(base_url=url, timeout=120) as client:
        for name, spec in ARMS.items():
            for item in items:
                shots = shots_for(item, spec.shots, seed=0) if spec.shots else ()
                messages = build_messages(spec, item.fields, item.example(), shots=shots)
                r = client.post("/v1/chat/completions", json={"model": "bpe", "messages": messages,
                                                               "max_tokens": 12, "temperature": 0})
                assert r.status_code == 200, r.text
                served_text = r.json()["choices"][0]["message"]["content"]
                assert chat(messages, 12) == served_text, (name, item)
                asked += 1
    assert asked == len(ARMS) * len(items) and chat.counters.calls == asked
