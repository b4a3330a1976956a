"""Countdown and Game of 24: generated solutions verify, illegal or dead-end steps are caught, the
solver agrees with brute force, and splits share no problem."""

import itertools
import random

import pytest

from imo import tasks
from imo.reason.steps import parse
from imo.tasks.countdown import play, solve

COUNTDOWN, GAME24 = tasks.get("countdown"), tasks.get("game24")


@pytest.mark.parametrize("task,difficulty", [(COUNTDOWN, 1), (COUNTDOWN, 2), (COUNTDOWN, 3), (GAME24, 1)])
def test_every_generated_solution_verifies(task, difficulty):
    rng = random.Random(difficulty)
    for _ in range(100):
        p = task.generate(rng, difficulty)
        assert task.solution_ok(p, p.solution)
        assert all(task.step_labels(p, p.solution))
        assert task.check(p, task.extract(p.solution))
        assert len(parse(p.solution).steps) == task.numbers(difficulty) - 1
        assert len(p.solution) <= task.max_tokens(difficulty)
        assert max(len(line) + 1 for line in p.solution.splitlines()) <= task.max_line(difficulty)


def _brute(nums, target):
    """Every order of combining, every op, no memo: a plain check of `solve`."""
    if len(nums) == 1:
        return nums[0] == target
    for i, j in itertools.permutations(range(len(nums)), 2):
        rest = [x for k, x in enumerate(nums) if k not in (i, j)]
        a, b = nums[i], nums[j]
        for r in (a + b, a - b, a * b, a // b if b and a % b == 0 else -1):
            if r > 0 and _brute(rest + [r], target):
                return True
    return False


def test_solver_agrees_with_brute_force():
    rng = random.Random(0)
    for _ in range(150):
        nums = tuple(sorted(rng.randint(1, 9) for _ in range(3)))
        target = rng.randint(1, 40)
        assert (solve(nums, target) is not None) == _brute(list(nums), target)


def test_illegal_steps_and_dead_ends_fail():
    p = COUNTDOWN._problem(1, [3, 7, 8], 29, ["3*7=21", "21+8=29"])
    assert COUNTDOWN.solution_ok(p, "3*7=21\n21+8=29\n=29\n")
    assert COUNTDOWN.step_labels(p, "3*7=22\n") == [False]  # wrong arithmetic
    assert COUNTDOWN.step_labels(p, "3*9=27\n") == [False]  # 9 is not given
    assert COUNTDOWN.step_labels(p, "3+7=10\n10+8=18\n=18\n") == [False, False, False]  # dead end
    assert not COUNTDOWN.solution_ok(p, "3*7=21\n=29\n")  # 8 was never used
    assert not COUNTDOWN.solution_ok(p, "3*7=21\n21+8=29\n=30\n")  # the answer line lies
    assert play((3, 7, 8), "8/3=2") is None  # division must be exact
    assert play((3, 7, 8), "8-8=0") is None  # 8 is given once


def test_game24_makes_24_and_splits_are_disjoint():
    train, test = tasks.split(GAME24, 1, n_train=300, n_test=50, seed=0)
    assert all(p.answer == "24" for p in train + test)
    assert not {p.key for p in train} & {p.key for p in test}
    train, test = tasks.split(COUNTDOWN, 1, n_train=500, n_test=100, seed=1)
    assert not {p.key for p in train} & {p.key for p in test}


def test_vote_counts_the_number_made_not_the_claim():
    p = COUNTDOWN._problem(1, [3, 7, 8], 29, ["3*7=21", "21+8=29"])
    assert COUNTDOWN.answer_of("3+7=10\n10+8=18\n=29\n") == "18"
    assert COUNTDOWN.answer_of("3*7=21\n21+8=29\n=29\n") == "29"
    assert COUNTDOWN.answer_of("3*7=21\n") is None
    assert p.answer == "29"
