"""The policy's engine sampler (KV cache, prefix tree) against the previous full-prefix sampler."""

import random

import pytest
import torch

from imo import tasks
from imo.model import GPT, ModelConfig
from imo.reason.core import TokenBudget
from imo.reason.methods import get_method
from imo.reason.policy import GPTPolicy, sample_many
from imo.reason.verifiers import SelfEval


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=2, n_embd=32, n_head=4, context_length=128, pos="rope"))


def test_greedy_is_the_same_through_the_engine(model):
    task = tasks.get("countdown")
    probs = [task.generate(random.Random(i), 1) for i in range(20)]
    eng, full = GPTPolicy(model, task, 1), GPTPolicy(model, task, 1, sampler="full")
    items = [(p.prompt, "") for p in probs] + [(probs[0].prompt, "3+4=7\n")] * 3 + [(probs[1].prompt, "1*2=2\n")]
    a, b = eng.step(items, 0.0), full.step(items, 0.0)
    assert [t for t, _ in a] == [t for t, _ in b]
    assert [lp for _, lp in a] == pytest.approx([lp for _, lp in b], abs=1e-3)
    assert all(t.isascii() for t, _ in a)
    assert sample_many(eng, items[:8], 0.0) == sample_many(full, items[:8], 0.0)


def test_search_reuses_the_prompt_through_the_prefix_tree(model):
    task = tasks.get("arith")
    p = task.generate(random.Random(0), 2)
    pol = GPTPolicy(model, task, 2, seed=0)
    b = TokenBudget(400)
    get_method("beam")(pol, p, SelfEval(task), b)
    assert b.policy > 0
    before = pol.engine.stats.prefill_computed
    pol.step([(p.prompt, "1+2+0=3\n")] * 2, 0.0)  # the next step of a search: only the new line is computed
    assert pol.engine.stats.prefill_computed - before == len("1+2+0=3\n")
    assert pol.engine.stats.prefill_reused >= len(p.prompt)
    pol.reseed(3)
    x = pol.step([(p.prompt, "")] * 4, 1.0)
    pol.reseed(3)
    assert pol.step([(p.prompt, "")] * 4, 1.0) == x  # seeded sampling repeats


def test_unknown_sampler_is_refused(model):
    from imo.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown sampler"):
        GPTPolicy(model, tasks.get("arith"), 1, sampler="fast")
