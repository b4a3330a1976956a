"""The learning claims (local-learning, dynamic-connections, routing-capsules): each runs end to
end at the smoke budget on the 8x8 digits, its metric is the stated function of its arms, and fed
arms that must refute or support it, its rule does so at the full budget."""


import pytest
from claim_smoke import smoke

import imo.claims.library.learning  # noqa: F401  (registers dynamic-connections, routing-capsules)
import imo.claims.library.learning_local as L
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import decide


def test_local_learning_smoke(tmp_path):
    f = smoke("local-learning", tmp_path)
    arms = f["arms"]
    assert set(arms) == {"backprop", "dfa", "ff", "mezo"} and f["optimizer"] == "sgd"
    assert arms["backprop"]["memory_ratio"] == 1.0
    assert arms["mezo"]["memory_ratio"] < arms["backprop"]["memory_ratio"]  # no gradient at all
    assert f["local_gap_points"] == pytest.approx(L.local_gap(arms))
    assert "goodness_error" in arms["ff"]  # both read-outs reported, the softmax one decides


def arms(bp, **local):
    """{rule: (error, memory_ratio)} -> the arms' figures."""
    out = {"backprop": {"error": bp, "memory_ratio": 1.0}}
    out.update({r: {"error": e, "memory_ratio": m} for r, (e, m) in local.items()})
    return out


@pytest.mark.parametrize("seeds, verdict", [
    # a rule within a point of backprop, at a quarter of its memory: supported
    ([arms(0.05, dfa=(0.06, 0.5), mezo=(0.055, 0.25)), arms(0.05, mezo=(0.058, 0.3)), arms(0.04, mezo=(0.049, 0.3))],
     "supported"),
    # as accurate, but no local rule fits in a third of the memory: refuted, however accurate
    ([arms(0.05, dfa=(0.05, 0.5), ff=(0.051, 0.4))] * 3, "refuted"),
    # the frugal rule is far off (MeZO from scratch), the accurate one too heavy: refuted
    ([arms(0.05, dfa=(0.055, 0.6), mezo=(0.7, 0.31))] * 3, "refuted"),
])
def test_local_gap_decides(seeds, verdict):
    rule = CLAIMS.get("local-learning").rule
    values = [L.local_gap(a) for a in seeds]
    assert decide(rule, values, "full").verdict == verdict


def test_dynamic_connections_smoke(tmp_path):
    f = smoke("dynamic-connections", tmp_path)
    a = f["arms"]
    assert a["static"]["moved_fraction"] == 0.0 and a["static"]["updates"] == 0
    assert a["static"]["weight_nonzeros"] == a["set"]["weight_nonzeros"] == a["rigl"]["weight_nonzeros"]
    assert f["dynamic_gain_points"] == pytest.approx(max(f["set_gain_points"], f["rigl_gain_points"]))
    assert f["set_gain_points"] == pytest.approx(100 * (a["static"]["error"] - a["set"]["error"]))


@pytest.mark.parametrize("gains, verdict", [([1.2, 1.0, 1.4], "supported"), ([0.1, 0.3, 0.2], "refuted"),
                                            ([-0.5, 0.0, -0.2], "refuted"), ([2.0, -1.0, 0.5], "inconclusive")])
def test_dynamic_connections_needs_more_than_half_a_point(gains, verdict):
    assert decide(CLAIMS.get("dynamic-connections").rule, gains, "full").verdict == verdict


def test_routing_capsules_smoke(tmp_path):
    f = smoke("routing-capsules", tmp_path)
    a = f["arms"]
    assert a["routing_1"]["params"] == a["routing_3"]["params"]  # routing adds no parameter
    assert f["routing_gain_points"] == pytest.approx(100 * (a["routing_1"]["error"] - a["routing_3"]["error"]))


def test_full_budget_reads_each_seeds_own_split(monkeypatch):
    """At quick and full each seed draws its own MNIST split (a seeded permutation), so seeds are
    replications; the claims load the split with the seed they are given."""
    seen = []

    class Stop(Exception):
        pass

    def fake_load(spec, seed=0, max_train=None):
        seen.append((spec, seed, max_train))
        raise Stop

    monkeypatch.setattr("imo.learn.data.load", fake_load)
    for cid in ("local-learning", "dynamic-connections", "routing-capsules"):
        for seed in (0, 1, 2):
            with pytest.raises(Stop):
                CLAIMS.get(cid).measure("full", seed, Context(store=None))
    assert seen == [("mnist", s, None) for _ in range(3) for s in (0, 1, 2)]
