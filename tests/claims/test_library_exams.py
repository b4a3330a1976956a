"""The exam claims run end to end at the smoke budget: their figures hold the rule's metric, the
verdict follows from it, and their plots write PNGs."""

import math

import pytest

import imo.claims.library.exams  # noqa: F401  (registers the claims)
from imo.claims.registry import CLAIMS, SEEDS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore

IDS = ["trickability", "true-negative-hard", "skills-are-separate"]


@pytest.mark.parametrize("claim_id", IDS)
def test_smoke_figures_hold_the_metric(claim_id, tmp_path):
    claim = CLAIMS.get(claim_id)
    ctx = Context(store=RunStore.open())
    figures = claim.measure("smoke", 0, ctx)
    value = figures[claim.rule.metric]
    assert isinstance(value, float)
    assert figures["_runs"] and all(ctx.store.get(r)["status"] == "finished" for r in figures["_runs"])
    verdict = decide(claim.rule, [value], "smoke").verdict
    assert verdict in VERDICTS
    if math.isnan(value):  # e.g. no skill learned in 3 steps: no evidence either way
        assert verdict == "inconclusive"
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_trickability_reports_the_paper_beside_digits():
    claim = CLAIMS.get("trickability")
    assert "99.9%" in claim.anchor and "89.4%" in claim.anchor
    figures = claim.measure("smoke", 0, Context(store=RunStore.open()))
    assert 0.0 <= figures["softmax_fgsm_error_at_0.25"] <= 1.0
    assert len(figures["softmax_error"]) == len(figures["eps"])
    assert isinstance(figures["adv_training_target_met"], bool)
    assert figures["text_definition"].startswith("trickability@k=1")


def test_full_budget_runs_three_seeds():
    assert SEEDS["full"] >= 3
