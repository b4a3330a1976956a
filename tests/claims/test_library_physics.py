"""The physics claims: smoke figures hold the rule's metric with fair arms (equal parameters and
training FLOPs; equal size and budget), the ranges do not overlap where they must not, and the
metric can come out either way."""

import math

import pytest

pytest.importorskip("pymunk")

from imo.claims.library import physics  # noqa: E402
from imo.claims.registry import CLAIMS, Context  # noqa: E402
from imo.claims.verdict import decide  # noqa: E402
from imo.physics import learned  # noqa: E402


def test_structure_smoke_has_fair_arms(tmp_path):
    claim = CLAIMS.get("physics-needs-structure")
    f = claim.measure("smoke", 0, Context(store=None))
    assert math.isfinite(f["error_ratio_1s"]) and f["error_ratio_1s"] > 0
    assert f["error_ratio_1s"] == pytest.approx(f["transformer_errors"][2] / f["in_errors"][2])
    assert f["transformer_width"] == physics.matched_transformer_width(16, f["in_parameters"])
    # equal training FLOPs, up to one transformer step
    per_step = f["transformer_train_flops"] / f["transformer_steps"]
    assert abs(f["transformer_train_flops"] - f["in_train_flops"]) <= per_step / 2 + 1
    claim.plot([f, f], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("budget", ["quick", "full"])
def test_matched_widths_have_equal_parameters(budget):
    hidden = physics.SIZES[budget]["hidden"]
    count = lambda m, w: sum(p.numel() for p in learned.build(  # noqa: E731
        learned.ForecastConfig(model=m, hidden=w), 3).parameters())
    n_in = count("in", hidden)
    assert abs(count("transformer", physics.matched_transformer_width(hidden, n_in)) / n_in - 1) < 0.08


def test_subset_smoke_and_ranges(tmp_path):
    claim = CLAIMS.get("experience-subset")
    f = claim.measure("smoke", 0, Context(store=None))
    assert math.isfinite(f["outside_ratio"])
    assert f["outside_ratio"] == pytest.approx(f["narrow_outside_errors"][2] / f["wide_outside_errors"][2])
    # the outside range lies outside the narrow one and inside the wide one
    n, w, o = physics.NARROW, physics.WIDE, physics.OUTSIDE
    for k in ("mass", "friction"):
        assert o[k][0] > n[k][1] and w[k][0] <= o[k][0] and o[k][1] <= w[k][1]
    sc = physics.scenes(5, 3, **physics.OUTSIDE)
    assert all(2.0 <= m <= 3.0 for s in sc for m in s.masses)
    assert all(0.9 <= s.config.friction <= 1.2 for s in sc)
    assert len({s.config.friction for s in sc}) == 3
    claim.plot([f], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0


@pytest.mark.parametrize("gap, verdict", [(2.0, "supported"), (1.0, "refuted")])
def test_structure_rule_goes_either_way(monkeypatch, gap, verdict):
    """The transformer's error set to `gap` times the IN's: 2x supports, equal refutes."""
    claim = CLAIMS.get("physics-needs-structure")

    def fake(model, scenes, *a, **kw):
        scale = gap if model.config.model == "transformer" else 1.0
        return {h: scale * (1 + h) for h in physics.HORIZONS}

    monkeypatch.setattr(learned, "forecast_errors", fake)
    values = [claim.measure("smoke", s, Context(store=None))["error_ratio_1s"] for s in range(3)]
    assert values == pytest.approx([gap] * 3)
    values[0] += 0.01  # a t interval needs some spread
    assert decide(claim.rule, values, "full").verdict == verdict


@pytest.mark.parametrize("outside, verdict", [(3.0, "supported"), (1.0, "refuted")])
def test_subset_rule_goes_either_way(monkeypatch, outside, verdict):
    claim = CLAIMS.get("experience-subset")
    calls = []

    def fake(model, scenes, *a, **kw):  # called narrow-inside, narrow-outside, wide-inside, wide-outside
        calls.append(1)
        scale = outside if len(calls) % 4 == 2 else 1.0
        return {h: scale * (1 + h) for h in physics.HORIZONS}

    monkeypatch.setattr(learned, "forecast_errors", fake)
    values = [claim.measure("smoke", s, Context(store=None))["outside_ratio"] for s in range(3)]
    assert values == pytest.approx([outside] * 3)
    values[0] += 0.01
    assert decide(claim.rule, values, "full").verdict == verdict
