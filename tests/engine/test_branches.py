"""Branching alternatives: `reject` serves the next answer exactly as defined (checked against a
brute-force computation on a mock model with known logits), with the stated cost; eager
speculation changes latency, not answers or passes; forks share the cache."""

import math

import pytest
import torch
from mocklm import MockLM

from imo.engine.branches import BranchConfig
from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine
from imo.errors import ConfigError, ImoError


def brute_force(model, prompt, max_tokens, threshold, rejections, stop=None):
    """The definition, recomputing every distribution from the whole sequence (no cache)."""
    pool, answers = [], []

    def run(tokens, index):
        tokens = list(tokens)
        while len(tokens) < max_tokens and not (stop is not None and tokens and tokens[-1] == stop):
            p = torch.softmax(model.logits_of([*prompt, *tokens]), -1)
            (p1, p2), (t1, t2) = p.topk(2)
            if float(p2) / float(p1) >= threshold:
                pool.append(dict(margin=math.log(float(p1) / float(p2)), answer=index, pos=len(tokens),
                                 alt=int(t2), used=False))
            tokens.append(int(t1))
        return tokens

    answers.append((run([], 0), None))
    for _ in range(rejections):
        free = [b for b in pool if not b["used"]]
        if not free:
            break
        b = min(free, key=lambda b: (b["margin"], b["answer"], b["pos"]))
        b["used"] = True
        start = answers[b["answer"]][0][: b["pos"]] + [b["alt"]]
        toks = run(start, len(answers))
        answers.append((toks, len(toks) - b["pos"] - 1))  # passes: feed alt .. the last-but-one token
    return answers


@pytest.mark.parametrize("speculate", [0, 7, 1000])
def test_reject_serves_the_defined_next_answer_at_the_defined_cost(speculate):
    model = MockLM(vocab=4, scale=0.7)
    prompt, T, thr = [1, 2, 3], 12, 0.6
    want = brute_force(model, prompt, T, thr, rejections=6)
    assert len(want) == 7  # the mock has enough close calls for six rejections
    s = Engine(model).session(prompt, GenerationConfig(strategy="greedy", max_tokens=T),
                              BranchConfig(threshold=thr, speculate=speculate))
    first = s.answer()
    assert first.tokens == want[0][0] and first.passes == T  # a prefill, then a pass per token but the last
    for toks, passes in want[1:]:
        a = s.reject()
        assert a.tokens == toks
        assert a.passes == passes  # speculative passes counted: the same in eager and lazy mode
        if speculate >= 1000:
            assert a.speculative_passes == passes  # everything was computed ahead of time
    pts = s.branch_points()
    assert all(set(p) >= {"position", "candidates", "probabilities", "margin"} for p in pts)
    assert all(p["probabilities"][0] >= p["probabilities"][1] * thr for p in pts)


def test_sampled_alternatives_are_repeatable_and_forks_share_blocks():
    model = MockLM(vocab=5, scale=0.5)
    gen = GenerationConfig(max_tokens=10, seed=4, temperature=0.8)
    runs = []
    for spec in (0, 50):
        s = Engine(model).session([0, 1], gen, BranchConfig(threshold=0.3, speculate=spec))
        runs.append([s.answer().tokens] + [s.reject().tokens for _ in range(3)])
    assert runs[0] == runs[1]
    for a, b in zip(runs[0][1:], runs[0][:-1], strict=True):
        assert a != b
    s = Engine(model).session([0, 1], gen, BranchConfig(threshold=0.3))
    s.answer()
    bp = [p for p in s.points if p.position > 0][-1]
    main = s._prefill  # the first answer decoded into the prefill cache's buffer
    [seg] = bp.cache.segments
    assert seg.k.data_ptr() == main._k.data_ptr() and seg.length == 2 + bp.position  # shared, not copied
    assert bp.cache.nbytes_private == 0  # nothing of its own until it decodes


def test_gap_margin_and_refusals():
    model = MockLM(vocab=4, scale=0.7)
    s = Engine(model).session([1], GenerationConfig(strategy="greedy", max_tokens=6),
                              BranchConfig(margin="gap", threshold=0.0))
    s.answer()
    with pytest.raises(ImoError, match="no alternatives left"):
        s.reject()
    with pytest.raises(ConfigError, match="choose one of: ratio, gap"):
        BranchConfig(margin="odds")
    with pytest.raises(ConfigError, match="n = 1"):
        Engine(model).session([1], GenerationConfig(n=2))
