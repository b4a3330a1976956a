"""The interpretability claims: `superposition` and `monosemantic-features` run end to end at
the smoke budget, and each measurement can come out against its claim (a broken classifier, an
SAE whose features fire at random) as well as for it (features that each fire on one token)."""

import math

import numpy as np
import pytest

import imo.claims.library.interpretability as I
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore


def _png(path) -> bool:
    return path.read_bytes()[:4] == b"\x89PNG"


def test_superposition_smoke(tmp_path):
    claim = CLAIMS.get("superposition")
    f = claim.measure("smoke", 0, Context(store=None))
    size = I.PHASE["smoke"]["size"]
    assert 0.0 <= f["agreement"] <= 1.0 and np.array(f["trained"]).shape == (size, size)
    theory = np.array(f["theory"])
    assert set(np.unique(theory)) == {0, 1, 2}  # the small grid still crosses all three phases
    assert f["agreement"] == pytest.approx(float((np.array(f["trained"]) == theory).mean()))
    # even 300 steps on a 6x6 grid put most cells where the theory does
    assert f["agreement"] >= 0.75
    claim.plot([f, f], tmp_path / "plot.png")
    assert _png(tmp_path / "plot.png")


def test_superposition_is_refuted_when_the_classifier_is_wrong(monkeypatch):
    # a classifier that never sees superposition: the cells the theory calls superposed disagree
    real = I.tms.classify
    monkeypatch.setattr(I.tms, "classify", lambda W: real(W).clamp(max=1))
    f = CLAIMS.get("superposition").measure("smoke", 0, Context(store=None))
    assert f["recall_superposed"] == 0.0
    assert decide(CLAIMS.get("superposition").rule, [f["agreement"]], "smoke").verdict == "refuted"


def test_alikeness_is_the_share_of_equal_pairs():
    assert I.alikeness(np.array([1, 1, 2, 2])) == pytest.approx(2 / 6)
    assert I.alikeness(np.array([5, 5, 5])) == 1.0 and I.alikeness(np.arange(6)) == 0.0
    keys = I.context_keys(np.array([[1, 2, 3], [4, 2, 3]]), 2)
    assert keys[2] == keys[5] and keys[1] != keys[4] and keys[0] != keys[3]


def _synthetic(monosemantic: bool, n=6000, vocab=12, d=8, feats=10, seed=0):
    """Tokens whose residual is an embedding plus noise; features fire on one token each
    (monosemantic) or on random tokens at the same density."""
    g = np.random.default_rng(seed)
    tokens = g.integers(vocab, size=n)
    resid = g.normal(size=(vocab, d))[tokens] + 0.5 * g.normal(size=(n, d))
    neurons = np.maximum(resid @ g.normal(size=(d, 32)), 0)
    codes = np.zeros((n, feats))
    for j in range(feats):
        on = tokens == j if monosemantic else g.random(n) < (tokens == j).mean()
        codes[on, j] = g.uniform(0.1, 2.0, on.sum())
    return codes, resid, neurons, tokens


@pytest.mark.parametrize("monosemantic, verdict", [(True, "supported"), (False, "refuted")])
def test_monosemantic_metric_tells_token_features_from_random_ones(monosemantic, verdict):
    codes, resid, neurons, tokens = _synthetic(monosemantic)
    got = I.judge_units(codes, resid, neurons, tokens, np.random.default_rng(0))
    assert len(got["sae"]) == codes.shape[1] and all(len(v) == len(got["sae"]) for v in got.values())
    s = I.summary(got)
    if monosemantic:
        assert s["sae_alikeness"] == 1.0
    assert decide(CLAIMS.get("monosemantic-features").rule, [s["alikeness_gap"]], "smoke").verdict == verdict


def test_baselines_get_the_features_density():
    codes, resid, neurons, tokens = _synthetic(True)
    got = I.judge_units(codes, resid, neurons, tokens, np.random.default_rng(0))
    assert np.allclose(np.sort(got["density"]), np.sort((codes > 0).mean(0)))


def test_monosemantic_smoke(tmp_path):
    claim = CLAIMS.get("monosemantic-features")
    f = claim.measure("smoke", 0, Context(store=RunStore.open()))
    value = f[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert value == pytest.approx(f["sae_alikeness"] - max(f["random_alikeness"], f["neuron_alikeness"]))
    assert f["features_judged"] == len(f["per_feature"]["sae"]) >= 1
    assert f["sae_l0"] <= I.SAE_SIZE["smoke"]["k"] and len(f["_runs"]) == 1
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    claim.plot([f, f], tmp_path / "plot.png")
    assert _png(tmp_path / "plot.png")
