"""Subset sum: generated solutions verify, the process oracle agrees with brute force, illegal and
dead-end steps are caught, held-out difficulties are refused for training."""

import itertools
import random

import pytest

from imo import tasks
from imo.errors import ConfigError
from imo.reason.steps import parse
from imo.tasks.subsetsum import reachable

TASK = tasks.get("subsetsum")


@pytest.mark.parametrize("difficulty", TASK.difficulties)
def test_every_generated_solution_verifies(difficulty):
    rng = random.Random(difficulty)
    for _ in range(100):
        p = TASK.generate(rng, difficulty)
        assert TASK.solution_ok(p, p.solution) and all(TASK.step_labels(p, p.solution))
        assert TASK.check(p, TASK.extract(p.solution))
        assert len(p.meta["nums"]) == TASK.numbers(difficulty)
        assert len(parse(p.solution).steps) <= TASK.max_steps(difficulty)
        assert len(p.solution) <= TASK.max_tokens(difficulty)
        assert max(len(line) + 1 for line in p.solution.splitlines()) <= TASK.max_line(difficulty)


def test_reachable_agrees_with_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        nums = [rng.randint(1, 12) for _ in range(rng.randint(0, 6))]
        target = rng.randint(0, 40)
        brute = any(sum(c) == target for k in range(len(nums) + 1) for c in itertools.combinations(nums, k))
        assert reachable(nums, target) == brute


def test_wrong_steps_and_answers_are_caught():
    p = TASK.from_text("14 3 9 20 7:30", 1)
    assert TASK.solution_ok(p, p.solution)
    assert TASK.step_labels(p, "+14=14\n+3=17\n") == [True, False]  # 13 from 9 20 7: impossible
    assert TASK.step_labels(p, "+20=20\n+3=23\n+7=30\n=30\n") == [True, True, True, True]  # another subset
    assert not TASK.solution_ok(p, "+14=14\n+14=28\n=30\n")  # 14 used twice
    assert not TASK.solution_ok(p, "+14=14\n+9=24\n+7=31\n=30\n")  # a wrong total
    assert not TASK.solution_ok(p, "+14=14\n+9=23\n=30\n")  # stops short
    assert not TASK.solution_ok(p, "=30\n")
    assert TASK.answer_of("+20=20\n+3=23\n+7=30\n=30\n") == "3 7 20"
    dup = TASK.from_text("5 5 2:10", 1)
    assert TASK.solution_ok(dup, "+5=5\n+5=10\n=10\n")  # a number given twice may be used twice
    with pytest.raises(ConfigError, match="no subset"):
        TASK.from_text("4 6:5", 1)
    with pytest.raises(ConfigError, match="cannot read"):
        TASK.from_text("four:5", 1)


def test_held_out_difficulties_are_not_trained_on():
    from imo.reason.policy import PolicyConfig, harder

    with pytest.raises(ConfigError, match="held out"):
        PolicyConfig(task="subsetsum", difficulty=3, context_length=192)
    cfg = PolicyConfig(task="subsetsum", difficulty=2, context_length=192)
    hard = harder(cfg, 5)
    assert hard and all(p.difficulty == 3 for p in hard)
    train, test = tasks.split(TASK, 2, 500, 50, 0)
    assert not {p.key for p in train} & {p.key for p in test}
