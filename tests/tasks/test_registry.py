import random

import pytest

from imo import tasks
from imo.errors import ConfigError


class _Parity(tasks.Task):
    name = "_parity-test"
    difficulties = (1,)

    def generate(self, rng: random.Random, difficulty: int) -> tasks.Problem:
        n = rng.randrange(10)
        return tasks.Problem(self.name, difficulty, f"{n}?", str(n % 2), f"{n}%2={n % 2}", key=str(n))


def test_split_never_shares_a_problem():
    train, test = tasks.split(_Parity(), 1, n_train=6, n_test=4, seed=0)
    assert len(train) == 6 and len(test) == 4
    assert not {p.key for p in train} & {p.key for p in test}


def test_split_refuses_sizes_the_task_cannot_fill():
    with pytest.raises(ConfigError, match="too few distinct problems"):
        tasks.split(_Parity(), 1, n_train=8, n_test=4, seed=0)


def test_unknown_difficulty_and_task_are_clear_errors():
    with pytest.raises(ConfigError, match="no difficulty 3"):
        tasks.split(_Parity(), 3, 1, 1, 0)
    with pytest.raises(ConfigError, match="unknown task"):
        tasks.get("no-such-task")
