"""The learned contact classifiers train on other seeds, repeat under their seed, see only the
context, and beat the constant answer on held-out scenes; the references behave."""

import numpy as np
import pytest

pytest.importorskip("pymunk")
pytest.importorskip("sklearn")

from imo_cli import imo as run  # noqa: E402  (the CLI in-process; exit code)

from imo.errors import ConfigError  # noqa: E402
from imo.physics import contact, contact_learned  # noqa: E402
from imo.physics.contact_learned import ContactConfig  # noqa: E402
from imo.physics.scenes import SceneConfig, generate  # noqa: E402

CFG = SceneConfig(seconds=3.5)


@pytest.fixture(scope="module")
def data():
    train = [generate(2_000_000 + i, CFG) for i in range(120)]
    test = [generate(i, CFG) for i in range(50)]
    return train, test


def test_features_see_only_the_context(data):
    s = data[1][0]
    cfg = ContactConfig(features="states+solo")
    later = s.states.copy()
    later[31:] += 1.0  # anything after the last context frame (30) must not matter
    from dataclasses import replace
    f0 = contact_learned.features(s, 0, 1, cfg)
    f1 = contact_learned.features(replace(s, states=later), 0, 1, cfg)
    assert np.array_equal(f0, f1)
    # swapping A and B swaps their blocks of the vector
    assert not np.array_equal(f0, contact_learned.features(s, 1, 0, cfg))


def test_classifier_repeats_and_beats_the_constant_answer(data):
    train, test = data
    labels = [contact.touches(s, 0, 1) for s in test]
    assert 0.2 < np.mean(labels) < 0.8  # both classes are there
    cfg = ContactConfig(features="states+solo", trees=60)
    a = contact_learned.fit(train, cfg)
    b = contact_learned.fit(train, cfg)
    ga = a.predict(test)
    assert ga == b.predict(test)
    assert a.train_examples == 120 * 6
    assert contact.balanced_accuracy(labels, ga) >= 0.65  # measured 0.80 at 300 scenes, 1000 tests
    # the simulator in the loop is near the truth; the solo rule is informative
    assert contact.balanced_accuracy(labels, [contact_learned.resume_touches(s) for s in test]) > 0.85
    assert contact.balanced_accuracy(labels, [contact_learned.solo_touches(s) for s in test]) > 0.6


def test_bad_input_is_a_clean_error(data):
    with pytest.raises(ConfigError, match="unknown contact features"):
        contact_learned.fit(data[0][:5], ContactConfig(features="pixels"))
    short = [generate(1, SceneConfig(seconds=2.0))]
    with pytest.raises(ConfigError, match="must last more than"):
        contact_learned.fit(short)


def test_exam_runs_the_new_parts_and_rejects_bad_counts(capsys):
    assert run("exam", "physics", "--scenes", "8", "--contact-train", "30", "--balance", "10",
               "--properties", "10") == 0
    text = capsys.readouterr().out
    assert "learned (states+solo)" in text and "energy   quadruplets" in text
    assert "statics rule" in text and "properties (10 trajectories) friction" in text
    assert run("exam", "physics", "--scenes", "3", "--balls", "1") == 0  # no pair: skipped, no traceback
    assert "contact prediction skipped" in capsys.readouterr().out
    assert run("exam", "physics", "--phyre", "-1") == 2
    assert "must be >= 0" in capsys.readouterr().err
