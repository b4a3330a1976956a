"""The fact base: held-out missing facts are truly absent from the training text, present facts
and taught defaults are all in it, and the in-context task checks exactly."""

import random

import pytest

from imo import tasks
from imo.errors import ConfigError
from imo.tasks.facts import UNKNOWN, FactBase


def test_held_out_missing_facts_are_truly_absent():
    base = FactBase.generate(seed=3, n_entities=30)
    text = "\n" + base.training_text()
    pos, neg = base.questions()
    assert pos and neg
    for p in neg:
        assert "\n" + p.prompt not in text  # never stated, not even as "unknown"
        assert p.answer == UNKNOWN and not p.meta["present"]
    for p in pos:
        assert f"\n{p.prompt} {p.answer}\n" in text
    for e, a in base.taught_absent:
        assert f"\n{e} {a}: {UNKNOWN}\n" in text
    pairs = [set(base.present), set(base.taught_absent), set(base.held_absent)]
    assert not (pairs[0] & pairs[1] or pairs[0] & pairs[2] or pairs[1] & pairs[2])


def test_seeded():
    assert FactBase.generate(1, 10) == FactBase.generate(1, 10)
    assert FactBase.generate(1, 10).training_text() != FactBase.generate(2, 10).training_text()


def test_in_context_task_checks():
    task = tasks.get("facts")
    rng = random.Random(0)
    seen = set()
    for _ in range(50):
        p = task.generate(rng, 1)
        assert task.check(p, p.answer) and not task.check(p, p.answer + "s")
        seen.add(p.meta["present"])
        if p.answer != UNKNOWN:
            assert f"{p.prompt.rsplit('; ', 1)[1]} {p.answer}" in p.prompt
    assert seen == {True, False}


def test_bad_sizes():
    with pytest.raises(ConfigError, match="at least 2 entities"):
        FactBase.generate(0, 1)


def test_training_text_is_the_same_in_every_process():
    import os
    import subprocess
    import sys

    code = "from imo.tasks.facts import FactBase; print(FactBase.generate(5, 12).training_text())"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout for h in (1, 2)}
    assert len(outs) == 1  # string hashing (set order) must not reach the text
