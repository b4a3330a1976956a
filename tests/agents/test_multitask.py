"""The three-task recipe and its normalised scores (imo.agents.multitask)."""

import pytest

from imo.agents import multitask


def test_normalised_score_and_suite():
    # (R - R_random) / (R_single - R_random): the random policy scores 0, the reference 1
    assert multitask.normalised("CartPole-v1", 500.0, 20.0) == pytest.approx(1.0)
    assert multitask.normalised("MountainCar-v0", -200.0, -200.0) == 0.0
    mid = (multitask.SINGLE_TASK["Acrobot-v1"] + -500.0) / 2
    assert multitask.normalised("Acrobot-v1", mid, -500.0) == pytest.approx(0.5)
    assert multitask.is_suite(["MountainCar-v0", "CartPole-v1", "Acrobot-v1"])
    assert not multitask.is_suite(["CartPole-v1", "Acrobot-v1"])
    plain, popart = multitask.recipe(False, seed=2), multitask.recipe(True, seed=2)
    assert plain.per_task_heads and popart.popart and not plain.popart
    assert {k: v for k, v in plain.to_dict().items() if k != "popart"} == \
        {k: v for k, v in popart.to_dict().items() if k != "popart"}  # the arms differ only there


def test_random_returns_repeat_and_the_cli_takes_the_recipe():
    pytest.importorskip("gymnasium")
    from imo.agents.cli import _config

    a = multitask.random_returns("CartPole-v1", range(10_000, 10_005))
    assert a == multitask.random_returns("CartPole-v1", range(10_000, 10_005))
    assert 8 <= sum(a) / len(a) <= 60  # a random CartPole policy lasts about 20 steps
    assert multitask.random_returns("MountainCar-v0", [10_000]) == [-200.0]
    cfg = _config(["CartPole-v1", "Acrobot-v1", "MountainCar-v0"], {"popart": True})
    assert cfg == multitask.recipe(True, seed=1)
