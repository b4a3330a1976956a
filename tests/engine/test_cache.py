"""KV-cached decoding equals a full forward pass for every (position encoding, backend) pair, and
forks, row expansion and row selection keep each row's contents."""

import itertools

import pytest
import torch

from imo.engine.cache import KVCache
from imo.model import GPT, ModelConfig
from imo.model.attention import BACKENDS
from imo.model.positions import POSITIONS


def tiny(pos: str, attn: str) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_embd=32, n_head=4, context_length=48, pos=pos, attn=attn, attn_tile=8)
    return GPT(cfg).eval()


@pytest.mark.parametrize("pos,attn", list(itertools.product(POSITIONS.names(), BACKENDS.names())))
@torch.no_grad()
def test_cached_decoding_equals_full_forward(pos, attn):
    model = tiny(pos, attn)
    x = torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(1))
    full, _ = model(x)
    cache = KVCache.for_model(model, batch=2, capacity=8)  # small: the tail must grow on the way
    parts = [model(x[:, :13], cache=cache)[0]]  # prefill
    parts += [model(x[:, t : t + 1], cache=cache)[0] for t in range(13, 30)]  # one token a step
    parts.append(model(x[:, 30:], cache=cache)[0])  # a chunk after single steps
    assert cache.length == 40
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=2e-5, rtol=1e-4)


@torch.no_grad()
def test_fork_shares_the_prefix_and_reproduces_the_unforked_run():
    model = tiny("rope", "sdpa")
    x = torch.randint(0, 256, (1, 30), generator=torch.Generator().manual_seed(2))
    ref = KVCache.for_model(model)
    model(x[:, :20], cache=ref)
    want = torch.cat([model(x[:, t : t + 1], cache=ref)[0] for t in range(20, 30)], dim=1)

    cache = KVCache.for_model(model)
    model(x[:, :20], cache=cache)
    child = cache.fork()
    assert child.length == cache.length == 20 and len(child.segments) == 1
    assert child.segments[0].k.data_ptr() == cache._k.data_ptr()  # a view of the parent's buffer, not a copy
    other = torch.randint(0, 256, (1, 10))
    for t in range(10):  # the parent goes elsewhere; the child must not see it
        model(other[:, t : t + 1], cache=cache)
    got = torch.cat([model(x[:, t : t + 1], cache=child)[0] for t in range(20, 30)], dim=1)
    assert torch.equal(got, want)  # the same arithmetic on the same numbers: bit-exact


@torch.no_grad()
def test_expand_and_select_keep_rows():
    model = tiny("alibi", "naive")
    x = torch.randint(0, 256, (1, 12))
    one = KVCache.for_model(model)
    model(x, cache=one)
    three = one.expand(3)
    nxt = torch.tensor([[1], [2], [3]])
    logits, _ = model(nxt, cache=three)
    picked = three.select([2, 0])
    assert picked.batch == 2 and picked.length == 13
    follow = torch.tensor([[7], [7]])
    got, _ = model(follow, cache=picked)
    for row, src in ((0, 2), (1, 0)):  # each row equals a fresh full forward of its own tokens
        seq = torch.cat([x[0], nxt[src], follow[row]])[None]
        full, _ = model(seq)
        torch.testing.assert_close(got[row, -1], full[0, -1], atol=2e-5, rtol=1e-4)
    stacked = KVCache.stack([picked, picked.select([1])])
    assert stacked.batch == 3 and stacked.length == 14
    k, _ = stacked.materialize()
    k0, _ = picked.materialize()
    assert torch.equal(k[:, 2], k0[:, 1])


@torch.no_grad()
def test_steps_after_forks_read_views_and_fork_chains_stay_one_segment():
    """Regression: a cache with segments concatenated all of them in every layer at every step
    (an O(length) copy per token), and each fork of a fork added one more segment."""
    model = tiny("rope", "sdpa")
    x = torch.randint(0, 256, (1, 40), generator=torch.Generator().manual_seed(3))
    ref = KVCache.for_model(model)
    want = torch.cat([model(x[:, :8], cache=ref)[0]] + [model(x[:, t : t + 1], cache=ref)[0] for t in range(8, 40)], 1)
    cache = KVCache.for_model(model)
    parts = [model(x[:, :8], cache=cache)[0]]
    for t in range(8, 40):  # fork at every step and go on in the child: a chain of 32 forks
        cache = cache.fork()
        assert len(cache.segments) <= 1  # never a growing chain
        parts.append(model(x[:, t : t + 1], cache=cache)[0])
        assert cache.segments == () and cache.length == t + 1  # flattened once, at the first write
    torch.testing.assert_close(torch.cat(parts, 1), want, atol=2e-5, rtol=1e-4)
    # a step returns views of the cache's own buffer: nothing is concatenated per step
    k_new = torch.zeros(1, cache.n_head, 1, cache.head_size)
    cache.update(0, k_new, k_new)
    k_all, _ = cache.update(1, k_new, k_new)
    assert k_all.untyped_storage().data_ptr() == cache._k.untyped_storage().data_ptr()
    assert k_all.size(2) == 41
    # expand: n rows from one prefill, each row written after the shared copy
    one = KVCache.for_model(model)
    model(x[:, :8], cache=one)
    four = one.expand(4)
    logits, _ = model(x[:, 8:9].expand(4, -1), cache=four)
    assert four.segments == () and four.length == 9
    torch.testing.assert_close(logits[3], want[0, 8:9], atol=2e-5, rtol=1e-4)
