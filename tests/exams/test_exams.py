"""Exam contracts: extrapolation gives n/a past a learned table, interpolation's step 0 is scored
on the trainer's windows, and a memory point is measured in a fresh process."""

import math

import pytest

from imo.errors import ConfigError
from imo.exams.extrapolation import extrapolation_curve
from imo.exams.interpolation import interpolation_curve
from imo.exams.memory import peak_mib, run_point
from imo.runs.store import RunStore
from imo.train.config import RunConfig
from imo.train.trainer import train_or_reuse

TINY = dict(n_layer=1, n_embd=32, n_head=4, context_length=16)


def run(store: RunStore, pos: str) -> str:
    cfg = RunConfig.build(preset=None, model=dict(TINY, pos=pos),
                          train=dict(steps=2, batch_size=4, warmup=1, seed=0))
    return train_or_reuse(cfg, store=store)


@pytest.mark.parametrize("pos", ["learned", "alibi"])
def test_extrapolation_curve(pos):
    store = RunStore.open()
    curve = extrapolation_curve(run(store, pos), store, factors=(1, 2, 4), max_tokens=256)
    assert list(curve) == [1, 2, 4]
    assert math.isfinite(curve[1])
    if pos == "learned":  # a table of L rows cannot be read at 2L
        assert curve[2] is None and curve[4] is None
    else:
        assert all(math.isfinite(v) for v in curve.values())


def test_interpolation_curve():
    store = RunStore.open()
    out = interpolation_curve(run(store, "rope"), store, factor=2, steps=2, points=2, eval_batches=2)
    assert out["steps"] == [0, 1, 2] and out["context"] == 32
    assert len(out["interpolation"]) == len(out["extrapolation"]) == 3
    assert out["eval_check"] < 1e-4
    # the two arms start from the same weights and differ only in rope_scale
    assert out["interpolation"][0] != out["extrapolation"][0]
    with pytest.raises(ConfigError, match="needs rope"):
        interpolation_curve(run(store, "alibi"), store, steps=2, points=2)


def test_interpolation_fine_tunes_are_keyed_on_the_code_fingerprint():
    store = RunStore.open()
    cfg = RunConfig.build(preset=None, model=dict(TINY, pos="rope"), train=dict(steps=2, batch_size=4, warmup=1, seed=0))
    base = train_or_reuse(cfg, store=store, code_fingerprint="claim-code")
    kw = dict(factor=2, steps=2, points=2, eval_batches=2)
    out = interpolation_curve(base, store, **kw)  # none given: the base run's own
    assert {store.get(r)["fingerprint"] for r in out["runs"]} == {"claim-code"}
    assert interpolation_curve(base, store, **kw)["runs"] == out["runs"]  # same code: reused
    other = interpolation_curve(base, store, code_fingerprint="other-code", **kw)["runs"]
    assert not set(other) & set(out["runs"])


def test_memory_point_in_a_fresh_process():
    # this test process is far larger than the child: a peak inherited from it (as ru_maxrss is
    # across fork + exec) would hide the child's growth entirely
    point = run_point("tiled", 512)
    assert point["T"] == 512 and point["peak_mib"] > 0 and point["seconds"] > 0
    assert peak_mib("naive", 512) > point["peak_mib"]  # 4 x 512 x 512 floats are 4 MiB a copy
