"""The prefix tree: reuse gives the same logits as a fresh prefill, partial matches split an
edge, least recently used unlocked leaves are evicted under the budget, locked ones never."""

import torch
from mocklm import MockLM

from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine
from imo.engine.prefix import PrefixTree
from imo.model import GPT, ModelConfig


def test_reuse_is_exact_on_a_real_model_and_counted():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_embd=32, n_head=4, context_length=64, pos="sinusoidal")).eval()
    tree = PrefixTree(budget_tokens=1000)
    eng, plain = Engine(model, tree), Engine(model)
    shared = list(range(40, 70))
    cfg = GenerationConfig(strategy="greedy", max_tokens=8)
    for suffix in ([1, 2, 3], [1, 2, 9], [5]):
        got = eng.generate(shared + suffix, cfg)[0].tokens
        assert got == plain.generate(shared + suffix, cfg)[0].tokens
        _, a = eng.prefill(shared + suffix)
        _, b = plain.prefill(shared + suffix)
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    st = tree.stats
    assert st.lookups == 6 and st.lookup_hits == 5 and st.splits >= 1
    assert st.hit_tokens == 3 * 32 + 2 * 30  # all but the first lookup reuse (all but the last token)
    assert eng.stats.prefill_reused == st.hit_tokens
    assert tree.tokens == 30 + 3 + 1 + 1  # shared edge, "1 2" split off, then "3", "9" and "5"


def fill(tree, engine, ids):
    cache, _ = engine.prefill(ids)
    engine.release(cache)


def test_split_on_partial_match():
    tree = PrefixTree()
    eng = Engine(MockLM(vocab=8), tree)
    fill(tree, eng, [1, 2, 3, 4, 5])
    fill(tree, eng, [1, 2, 3, 7])
    [top] = tree.root.children.values()
    assert top.tokens == (1, 2, 3) and sorted(c.tokens for c in top.children.values()) == [(4, 5), (7,)]
    n, cache = tree.match([1, 2, 3, 4, 6])
    assert n == 4 and [s.length for s in cache.segments] == [3, 1]  # (4, 5) was split at 4
    k, _ = cache.materialize()
    assert k[0, 0, 0, :, 0].round().long().tolist() == [1, 2, 3, 4]  # the mock's keys are its tokens
    tree.release(cache)


def test_lru_eviction_spares_locked_leaves():
    tree = PrefixTree(budget_tokens=12)
    eng = Engine(MockLM(vocab=8), tree)
    fill(tree, eng, [1, 1, 1, 1])
    fill(tree, eng, [2, 2, 2, 2])
    n, held = tree.match([1, 1, 1, 1])  # locks the first path
    assert n == 4
    fill(tree, eng, [3, 3, 3, 3])
    fill(tree, eng, [4, 4, 4, 4])  # 16 tokens > 12: the LRU unlocked leaf (2...) goes
    firsts = sorted(c.tokens[0] for c in tree.root.children.values())
    assert firsts == [1, 3, 4] and tree.stats.evicted_tokens == 4
    tree.evict(budget=0)  # everything unlocked goes; the locked path stays
    assert [c.tokens for c in tree.root.children.values()] == [(1, 1, 1, 1)]
    tree.release(held)
    tree.evict(budget=0)
    assert not tree.root.children and tree.tokens == 0


def test_a_split_under_a_held_path_is_unlocked_on_release():
    """Regression: `_split` gave the new upper node the held path's locks, but `release` only
    unlocked the nodes recorded at match time, so the upper node stayed locked for ever."""
    tree = PrefixTree(budget_tokens=100)
    eng = Engine(MockLM(vocab=8), tree)
    fill(tree, eng, [1, 2, 3, 4, 5])
    n, held = tree.match([1, 2, 3, 4, 5])  # locks the edge (1 2 3 4 5)
    assert n == 5
    fill(tree, eng, [1, 2, 7])  # splits the held edge at 2: a new upper node (1 2)
    [top] = tree.root.children.values()
    assert top.tokens == (1, 2) and top.locks == 1
    tree.release(held)
    tree.release(held)  # a second release is a no-op, not a negative count
    assert top.locks == 0 and all(c.locks == 0 for c in top.children.values())
    tree.evict(budget=0)
    assert not tree.root.children and tree.tokens == 0
