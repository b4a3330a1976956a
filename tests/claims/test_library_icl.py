"""The induction-heads claim runs end to end at the smoke budget, and its margin is the smallest
of the three figures over their targets (so each one alone can refute it)."""

import math

import imo.claims.library.icl as icl
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore


def test_induction_heads_smoke(tmp_path):
    claim = CLAIMS.get("induction-heads")
    figures = claim.measure("smoke", 0, Context(store=RunStore.open()))
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert value == min(figures["margins"].values())
    assert len(figures["curve_steps"]) == len(figures["curve_score"]) == 3
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    claim.plot([figures, {**figures, "seed": 1}], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_each_figure_alone_decides_the_margin():
    good = {"fall_first_20pct": 3.0, "top_prefix_at_drop": 0.9, "give_back": 0.95}
    assert min(icl.margins(good).values()) > 1
    for key, low in (("fall_first_20pct", 0.1), ("top_prefix_at_drop", 0.2), ("give_back", 0.3)):
        m = icl.margins({**good, key: low})
        assert min(m.values()) < 1 and min(m, key=m.get) == key
    assert icl.margins({**good, "give_back": float("nan")})["give_back"] == 0.0
