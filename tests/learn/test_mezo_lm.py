"""MeZO and AdamW fine-tuning an LM: budgets in forward passes are met exactly, MeZO builds no
gradient, the same seed repeats, and the memory probe runs in child processes."""

import numpy as np
import pytest
import torch

from imo.errors import ConfigError
from imo.learn.mezo_lm import Budget, finetune, forwards_per_step
from imo.model import GPT, ModelConfig
from imo.train.evaluate import fixed_eval_set

DATA = np.frombuffer(b"to be or not to be, that is the question. " * 40, dtype=np.uint8)


def tiny():
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, context_length=16))


@pytest.mark.parametrize("method", ["adam", "mezo"])
def test_forward_budget_and_repeat(method):
    evals = fixed_eval_set(DATA, 16, 4, 2)
    kw = dict(lr=1e-3, batch_size=4, context_length=16, eval_every=5)
    a = finetune(tiny(), method, DATA, evals, Budget(forwards=20), **kw)
    assert a["forwards"] == 20 and a["steps"] == 20 // forwards_per_step(method)
    b = finetune(tiny(), method, DATA, evals, Budget(forwards=20), **kw)
    assert a["end_bpb"] == b["end_bpb"] and a["curve"][0]["val_bpb"] == a["start_bpb"]


def test_mezo_builds_no_gradient_and_moves_the_weights():
    model = tiny()
    before = [p.detach().clone() for p in model.parameters()]
    evals = fixed_eval_set(DATA, 16, 4, 1)
    finetune(model, "mezo", DATA, evals, Budget(forwards=4), lr=1e-2, batch_size=4, context_length=16)
    assert all(p.grad is None for p in model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_bad_budget():
    with pytest.raises(ConfigError, match="budget"):
        finetune(tiny(), "mezo", DATA, [], Budget(), lr=1e-3)
    with pytest.raises(ConfigError, match="unknown method"):
        finetune(tiny(), "sgd", DATA, [], Budget(forwards=2), lr=1e-3)


def test_memory_probe_in_child_processes(tmp_path):
    from imo.exams.textmodel import RunSize, corpus_file, train_run
    from imo.learn.mezo_lm import measure_memory
    from imo.runs.store import RunStore

    store = RunStore.open()
    rid = train_run(corpus_file("abc def ghi\n" * 50, "mezo-lm-test"), RunSize(1, 16, 2, 16, 2, 4, 1e-3), 0, store)
    out = {m: measure_memory(store.run_dir(rid), m, batch=2, context=16) for m in ("adam", "mezo")}
    # exact tensor bytes: AdamW holds gradients and two moments beyond the parameters, MeZO none of them
    p = out["mezo"]["param_bytes"]
    assert out["adam"]["live_bytes_peak"] >= 3 * p
    assert out["mezo"]["live_bytes_peak"] < out["adam"]["live_bytes_peak"]
