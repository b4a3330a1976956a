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


def _table(own: float, cross: float, control: float, order_learnt: bool = True) -> dict:
    """Synthetic transfer-exam accuracies: every skill 0.1 for the reference, `own` for a model on
    its own skill, `cross` on another skill, `control` for sort's model on order."""
    import imo.claims.library.exams as E

    battery, _ = E.SKILLS["quick"]
    tested = ["count", "copy", "reverse", "sort", "add", "compare", "grid", "order"]
    acc = {"none": {t: 0.1 for t in tested}}
    for m in dict.fromkeys([*battery, *E.CONTROL]):
        acc[m] = {t: own if t == m else cross for t in tested}
    acc["sort"]["order"] = control
    if not order_learnt:
        acc["order"]["order"] = 0.1
    return {"runs": {m: f"run-{m}" for m in acc}, "accuracy": acc}


@pytest.mark.parametrize("case, verdict", [
    (dict(own=0.9, cross=0.1, control=0.85), "supported"),  # separate skills, a control that transfers
    (dict(own=0.9, cross=0.8, control=0.85), "refuted"),  # distinct skills transfer as much as the control
    (dict(own=0.9, cross=0.1, control=0.1), "refuted"),  # the exam sees no transfer even where it must
    (dict(own=0.9, cross=0.1, control=0.9, order_learnt=False), "refuted"),  # a blind exam: control 0
])
def test_skills_rule_reads_the_positive_control(monkeypatch, case, verdict):
    import imo.claims.library.exams as E

    monkeypatch.setattr(E, "transfer_exam", lambda *a, **k: _table(**case))
    claim = CLAIMS.get("skills-are-separate")
    figures = claim.measure("quick", 0, Context(store=None))
    assert figures["pairs_counted"] == 2 and math.isfinite(figures["control_minus_transfer"])
    assert decide(claim.rule, [figures[claim.rule.metric]], "quick").verdict == verdict


def test_skills_without_a_learnt_target_have_no_measurement(monkeypatch):
    import imo.claims.library.exams as E

    monkeypatch.setattr(E, "transfer_exam", lambda *a, **k: _table(own=0.2, cross=0.1, control=0.85))
    claim = CLAIMS.get("skills-are-separate")
    figures = claim.measure("quick", 0, Context(store=None))
    assert figures["pairs_counted"] == 0 and math.isnan(figures["mean_transfer"])
    assert decide(claim.rule, [figures[claim.rule.metric]], "quick").verdict == "inconclusive"
