"""The arithmetic reasoning claims (prm-beats-orm, search-then-learn) run end to end at the smoke
budget: figures hold the rule's metric, finite, the runs they name are finished, and the plots
write PNGs. (instinct-vs-thinking: test_library_instinct.py.)"""

import math

import pytest

import imo.claims.library.reasoning  # noqa: F401  (registers the claims)
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore

IDS = ["prm-beats-orm", "search-then-learn"]


@pytest.mark.parametrize("claim_id", IDS)
def test_smoke_figures_hold_a_finite_metric(claim_id, tmp_path):
    claim = CLAIMS.get(claim_id)
    ctx = Context(store=RunStore.open())
    figures = claim.measure("smoke", 0, ctx)
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert figures["_runs"] and all(ctx.store.get(r)["status"] == "finished" for r in figures["_runs"])
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
