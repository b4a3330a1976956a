"""The retrieval-helps claim: its rule decides on the gain at overlap <= 0.2, is undefined when the
neighbours are missing or the arms differ in size, and its smoke budget runs end to end."""

import math

import pytest

from imo.claims.library.retrieval import GAIN, MIN_FILLED, gain, plot_retrieval_helps
from imo.claims.registry import CLAIMS, Context

pytest.importorskip("bm25s")


def test_gain_supports_refutes_and_guards():
    rule = CLAIMS.get("retrieval-helps").rule
    assert rule.metric == "gain_low_overlap" and rule.threshold == GAIN and rule.op == ">"
    assert gain(2.50, 2.40, 0.9, 0.01) == pytest.approx(0.10)  # supports
    assert gain(2.50, 2.51, 0.9, 0.01) == pytest.approx(-0.01)  # refutes
    assert math.isnan(gain(2.50, 2.40, MIN_FILLED - 0.01, 0.0))  # too few neighbours: untestable
    assert math.isnan(gain(2.50, 2.40, 0.9, 0.05))  # unequal parameters: untestable


def test_smoke_budget_end_to_end(tmp_path):
    f = CLAIMS.get("retrieval-helps").measure("smoke", 0, Context(store=None))
    assert abs(f["params_base"] - f["params_retro"]) / f["params_retro"] <= 0.02
    assert f["base_positions"] == f["retro_positions"]  # scored on the same windows
    assert len(set(f["base_bpb_by_overlap"])) == 1  # the base reads no neighbours
    value = f["gain_low_overlap"]
    assert isinstance(value, float) and math.isnan(value) == (f["testable"] != "yes")
    assert value == pytest.approx(f["gain_at_0.2"]) or math.isnan(value)
    plot_retrieval_helps([f, f], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
