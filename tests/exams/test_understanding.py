"""Understanding after compression: the relational fact base, its altered questions, the held-out
split, the retention arithmetic, and a tiny end-to-end run through imo's prune and quantize."""

import math

import pytest

from imo.data.corpora import load_corpus
from imo.errors import ConfigError
from imo.exams.textmodel import corpus_file
from imo.exams.understanding import (
    UnderstandingSize,
    corpus_text,
    retention_gap,
    understanding_exam,
)
from imo.tasks.facts import FactBase
from imo.tasks.relations import FORMS, NO, YES, Relations

TINY = UnderstandingSize(n_layer=1, n_embd=16, n_head=2, context_length=32, steps=3, batch_size=4, n_entities=6,
                         group_size=16, levels=(("none", 0.0, 0), ("int8", 0.0, 8), ("int4", 0.0, 4),
                                                ("prune", 0.5, 0), ("prune+int4", 0.5, 4)))


def test_relation_is_a_derangement_and_the_split_is_disjoint():
    rel = Relations.generate(FactBase.generate(3, 30))
    assert sorted(rel.friend) == sorted(rel.friend.values())  # a permutation: readable backwards
    assert all(a != b for a, b in rel.friend.items())
    assert not rel.shown & rel.held and rel.shown | rel.held == set(rel.friend)


def test_altered_answers_follow_from_the_stored_facts():
    rel = Relations.generate(FactBase.generate(0, 20))
    tests = rel.tests()
    inverse = {b: a for a, b in rel.friend.items()}
    for p in tests["negation"]:
        _, w, e, a = p.prompt.replace("?", "").rstrip(":").split(" ")
        v = rel.base.present[(e, a)]
        assert p.answer == f"{v} {NO if v == w else YES}"  # the recalled value, then the verdict
    verdicts = [p.answer.split(" ")[1] for p in tests["negation"]]
    assert verdicts.count(YES) * 2 == len(verdicts)  # one true and one false premise per fact
    for p in tests["swapped"]:
        assert p.answer == inverse[p.prompt.split(" ")[0]]
    for p in tests["two-hop"]:
        a, _, _, e, _ = p.prompt.replace("?", "").rstrip(":").split(" ")
        f = rel.friend[e]
        assert p.answer == f"{f} {a}: {rel.base.present[(f, a)]}"


def test_held_altered_questions_never_appear_in_training_but_their_facts_do():
    rel = Relations.generate(FactBase.generate(1, 20))
    path = corpus_file(corpus_text(rel), "relations")
    corpus = load_corpus(f"file:{path}")
    train = "\n" + bytes(corpus.train).decode()
    for line in rel.training_lines():
        assert f"\n{line}\n" in train
    text = "\n" + rel.base.training_text() + "\n".join(rel.training_lines())
    for form in FORMS:
        for p in rel.tests()[form]:
            assert f"\n{p.prompt} " not in text
    for p in rel.tests()["recall"]:
        assert f"\n{p.prompt} {p.answer}\n" in train
    shown = rel.altered(rel.shown)
    assert all(f"\n{p.prompt} {p.answer}\n" in train for ps in shown.values() for p in ps)


def test_retention_gap():
    base = {"level": "none", "recall": 1.0, "negation": 1.0, "swapped": 0.1, "two-hop": 0.6}
    half = {"level": "prune 0.5", "recall": 0.8, "negation": 0.5, "swapped": 0.0, "two-hop": 0.3}
    out = retention_gap([base, half])
    assert out["learnt_forms"] == ["negation", "two-hop"]  # swapped scored 0.1 < 0.25: not learnt
    (row,) = out["retention"]
    # recall keeps 0.8; negation keeps 0.5 / 1 = 0.5, two-hop 0.3 / 0.6 = 0.5
    assert row["recall_retention"] == pytest.approx(0.8) and row["altered_retention"] == pytest.approx(0.5)
    assert out["retention_gap"] == pytest.approx(0.3)
    none_learnt = {"level": "none", "recall": 1.0, "negation": 0.2, "swapped": 0.0, "two-hop": 0.0}
    assert math.isnan(retention_gap([none_learnt, half])["retention_gap"])


def test_tiny_exam_runs_every_level_and_repeats():
    out = understanding_exam(TINY, seed=0)
    assert [lv["level"] for lv in out["levels"]] == ["none", "int8", "int4", "prune 0.5", "prune 0.5 + int4"]
    for lv in out["levels"]:
        for form in ("recall", *FORMS):
            assert 0.0 <= lv[form] <= 1.0
    assert out["n_tests"]["negation"] > 0 and out["n_tests"]["swapped"] == out["n_held"]
    assert understanding_exam(TINY, seed=0)["levels"] == out["levels"]  # the run is reused, figures repeat


def test_bad_sizes_and_levels():
    with pytest.raises(ConfigError, match="multiple of 4 heads"):
        understanding_exam(UnderstandingSize(n_embd=30))
    with pytest.raises(ConfigError, match="start with 'none'"):
        understanding_exam(UnderstandingSize(levels=(("prune", 0.5, 0),)))
    with pytest.raises(ConfigError, match="sparsity"):
        understanding_exam(UnderstandingSize(levels=(("none", 0.0, 0), ("prune", 1.5, 0))))
    with pytest.raises(ConfigError, match="group size"):
        understanding_exam(UnderstandingSize(n_embd=96, group_size=64))
