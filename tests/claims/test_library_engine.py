"""The engine claim runs end to end at the smoke budget: a finite metric, equal outputs, a plot."""

import math

import imo.claims.library.engine  # noqa: F401  (registers the claim)
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore


def test_store_layer_state_smoke(tmp_path):
    claim = CLAIMS.get("store-layer-state")
    ctx = Context(store=RunStore.open())
    figures = claim.measure("smoke", 0, ctx)
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value) and value >= 1.0
    assert figures["outputs_equal"] == 1.0  # each served answer is the one regenerated from scratch
    assert figures["rejections"] >= 1 and all(0 <= p < figures["answer_len"] for p in figures["branch_positions"])
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
