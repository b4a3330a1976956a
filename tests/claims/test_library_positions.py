"""The position claims run end to end at the smoke budget: their figures hold the rule's metric,
finite, and their plots write PNGs."""

import math

import pytest

import imo.claims.library.positions as positions
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore

IDS = ["position-breaks-symmetry", "alibi-extrapolates", "interpolation-extends"]


def get(claim_id):
    # position-breaks-symmetry is a verified property now, not a registered claim
    return positions.position_breaks_symmetry() if claim_id == "position-breaks-symmetry" else CLAIMS.get(claim_id)


@pytest.mark.parametrize("claim_id", IDS)
def test_smoke_figures_hold_a_finite_metric(claim_id, tmp_path):
    claim = get(claim_id)
    ctx = Context(store=RunStore.open())
    figures = claim.measure("smoke", 0, ctx)
    value = figures[claim.rule.metric]
    # alibi-extrapolates is undefined (NaN) exactly where a model it compares learned no context
    undefined = claim_id == "alibi-extrapolates" and figures["untestable"] != "none"
    assert isinstance(value, float) and math.isfinite(value) != undefined
    assert figures["_runs"] and all(ctx.store.get(r)["status"] == "finished" for r in figures["_runs"])
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_symmetry_without_positions_is_float_rounding_only():
    figures = get("position-breaks-symmetry").measure("smoke", 0, Context(store=RunStore.open()))
    assert figures["change_none"] < 1e-5
    # at 4 steps attention is near uniform, so the effect is small, yet far above the noise
    assert all(figures[f"change_{p}"] > 30 * figures["change_none"] for p in ("learned", "sinusoidal", "rope", "alibi"))


def test_claims_share_their_base_runs():
    store = RunStore.open()
    ctx = Context(store=store)
    a = CLAIMS.get("alibi-extrapolates").measure("smoke", 0, ctx)
    b = CLAIMS.get("interpolation-extends").measure("smoke", 0, ctx)
    assert b["_runs"][0] in a["_runs"]  # the RoPE model is trained once
    assert a["bpb_learned"][1:] == [None] * (len(a["factors"]) - 1)
    assert b["eval_check"] < 1e-4  # step 0 is scored on the trainer's own validation windows


def test_extrapolation_margin_needs_both_halves():
    m = positions.extrapolation_margin
    flat = positions.FLAT_BPB
    assert m(0.0, 0.8, True) == pytest.approx(flat)  # ALiBi flat, sinusoidal worse: ALiBi's room
    assert m(0.0, flat + 0.02, True) == pytest.approx(0.02)  # sinusoidal barely worse: its excess
    assert m(0.0, 0.0, True) < 0  # sinusoidal flat too: the second half fails
    assert m(0.3, 0.8, True) < 0  # ALiBi degrades: the first half fails
    assert math.isnan(m(0.0, 0.8, False))  # a model that learned nothing: inconclusive
    rule = CLAIMS.get("alibi-extrapolates").rule
    assert decide(rule, [m(0.0, 0.0, True)] * 3, "full").verdict == "refuted"
    assert decide(rule, [m(-0.03, 0.76, True), m(-0.02, 0.75, True), m(-0.01, 0.77, True)], "full").verdict == "supported"
