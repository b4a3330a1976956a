"""The true-negative exam: every fact is in the trainer's training split, the rates are measured
on present and held-out missing facts, and bad sizes are refused."""

import pytest

from imo.data.corpora import load_corpus
from imo.errors import ConfigError
from imo.exams.negatives import NegativesSize, corpus_text, negatives_exam
from imo.exams.textmodel import corpus_file
from imo.tasks.facts import FactBase

TINY = NegativesSize(sizes=((1, 16),), steps=(3,), n_entities=6, context_length=16, batch_size=4)


def test_every_fact_is_in_the_training_split():
    base = FactBase.generate(0, 20)
    path = corpus_file(corpus_text(base), "facts")
    corpus = load_corpus(f"file:{path}")
    train = "\n" + bytes(corpus.train).decode()
    for line in base.training_lines():
        assert f"\n{line}\n" in train
    val_lines = bytes(corpus.val).decode().split("\n")[1:-1]  # whole lines of the validation split
    assert val_lines and set(val_lines) <= set(base.training_lines())


def test_exam_rates_on_a_tiny_run():
    out = negatives_exam(TINY, seed=0)
    (row,) = out["rows"]
    assert 0.0 <= row["tpr"] <= 1.0 and 0.0 <= row["tnr"] <= 1.0
    assert row["n_positive"] == out["n_present"] and row["n_negative"] == out["n_held_absent"]
    again = negatives_exam(TINY, seed=0)  # the same run is reused, the same figures come out
    assert again["rows"] == out["rows"]


def test_bad_sizes():
    with pytest.raises(ConfigError, match="multiple of 4 heads"):
        negatives_exam(NegativesSize(sizes=((1, 30),)))
    with pytest.raises(ConfigError, match="at least one"):
        negatives_exam(NegativesSize(steps=()))
