"""Decoding: greedy and sampling against a full recomputation, n samples from one prefill, stop
strings, beam search against brute force on a tiny vocabulary, and the config's refusals."""

import itertools

import pytest
import torch
from mocklm import MockLM

from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine, sample_tokens
from imo.errors import ConfigError
from imo.model import GPT, ModelConfig


def greedy_by_recompute(model, ids, n):
    seq = list(ids)
    for _ in range(n):
        logits, _ = model(torch.tensor([seq]))
        seq.append(int(logits[0, -1].argmax()))
    return seq[len(ids):]


@pytest.mark.parametrize("pos", ["learned", "rope", "alibi"])
def test_greedy_with_cache_equals_recompute_and_slides(pos):
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_embd=32, n_head=4, context_length=32, pos=pos)).eval()
    eng = Engine(model)
    [c] = eng.generate([1, 2, 3, 4], GenerationConfig(strategy="greedy", max_tokens=20))
    with torch.no_grad():
        assert c.tokens == greedy_by_recompute(model, [1, 2, 3, 4], 20)
    assert eng.stats.passes == 20 and eng.stats.positions == 4 + 19  # one prefill, then a token a pass
    # past the context the window slides (the oldest half is dropped and re-prefilled)
    [long] = eng.generate([1, 2, 3, 4], GenerationConfig(strategy="greedy", max_tokens=60))
    assert len(long.tokens) == 60 and long.tokens[:20] == c.tokens
    with pytest.raises(ConfigError, match="exceed the context"):
        eng.generate([1, 2, 3, 4], GenerationConfig(strategy="greedy", max_tokens=60, on_full="error"))
    with pytest.raises(ConfigError, match="more than the model's context"):
        eng.generate([1] * 33, GenerationConfig(strategy="greedy"))


def test_sampling_is_seeded_and_n_rows_share_one_prefill():
    model = MockLM(vocab=6)
    eng = Engine(model)
    cfg = GenerationConfig(max_tokens=12, seed=3, n=4, temperature=0.9, top_p=0.95)
    a = eng.generate([1, 2], cfg)
    b = Engine(MockLM(vocab=6)).generate([1, 2], cfg)
    assert [c.tokens for c in a] == [c.tokens for c in b]
    assert len({tuple(c.tokens) for c in a}) > 1  # the rows are different samples
    assert eng.stats.prefill_computed == 2  # prefilled once for the 4 rows
    for c in a:  # each logprob is the model's own log p of the token after the row's prefix
        for i, (t, lp) in enumerate(zip(c.tokens, c.logprobs, strict=True)):
            want = torch.log_softmax(model.logits_of([1, 2, *c.tokens[:i]]), -1)[t]
            assert abs(lp - float(want)) < 1e-5


def test_stop_strings_end_rows_and_are_removed():
    model = MockLM(vocab=4)
    [c] = Engine(model).generate([0], GenerationConfig(strategy="greedy", max_tokens=30))
    stop = bytes(c.tokens[5:7]).decode("latin-1")
    first = bytes(c.tokens).find(stop.encode("latin-1"))
    [s] = Engine(model).generate([0], GenerationConfig(strategy="greedy", max_tokens=30, stop=(stop,)))
    assert s.finish_reason == "stop" and s.tokens == c.tokens[:first]


def test_top_k_and_top_p_truncate():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gens = [torch.Generator().manual_seed(0)]
    seen_p = {int(sample_tokens(logits, GenerationConfig(top_p=0.7), gens)) for _ in range(200)}
    seen_k = {int(sample_tokens(logits, GenerationConfig(top_k=3), gens)) for _ in range(300)}
    assert seen_p == {0, 1} and seen_k == {0, 1, 2}


def brute_force_beam(model, ids, width, max_tokens, stop_token, lp_pow):
    """The beam definition, by recomputing every candidate's log-probability from scratch."""
    beams, finished = [((), 0.0)], []
    while beams:
        cands = []
        for b, (toks, score) in enumerate(beams):
            lp = torch.log_softmax(model.logits_of([*ids, *toks]), -1)
            cands += [(score + float(lp[t]), b, t) for t in range(len(lp))]
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        nxt = []
        for score, b, t in cands[:width]:
            toks = (*beams[b][0], t)
            if t == stop_token or len(toks) == max_tokens:
                finished.append((score / len(toks) ** lp_pow, len(finished), toks))
            else:
                nxt.append((toks, score))
        beams = nxt
    finished.sort(key=lambda f: (-f[0], f[1]))
    return finished


@pytest.mark.parametrize("width,lp_pow", [(1, 1.0), (2, 1.0), (3, 0.0), (4, 2.0)])
def test_beam_equals_brute_force(width, lp_pow):
    model = MockLM(vocab=3, scale=1.0)
    cfg = GenerationConfig(strategy="beam", beam_width=width, max_tokens=5, stop=("\x02",),
                           length_penalty=lp_pow, n=min(width, 2))
    got = Engine(model).beam([0, 1], cfg)
    want = brute_force_beam(model, [0, 1], width, 5, 2, lp_pow)
    for c, (score, _, toks) in zip(got, want, strict=False):
        assert c.tokens == [t for t in toks if t != 2] and abs(c.score - score) < 1e-5
    if width == 1:  # a single beam is greedy
        [g] = Engine(model).generate([0, 1], GenerationConfig(strategy="greedy", max_tokens=5, stop=("\x02",)))
        assert got[0].tokens == g.tokens


def test_wide_beam_finds_the_best_sequence_by_exhaustive_search():
    model = MockLM(vocab=3, scale=1.5)
    L, lp_pow = 4, 0.5
    best = None
    for n in range(1, L + 1):  # every answer: stops at token 2 or runs to L tokens
        for toks in itertools.product(range(3), repeat=n):
            if 2 in toks[:-1] or (n < L and toks[-1] != 2):
                continue
            s = sum(float(torch.log_softmax(model.logits_of([0, *toks[:i]]), -1)[t]) for i, t in enumerate(toks))
            if best is None or s / n ** lp_pow > best[0] + 1e-9:
                best = (s / n ** lp_pow, toks)
    [c] = Engine(model).beam([0], GenerationConfig(strategy="beam", beam_width=27, max_tokens=L,
                                                     stop=("\x02",), length_penalty=lp_pow))
    assert abs(c.score - best[0]) < 1e-5 and c.tokens == [t for t in best[1] if t != 2]


@pytest.mark.parametrize("kw,msg", [
    (dict(strategy="greedy", temperature=0.5), "only apply to strategy sample"),
    (dict(strategy="greedy", n=2), "identical answers"),
    (dict(strategy="beam", n=5, beam_width=4), "at least as many beams"),
    (dict(strategy="sample", length_penalty=2.0), "only apply to strategy beam"),
    (dict(top_p=1.5), "top_p"),
    (dict(max_tokens=-1), "max_tokens"),
    (dict(n=1000), "n must be"),
    (dict(temperature=0), "strategy greedy"),
    (dict(strategy="nucleus"), "choose one of: greedy, sample, beam"),
])
def test_incoherent_configs_are_refused(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        GenerationConfig(**kw)


def test_public_generate_many_prompts_n_samples_shared_prefix():
    model = MockLM(vocab=6)
    eng = Engine(model)
    shared = [1, 2, 3, 4, 5, 1, 2, 3]
    prompts = [bytes(shared + [4]), bytes(shared + [5]), bytes([0, 1])]
    outs = eng.generate(prompts, n=3, max_tokens=6, temperature=0.9, seed=5)
    assert [len(o) for o in outs] == [3, 3, 3]
    # one prefill per prompt, the shared prefix computed once (a temporary prefix tree)
    assert eng.stats.prefill_computed == 9 + 1 + 2 and eng.stats.prefill_reused == 8
    again = Engine(MockLM(vocab=6)).generate(prompts, n=3, max_tokens=6, temperature=0.9, seed=5)
    assert [[c.data for c in o] for o in outs] == [[c.data for c in o] for o in again]
    # a row's sample does not depend on the other prompts in the call
    alone = Engine(MockLM(vocab=6)).generate([prompts[0]], n=3, max_tokens=6, temperature=0.9, seed=5)
    assert [c.tokens for c in alone[0]] == [c.tokens for c in outs[0]]
    assert len({c.data for o in outs for c in o}) > 3
    for p, o in zip(prompts, outs, strict=True):  # logprobs are the model's own after each row's prefix
        for c in o:
            assert len(c.tokens) == 6 and c.finish_reason == "length"
            for i, (t, lp) in enumerate(zip(c.tokens, c.logprobs, strict=True)):
                want = torch.log_softmax(model.logits_of([*p, *c.tokens[:i]]), -1)[t]
                assert abs(lp - float(want)) < 1e-5
    # greedy, bytes stops, and the refusals
    [[g]] = eng.generate([b"\x01"], max_tokens=8, temperature=0)
    [ref] = eng.complete([1], GenerationConfig(strategy="greedy", max_tokens=8))
    assert g.tokens == ref.tokens
    stop = bytes(g.tokens[2:4])
    [[s]] = eng.generate([b"\x01"], max_tokens=8, temperature=0, stop=[stop])
    assert s.finish_reason == "stop" and s.data == bytes(g.tokens[: bytes(g.tokens).find(stop)])
    with pytest.raises(ConfigError, match="identical"):
        eng.generate([b"\x01"], n=2, temperature=0)
    with pytest.raises(ConfigError, match="list of prompts"):
        eng.generate(b"\x01")
