"""Shape claims: equal-parameter shapes really are equal, and each claim's smoke measurement
returns finite figures with its rule's metric (and a plot)."""

import math

import pytest

from imo.claims.library import shape
from imo.claims.registry import CLAIMS, Context
from imo.exams.scaling import non_embedding_params
from imo.runs.store import RunStore


@pytest.mark.parametrize("budget", ["smoke", "quick", "full"])
def test_width_shapes_have_equal_parameters(budget):
    shapes = shape.SHAPES[budget]
    params = [non_embedding_params(shape.shape_model(L, d, shape.CONTEXT[budget])) for L, d in shapes]
    assert len(shapes) >= 3
    assert max(params) / min(params) - 1 < 0.10, dict(zip(shapes, params, strict=True))
    layers = [L for L, _ in shapes]
    assert layers == sorted(layers, reverse=True) and layers[-1] == 1  # deep first, shallowest last


def _check(claim_id: str, tmp_path) -> dict:
    claim = CLAIMS.get(claim_id)
    figures = claim.measure("smoke", 0, Context(store=RunStore.open()))
    metric = figures[claim.rule.metric]
    assert isinstance(metric, float) and math.isfinite(metric)
    assert all(math.isfinite(v) for v in figures["val_bpb"])
    assert figures["_runs"] and all(isinstance(r, str) for r in figures["_runs"])
    out = tmp_path / "plot.png"
    claim.plot([figures], out)
    assert out.stat().st_size > 0
    return figures


def test_width_over_depth_smoke(tmp_path):
    f = _check("width-over-depth", tmp_path)
    n, g = len(shape.SHAPES["smoke"]), len(shape.LR_GRID)
    assert f["param_spread"] < 0.10 and len(f["shapes"]) == n
    assert f["wide_minus_deep_bpb"] == pytest.approx(f["val_bpb"][0] - f["val_bpb"][-1])
    # fair arms: every shape trained at every rate of the grid, for the same steps and tokens
    store = RunStore.open()
    assert len(set(f["_runs"])) == n * g
    train = [store.get(r)["config"]["train"] for r in f["_runs"]]
    assert {(t["steps"], t["batch_size"]) for t in train} == {(shape.WIDTH_TRAIN["smoke"]["steps"], 4)}
    assert sorted(t["lr"] for t in train) == sorted(list(shape.LR_GRID) * n)
    assert len({store.get(r)["figures"]["tokens"] for r in f["_runs"]}) == 1
    # each shape's rate is the best on the selection half; the figure judged is the scored half's
    for i in range(n):
        j = shape.LR_GRID.index(f["best_lr"][i])
        assert f["select_bpb"][i][j] == min(f["select_bpb"][i])
        assert f["val_bpb"][i] == f["scored_bpb"][i][j]
    assert f["select_bpb"] != f["scored_bpb"]  # two different halves of the split


def test_pick_best_uses_the_selection_figures_and_never_nan():
    nan = float("nan")
    assert shape.pick_best([[2.0, 1.5, 1.7], [nan, 3.0, 3.0], [1.0, 2.0, 0.5]]) == [1, 1, 2]


def test_validation_halves_have_disjoint_targets(monkeypatch):
    """The selection half scores the targets val[1..h], the scored half val[h+1..]."""
    import numpy as np

    from imo.data import corpora
    from imo.train import evaluate

    seen = []
    val = np.arange(101, dtype=np.uint8)
    monkeypatch.setattr(corpora, "load_corpus", lambda name: type("C", (), {"val": val})())
    monkeypatch.setattr("imo.train.checkpoint.load_model", lambda d: (None, {}))
    monkeypatch.setattr(evaluate, "evaluate_split", lambda m, data, c: seen.append(np.asarray(data)) or 0.0)
    shape.half_split_bpb(type("S", (), {"run_dir": lambda self, r: r})(), "r", 8)
    first, second = seen
    assert set(first[1:]).isdisjoint(second[1:]) and set(first[1:]) | set(second[1:]) == set(val[1:])


def test_more_output_heads_smoke(tmp_path):
    f = _check("more-output-heads", tmp_path)
    assert f["heads"] == [1, 2, 4]
    assert f["params"][0] < f["params"][1] < f["params"][2]  # each extra head is one more block
    assert f["paper"].startswith(("reproduced", "not reproduced"))


def test_second_measure_reuses_runs():
    store = RunStore.open()
    ctx = Context(store=store)
    first = shape.measure_heads("smoke", 0, ctx)
    second = shape.measure_heads("smoke", 0, ctx)
    assert first["_runs"] == second["_runs"] and first["val_bpb"] == second["val_bpb"]
