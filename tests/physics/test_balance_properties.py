"""The balance task and properties from motion: the truth comes from pymunk and repeats from
seeds, the hand-written physics agrees with it, and the learned rows beat the priors."""

import numpy as np
import pytest

pytest.importorskip("pymunk")
pytest.importorskip("sklearn")

from imo.errors import ConfigError  # noqa: E402
from imo.physics import balance, properties  # noqa: E402


def test_stacks_repeat_and_their_truth_is_pymunk_s():
    a, b = balance.make_stack(3), balance.make_stack(3)
    assert np.array_equal(a.boxes, b.boxes) and a.stands == b.stands and np.array_equal(a.com, b.com)
    # uniform density: pymunk's centre of mass is the area-weighted mean of the box centres
    for s in (balance.make_stack(i) for i in range(20)):
        area = s.boxes[:, 2] * s.boxes[:, 3]
        assert np.allclose(s.com, (area[:, None] * s.boxes[:, :2]).sum(0) / area.sum(), atol=1e-9)
    # a centred tower stands, one overhanging by far falls; the statics rule says the same
    tower = np.array([[5.0, 0.25, 1.0, 0.5], [5.0, 0.75, 1.0, 0.5]])
    leaning = np.array([[5.0, 0.25, 1.0, 0.5], [5.9, 0.75, 1.0, 0.5]])
    assert balance.simulate(tower)[0] and balance.statics_rule(tower)
    assert not balance.simulate(leaning)[0] and not balance.statics_rule(leaning)
    stacks = [balance.make_stack(i) for i in range(60)]
    truth = np.array([s.stands for s in stacks])
    assert 0.2 < truth.mean() < 0.8
    assert (np.array([balance.statics_rule(s.boxes) for s in stacks]) == truth).mean() > 0.85


def test_properties_are_recovered_from_motion():
    t = properties.make_trajectory(4)
    assert t.states.shape == (61, 2, 2) and t.collided
    assert np.array_equal(properties.make_trajectory(4).states, t.states)
    est = properties.physicist(t)
    assert abs(est["friction"] - t.truth["friction"]) < 0.01
    assert abs(est["elasticity"] - t.truth["elasticity"]) < 0.05
    assert abs(est["log_mass_ratio"] - t.truth["log_mass_ratio"]) < 0.2
    r = properties.evaluate(train=200, test=60, trees=60)
    for p, row in r["mae"].items():
        assert row["learned (trees)"] < row["prior (training mean)"], p
    b = balance.evaluate(train=200, test=60, trees=60)
    assert b["com_error_m"]["learned (trees)"] < b["com_error_m"]["unweighted mean of box centres"]
    assert b["stands_balanced_accuracy"]["learned (trees)"] > 0.6
    with pytest.raises(ConfigError):
        balance.evaluate(train=1)
    with pytest.raises(ConfigError):
        properties.make_trajectory(-1)
