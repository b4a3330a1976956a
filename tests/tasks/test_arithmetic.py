"""The arithmetic scratchpad: every generated solution verifies step by step, corrupted ones do not,
and train/test splits share no problem."""

import random

import pytest

from imo import tasks
from imo.errors import ConfigError
from imo.reason.steps import parse
from imo.tasks.arithmetic import columns

TASK = tasks.get("arith")


@pytest.mark.parametrize("difficulty", TASK.difficulties)
def test_every_generated_solution_verifies(difficulty):
    rng = random.Random(difficulty)
    for _ in range(200):
        p = TASK.generate(rng, difficulty)
        a, op, b = p.meta["a"], p.meta["op"], p.meta["b"]
        assert int(p.answer) == eval(f"{a}{op}{b}")  # an independent check of the answer
        assert TASK.solution_ok(p, p.solution)
        assert all(TASK.step_labels(p, p.solution))
        assert TASK.check(p, TASK.extract(p.solution))
        assert len(p.solution) <= TASK.max_tokens(difficulty)
        assert len(parse(p.solution).steps) <= TASK.max_steps(difficulty)
        assert max(len(line) + 1 for line in p.solution.splitlines()) <= TASK.max_line(difficulty)


def test_columns_carry_and_borrow():
    assert columns(347, "+", 285) == (["7+5+0=12", "4+8+1=13", "3+2+1=6"], 632)
    assert columns(502, "-", 178) == (["2-8-0=-6", "0-7-1=-8", "5-1-1=3"], 324)
    assert columns(347, "*", 5) == (["7*5+0=35", "4*5+3=23", "3*5+2=17"], 1735)


def test_a_corrupted_step_is_caught_where_it_happens():
    p = TASK.generate(random.Random(3), 3)
    steps = parse(p.solution).steps
    bad = list(steps)
    bad[1] = bad[1][:-1] + str((int(bad[1][-1]) + 1) % 10)  # the column's value off by one
    text = "".join(s + "\n" for s in bad) + f"={p.answer}\n"
    assert TASK.step_labels(p, text) == [True, False, False, False]
    assert TASK.solution_ok(p, text)  # the outcome is still right: only the process is wrong


def test_a_wrong_or_missing_answer_fails():
    p = TASK.generate(random.Random(4), 2)
    wrong = p.solution.replace(f"={p.answer}\n", f"={int(p.answer) + 1}\n")
    assert not TASK.solution_ok(p, wrong) and TASK.step_labels(p, wrong)[-1] is False
    unfinished = p.solution[:-1]  # the answer line without its newline is not written yet
    assert not TASK.solution_ok(p, unfinished)
    assert not TASK.check(p, TASK.extract(wrong))


def test_no_train_test_overlap():
    train, test = tasks.split(TASK, 2, n_train=500, n_test=100, seed=0)
    assert not {p.key for p in train} & {p.key for p in test}
    assert not {p.prompt for p in train} & {p.prompt for p in test}


def test_unknown_difficulty_is_a_clear_error():
    with pytest.raises(ConfigError, match="choose one of: 1, 2, 3, 4, 5, 6"):
        TASK.generate(random.Random(0), 9)
