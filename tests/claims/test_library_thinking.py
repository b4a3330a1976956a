"""The thinking claims run end to end at the smoke budget: figures hold the rule's metric, finite,
the runs they name are finished, the plots write PNGs; and their rules can go either way."""

import math

import pytest

import imo.claims.library.thinking  # noqa: F401  (registers the claims)
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import decide
from imo.runs.store import RunStore

IDS = ["self-evaluation-easier", "beam-to-train-revise-to-infer"]


@pytest.mark.parametrize("claim_id", IDS)
def test_smoke_figures_hold_a_finite_metric(claim_id, tmp_path):
    claim = CLAIMS.get(claim_id)
    ctx = Context(store=RunStore.open())
    figures = claim.measure("smoke", 0, ctx)
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert figures["_runs"] and all(ctx.store.get(r)["status"] == "finished" for r in figures["_runs"])
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("claim_id", IDS)
def test_rules_can_support_and_refute(claim_id):
    rule = CLAIMS.get(claim_id).rule
    assert decide(rule, [0.20, 0.22, 0.18], "full").verdict == "supported"
    assert decide(rule, [-0.05, -0.04, -0.06], "full").verdict == "refuted"
    assert decide(rule, [0.0, 0.3, -0.2], "full").verdict == "inconclusive"

