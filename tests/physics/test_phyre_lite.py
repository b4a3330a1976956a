"""PHYRE-lite: tasks repeat from seeds, success is the exact touch, invalid placements are not
attempts, AUCCESS follows PHYRE's weights, and the agents are deterministic."""

import math

import numpy as np
import pytest

pytest.importorskip("pymunk")

from imo.errors import ConfigError  # noqa: E402
from imo.physics import phyre_lite as P  # noqa: E402


def test_tasks_repeat_and_are_neither_trivial_nor_unsolvable():
    for template in P.TEMPLATES:
        a, b = P.tasks(template, 2), P.tasks(template, 2)
        assert a == b and a[0] != a[1]
        assert P.make_task(template, 1) == a[1]
        t = a[0]
        assert not P.simulate(t, None).solved  # doing nothing fails
        found = [x for x in P.stream(t, "filter", P.FILTER_TRIES) if P.simulate(t, x).solved]
        assert found  # and some placement succeeds: the same outcome, frame for frame, twice
        assert P.simulate(t, found[0]) == P.simulate(t, found[0])


def test_success_is_a_real_touch_and_overlaps_are_invalid():
    t = P.tasks("ledge", 1)[0]
    hit = next(x for x in P.stream(t, "filter", P.FILTER_TRIES) if P.simulate(t, x).solved)
    out, path = P.run(t, hit, record=True)
    assert out.valid and out.solved and len(path) == out.frame + 1
    # the target pad is static: when the handler fires, the green ball is at touching distance
    _, x1, y1, x2, y2 = t.target
    gx = float(np.clip(path[-1][0], x1, x2))
    gap = math.hypot(path[-1][0] - gx, path[-1][1] - y1) - P.BAR - t.green[2]
    assert gap < 0.2  # at most a frame's motion (the touch happens inside the frame's steps)
    before = path[: -1]  # and never that close before
    assert all(math.hypot(x - float(np.clip(x, x1, x2)), y - y1) - P.BAR - t.green[2] > -0.05
               for x, y in before)
    # a red ball on top of the green one is not an attempt
    gx, gy, gr = t.green
    on_green = ((gx / P.W), (gy / P.H), 0.5)
    assert not P.simulate(t, on_green).valid
    assert P.attempts_until_solved(t, np.array([on_green] * 5 + [hit])) == 1


def test_auccess_weights():
    assert P.auccess([1, 1, 1]) == pytest.approx(1.0)
    assert P.auccess([None, None]) == 0.0
    k = np.arange(1, 101)
    w = np.log(k + 1) - np.log(k)
    assert P.auccess([100]) == pytest.approx(w[-1] / w.sum())
    assert P.auccess([2, None]) == pytest.approx(0.5 * w[1:].sum() / w.sum())
    with pytest.raises(ConfigError):
        P.auccess([])


def test_agents_are_deterministic_and_the_ranker_learns():
    train = P.tasks("two-balls", 4) + P.tasks("ledge", 4)
    test = P.tasks("two-balls", 2, first=4)
    r1 = P.fit_ranker(train, per_task=40, trees=40)
    r2 = P.fit_ranker(train, per_task=40, trees=40)
    assert 0 < r1.positive_share < 1 and r1.examples == 8 * 40
    for t in test:
        assert P.ranker_agent(r1, t, pool=100) == P.ranker_agent(r2, t, pool=100)
        assert P.random_agent(t) == P.random_agent(t)
        assert P.oracle_agent(t, budget=200) == 1  # kept tasks are solvable: the oracle finds it
    with pytest.raises(ConfigError, match="unknown template"):
        P.make_task("seesaw", 0)
