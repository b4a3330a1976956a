"""imo.prompt.local: the in-process chat answers what the engine's greedy decoding gives for the
rendered prompt, keeps each answer in the store under (model, prompt ids, max_tokens) and reads it
back instead of recomputing; run_arms asks every item under every arm with the same budget."""

from imo.engine.config import GenerationConfig
from imo.prompt.builder import PromptSpec, build_messages, render_plain
from imo.prompt.local import EngineChat, arm_figures, run_arms, tiny_chat
from imo.prompt.tasks import generate
from imo.runs.store import RunStore


def test_answers_are_the_engines_greedy_answers_and_are_cached(tmp_path):
    item = generate("plain", 1, seed=3)[0]
    messages = build_messages(PromptSpec(), item.fields, item.example())
    plain = tiny_chat(seed=1)
    want = plain.engine.complete(plain.text.encode(render_plain(messages)),
                                 GenerationConfig(strategy="greedy", max_tokens=9))[0].text
    with RunStore.open(tmp_path / "s.sqlite") as store:
        chat = EngineChat(plain.engine.model, plain.text, None, model_key="tiny:1", store=store)
        assert chat(messages, 9) == want and chat.counters.cached == 0
        assert chat(messages, 9) == want and chat.counters.cached == 1
        short = chat(messages, 8)  # another max_tokens: computed, not read
        assert want.startswith(short) and chat.counters.cached == 1
        other = EngineChat(plain.engine.model, plain.text, None, model_key="tiny:2", store=store)
        other(messages, 9)
        assert other.counters.cached == 0  # another model's answers are not read


def test_run_arms_asks_every_item_of_every_arm():
    items = generate("plain", 3, seed=0)
    chat = tiny_chat()
    res = run_arms(chat, {"a": PromptSpec(), "b": PromptSpec(shots=1)}, items, shot_seed=0, max_tokens=3)
    assert list(res) == ["a", "b"] and all(len(r.scores) == 3 for r in res.values())
    assert chat.counters.calls == 6 and chat.counters.answer_tokens == 18
    f = arm_figures(res["a"])
    assert f["items"] == 3 and f["tp"] + f["fn"] + f["tn"] + f["fp"] == sum(len(it.fields) for it in items)
    assert f["accuracy"] == (f["tp"] + f["tn"]) / 12
