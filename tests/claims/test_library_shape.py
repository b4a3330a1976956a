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
    assert f["param_spread"] < 0.10 and len(f["shapes"]) == len(shape.SHAPES["smoke"])
    assert f["wide_minus_deep_bpb"] == pytest.approx(f["val_bpb"][0] - f["val_bpb"][-1])


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
