"""The tiled-attention speed claim at the smoke budget: figures hold a finite metric, the timed
tiled backend matches naive, and a wrong backend's speed cannot count (the exactness and memory
facts themselves are the verified property backed by tests/model/test_tiled.py)."""

import math

import imo.claims.library.attention as att
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.model.attention import BACKENDS


def test_smoke_figures(tmp_path):
    claim = CLAIMS.get("tiled-attention")
    figures = claim.measure("smoke", 0, Context(store=None))
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value) and value > 0
    assert figures["exact"] == "yes" and figures["max_abs_error"] < 1e-4
    assert figures["lengths"] == att.SIZES["smoke"]["lengths"] and figures["max_T"] == figures["lengths"][-1]
    assert value == figures["speedups"][-1] == figures["naive_s"][-1] / figures["tiled_s"][-1]
    assert all(t > 0 for t in figures["naive_s"] + figures["tiled_s"] + figures["sdpa_s"])
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_time_length_times_each_backend_after_a_warm_up(monkeypatch):
    calls = []
    real = att.fwd_bwd
    monkeypatch.setattr(att, "fwd_bwd", lambda name, *a: calls.append(name) or real(name, *a))
    row = att.time_length(65, repeats=2, seed=0)
    # one warm-up call each, then the repeats interleaved with the order flipped
    assert calls == ["naive", "tiled", "sdpa", "naive", "tiled", "sdpa", "sdpa", "tiled", "naive"]
    assert row["max_abs_error"] < 1e-5 and row["naive_s"] <= row["naive_s_median"]


def test_a_wrong_tiled_backend_makes_the_metric_undefined(monkeypatch):
    tiled = BACKENDS.get("tiled")
    monkeypatch.setitem(BACKENDS._items, "tiled", lambda *a, **kw: tiled(*a, **kw) * 1.01)  # 1% off
    figures = att.measure("smoke", 0, Context(store=None))
    assert figures["exact"] == "no" and math.isnan(figures["speedup_at_max_T"])
    assert decide(CLAIMS.get("tiled-attention").rule, [figures["speedup_at_max_T"]], "smoke").verdict == "inconclusive"
