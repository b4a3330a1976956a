"""What serving the next answer saves: passes and latency of `reject` against generating that
same answer from scratch (shared by benchmarks/engine.py and the `store-layer-state` claim).

From scratch means what an engine without stored states must do to produce the same answer: a
prefill of the prompt, then one pass per token with a KV cache, taking the runner-up at the
branch position (it is told which). Both sides decode greedily, so the output can be checked
equal token for token.

    figures = measure_alternatives(engine, prompts, answer_len=128, rejections=4, speculate=0)
"""

from __future__ import annotations

import statistics
import time

import torch

from imo.engine.branches import BranchConfig
from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine


def regenerate(engine: Engine, prompt: list[int], length: int, forced: dict[int, int]) -> tuple[list[int], int, float]:
    """Greedy decoding of `length` tokens with a KV cache, taking forced[i] at position i:
    (tokens, forward passes, seconds)."""
    t0 = time.perf_counter()
    p0 = engine.stats.passes
    cache = engine.new_cache(1, engine.cfg.context_length)
    logits = engine.forward(torch.tensor([prompt]), cache)[0, -1]
    out: list[int] = []
    while True:
        t = forced.get(len(out), int(logits.argmax()))
        out.append(t)
        if len(out) == length:
            break
        logits = engine.forward(torch.tensor([[t]]), cache)[0, -1]
    return out, engine.stats.passes - p0, time.perf_counter() - t0


def measure_alternatives(engine: Engine, prompts: list[list[int]], answer_len: int, rejections: int,
                         speculate: int = 0, threshold: float = 0.5) -> dict:
    """Reject `rejections` times per prompt; compare each served answer with its regeneration."""
    rows = []
    gen = GenerationConfig(strategy="greedy", max_tokens=answer_len)
    for prompt in prompts:
        s = engine.session(prompt, gen, BranchConfig(threshold=threshold, speculate=speculate))
        s.answer()
        for _ in range(rejections):
            if s.next_point() is None:
                break
            b = s.reject()
            forced = {}
            parent, pos = b.parent
            forced[pos] = b.tokens[pos]
            # earlier branches on its ancestry are forced too: the answer it came from took them
            a, cut = s.answers[parent], pos
            while a.parent is not None:  # b keeps a's tokens before `cut`, a's own branch among them
                if a.parent[1] < cut:
                    forced[a.parent[1]] = a.tokens[a.parent[1]]
                    cut = a.parent[1]
                a = s.answers[a.parent[0]]
            toks, passes, secs = regenerate(engine, prompt, answer_len, forced)
            rows.append(dict(position=pos, reject_passes=b.passes, reject_positions=b.positions,
                             reject_s=b.seconds, speculative=b.speculative_passes, scratch_passes=passes,
                             scratch_positions=len(prompt) + answer_len - 1, scratch_s=secs,
                             equal=toks == b.tokens))
        s.close()
    return summarize(rows, answer_len, statistics.mean(len(p) for p in prompts), speculate)


def summarize(rows: list[dict], answer_len: int, prompt_len: float, speculate: int) -> dict:
    """Totals and ratios over per-rejection rows (as measure_alternatives makes them)."""
    if not rows:
        return {"rejections": 0, "rows": []}
    tot = lambda k: sum(r[k] for r in rows)  # noqa: E731
    return {
        "rejections": len(rows),
        "answer_len": answer_len,
        "prompt_len": prompt_len,
        "speculate": speculate,
        "outputs_equal": sum(r["equal"] for r in rows) / len(rows),
        "mean_branch_position": statistics.mean(r["position"] for r in rows),
        "reject_passes": tot("reject_passes"),
        "speculative_passes": tot("speculative"),
        "scratch_passes": tot("scratch_passes"),
        "pass_ratio": tot("scratch_passes") / max(tot("reject_passes"), 1),
        "position_ratio": tot("scratch_positions") / max(tot("reject_positions"), 1),
        "reject_s": tot("reject_s"),
        "scratch_s": tot("scratch_s"),
        "latency_ratio": tot("scratch_s") / max(tot("reject_s"), 1e-9),
        "rows": rows,
    }
