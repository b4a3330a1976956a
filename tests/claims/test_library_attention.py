"""The tiled-attention claim at the smoke budget: exact, and its figures hold a finite metric."""

import math

import pytest

from imo.claims.library.attention import max_errors
from imo.claims.registry import CLAIMS, Context
from imo.runs.store import RunStore


@pytest.mark.slow  # four fresh processes
def test_smoke_figures(tmp_path):
    claim = CLAIMS.get("tiled-attention")
    figures = claim.measure("smoke", 0, Context(store=RunStore.open()))
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert figures["exact"] == "yes" and figures["max_abs_error"] < 1e-4
    assert all(m > 0 for m in figures["naive_mib"] + figures["tiled_mib"])
    claim.plot([figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_tiled_matches_naive_with_alibi_on_ragged_lengths():
    for T in (1, 63, 65):
        f, g = max_errors(T, alibi=True, seed=0)
        assert f < 1e-5 and g < 1e-5
