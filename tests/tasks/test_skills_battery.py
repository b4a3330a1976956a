"""The skills battery: every generated answer checks, corrupted answers fail, prompts are solved
from their text alone, and the tasks live in the shared registry."""

import random

import pytest

from imo import tasks
from imo.errors import ConfigError
from imo.tasks.skills import skill_names


@pytest.mark.parametrize("name", skill_names())
@pytest.mark.parametrize("difficulty", [1, 2])
def test_generated_answers_check_and_corrupted_ones_fail(name, difficulty):
    task = tasks.get(name)
    rng = random.Random(f"{name}/{difficulty}")
    for _ in range(200):
        p = task.generate(rng, difficulty)
        assert p.prompt.endswith("=") and "\n" not in p.prompt + p.answer
        assert task.check(p, p.answer)
        assert task.solve(p.prompt) == p.answer
        assert task.check(p, task.extract(p.answer + "\nnext line"))
        for wrong in (p.answer + "x", p.answer[:-1], "", p.answer[::-1] + "0"):
            if wrong != p.answer:
                assert not task.check(p, wrong)


def test_answers_by_hand():
    solve = lambda name, prompt: tasks.get(name).solve(prompt)  # noqa: E731
    assert solve("skill-count", "count a:abcab=") == "2"
    assert solve("skill-copy", "copy cab=") == "cab"
    assert solve("skill-reverse", "reverse cab=") == "bac"
    assert solve("skill-sort", "sort cab=") == "abc"
    assert solve("skill-add", "add 17+5=") == "22"
    assert solve("skill-compare", "compare 17?5=") == ">"
    assert solve("skill-compare", "compare 05?5=") == "="
    assert solve("skill-grid", "grid 3x3 RRD=") == "2,1"
    assert solve("skill-grid", "grid 2x2 LLUR=") == "1,0"  # walls block moves out of the grid
    assert solve("skill-sort", "sort cab") is None  # not a well-formed prompt
    assert solve("skill-add", "add 1+x=") is None


def test_registered_and_difficulties_checked():
    assert set(skill_names()) <= set(tasks.names())
    with pytest.raises(ConfigError, match="no difficulty 3"):
        tasks.get("skill-add").generate(random.Random(0), 3)


def test_split_has_no_shared_problem():
    train, test = tasks.split(tasks.get("skill-sort"), 1, n_train=300, n_test=50, seed=0)
    assert not {p.key for p in train} & {p.key for p in test}


@pytest.mark.parametrize("name", skill_names())
def test_difficulty_one_fills_the_exams_default_split(name):
    train, test = tasks.split(tasks.get(name), 1, n_train=2000, n_test=100, seed=0)
    assert len(train) == 2000 and len(test) == 100
