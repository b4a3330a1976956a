"""ability-decoders, courses-matter and rewired-tickets run end to end at the smoke budget; the decoders' metric is
undefined unless the old skills were learnt, and fed arms that must refute or support each claim,
the rules do so at the full budget."""


import pytest
from claim_smoke import smoke

import imo.claims.library.learning_rewire  # noqa: F401  (registers rewired-tickets)
import imo.claims.library.learning_skills as LS
from imo.claims.registry import CLAIMS
from imo.claims.verdict import decide


def test_ability_decoders_smoke(tmp_path):
    f = smoke("ability-decoders", tmp_path)
    per, shared = f["arms"]["per-skill"], f["arms"]["shared"]
    assert f["interference_gain_points"] == pytest.approx(shared["interference_points"] - per["interference_points"])
    assert per["params"] - shared["params"] == (len(per["config"]["skills"]) - 1) * 256  # the extra output biases


def test_courses_smoke(tmp_path):
    f = smoke("courses-matter", tmp_path)
    a = f["arms"]
    assert set(a) == {"easy-to-hard", "random", "hard-to-easy"}
    assert f["course_gain_points"] == pytest.approx(100 * (a["easy-to-hard"]["final_mean"] - a["random"]["final_mean"]))


def arm(before, interference):
    return {"old_accuracy_before": before, "interference_points": interference}


@pytest.mark.parametrize("pairs, verdict", [
    ([(arm(0.8, 30), arm(0.8, 5)), (arm(0.7, 25), arm(0.75, 4)), (arm(0.8, 28), arm(0.8, 6))], "supported"),
    ([(arm(0.8, 10), arm(0.8, 12)), (arm(0.7, 9), arm(0.75, 11)), (arm(0.8, 8), arm(0.8, 10.5))], "refuted"),
    # nothing was learnt, so nothing could be lost: no verdict
    ([(arm(0.05, 0), arm(0.9, 0))] * 3, "inconclusive"),
])
def test_decoder_gain_decides(pairs, verdict):
    values = [LS.decoder_gain(shared, per) for shared, per in pairs]
    assert decide(CLAIMS.get("ability-decoders").rule, values, "full").verdict == verdict


def test_rewired_tickets_smoke(tmp_path):
    f = smoke("rewired-tickets", tmp_path)
    assert f["ticket_gain_points"] == pytest.approx(100 * (f["acc_rewired"] - f["acc_plain"]))
    assert f["rounds"][-1]["fraction_left"] == f["fraction_left"] < 1.0
