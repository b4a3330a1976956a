"""understanding-after-compression runs end to end at the smoke budget, and fed retention figures that
must support, refute or leave it open, the rule does so at the full budget."""

import math

import pytest
from claim_smoke import smoke

import imo.claims.library.understanding  # noqa: F401  (registers the claim)
from imo.claims.registry import CLAIMS
from imo.claims.verdict import decide
from imo.exams.understanding import retention_gap


def test_understanding_smoke(tmp_path):
    f = smoke("understanding-after-compression", tmp_path)
    assert [lv["level"] for lv in f["levels"]] == ["none", "int8", "prune 0.5"]
    assert len(f["retention"]) == 2


def levels(recall, altered):
    """An uncompressed level and two compressed ones; `altered` is the negation accuracy."""
    rows = [{"level": f"l{i}", "recall": r, "negation": a, "swapped": 0.0, "two-hop": 0.0}
            for i, (r, a) in enumerate(zip(recall, altered, strict=True))]
    return rows


@pytest.mark.parametrize("seeds, verdict", [
    # negation falls away while recall holds: supported
    ([levels((1.0, 0.95, 0.8), (0.8, 0.3, 0.1)), levels((0.9, 0.9, 0.7), (0.9, 0.4, 0.0)),
      levels((1.0, 0.9, 0.75), (0.8, 0.3, 0.1))], "supported"),
    # both keep the same share: refuted
    ([levels((1.0, 0.9, 0.5), (0.8, 0.72, 0.4)), levels((0.8, 0.72, 0.4), (0.9, 0.81, 0.45)),
      levels((1.0, 0.9, 0.6), (0.8, 0.73, 0.48))], "refuted"),
    # no altered form was learnt: no verdict
    ([levels((1.0, 0.9, 0.5), (0.1, 0.0, 0.0))] * 3, "inconclusive"),
])
def test_rule_decides(seeds, verdict):
    values = [retention_gap(s)["retention_gap"] for s in seeds]
    if verdict == "inconclusive":
        assert all(math.isnan(v) for v in values)
    assert decide(CLAIMS.get("understanding-after-compression").rule, values, "full").verdict == verdict
