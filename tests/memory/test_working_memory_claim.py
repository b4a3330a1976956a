"""The working-memory claim: its rule decides on FAM's margin past the windows, is undefined when
BSWA cannot read a key it sees, and its smoke budget runs end to end."""
import math

import pytest

from imo.claims.library.memory import IN_VIEW, MARGIN, margin, plot_working_memory
from imo.claims.registry import CLAIMS, Context


def test_margin_supports_refutes_and_guards():
    rule = CLAIMS.get("working-memory").rule
    assert rule.metric == "fam_minus_bswa_far" and rule.threshold == MARGIN
    assert margin(0.9, 0.1, 1.0) == pytest.approx(0.8)  # the paper's picture: supports
    assert margin(0.1, 0.1, 1.0) == 0.0  # both forget: refutes (0 < 0.25)
    assert math.isnan(margin(0.9, 0.0, IN_VIEW - 0.01))  # BSWA cannot read keys it sees: untestable


def test_smoke_budget_end_to_end(tmp_path):
    f = CLAIMS.get("working-memory").measure("smoke", 0, Context(store=None))
    for key in ("fam_far", "bswa_far", "fam_near", "bswa_near"):
        assert 0.0 <= f[key] <= 1.0
    assert f["fam_state_floats"] < f["bswa_state_floats"]  # FAM gets the smaller state
    value = f["fam_minus_bswa_far"]
    assert isinstance(value, float) and (math.isnan(value) == (f["bswa_near"] < IN_VIEW))
    plot_working_memory([f, f], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
