"""The power-law fit recovers known parameters from synthetic data, its prediction interval
covers the truth, and the compress-too-much claim's smoke measurement returns finite figures."""

import math

import numpy as np
import pytest

from imo.claims.library import scaling
from imo.claims.registry import CLAIMS, Context
from imo.exams.scaling import (
    fit_power_law,
    non_embedding_params,
    power_law,
    prediction_interval,
    train_flops,
)
from imo.runs.store import RunStore

N = np.geomspace(3e3, 2e5, 6)


@pytest.mark.parametrize("E, A, alpha", [(1.5, 40.0, 0.35), (0.5, 5.0, 0.1), (2.0, 300.0, 0.6), (0.0, 10.0, 0.2)])
def test_fit_recovers_known_parameters(E, A, alpha):
    L = power_law(N, E, A, alpha) + np.random.default_rng(0).normal(0, 1e-4, len(N))
    E_, A_, alpha_ = fit_power_law(N, L)
    assert alpha_ == pytest.approx(alpha, abs=0.02)
    assert E_ == pytest.approx(E, abs=0.03)
    assert A_ == pytest.approx(A, rel=0.1)
    big = 5e6  # extrapolating 25x past the data
    assert power_law(big, E_, A_, alpha_) == pytest.approx(power_law(big, E, A, alpha), rel=0.01)


def test_fit_is_exact_without_noise_and_keeps_E_non_negative():
    E, A, alpha = fit_power_law(N, power_law(N, 1.2, 25.0, 0.3))
    assert (E, A, alpha) == pytest.approx((1.2, 25.0, 0.3), rel=1e-3)
    E, _, _ = fit_power_law(N, 8.0 * N**-0.5)  # the best unconstrained E would be ~0
    assert E >= 0


def test_prediction_interval_covers_the_truth_under_noise():
    rng = np.random.default_rng(1)
    truth = power_law(1e6, 1.5, 40.0, 0.35)
    covered = 0
    for trial in range(10):
        L = power_law(N, 1.5, 40.0, 0.35) + rng.normal(0, 0.005, len(N))
        pred, low, high = prediction_interval(N, L, 1e6, n_boot=200, seed=trial)
        assert low <= pred <= high and high - low < 0.5
        covered += low <= truth + rng.normal(0, 0.005) <= high
    assert covered >= 7  # a 95% interval from 6 points: allow for the bootstrap's optimism


def test_fit_refuses_bad_input():
    with pytest.raises(ValueError):
        fit_power_law([1e3, 1e4], [2.0, 1.5])
    with pytest.raises(ValueError):
        fit_power_law([1e3, 1e3, 1e3], [2.0, 1.5, 1.2])


def test_flops_count_weights_and_attention():
    assert train_flops(1000, 2, 32, 64, 10) == 6 * 1000 * 10 + 6 * 2 * 64 * 32 * 10


@pytest.mark.parametrize("budget", ["quick", "full"])
def test_sizes_span_thirty_times(budget):
    sizes = scaling.SIZES[budget]
    params = [non_embedding_params(dict(n_layer=L, n_embd=d, n_head=max(1, d // 16), context_length=64))
              for L, d in sizes]  # fmt: skip
    assert len(sizes) >= 6 and params == sorted(params) and params[-1] / params[0] >= 30


def test_compress_too_much_smoke(tmp_path):
    claim = CLAIMS.get("compress-too-much")
    f = claim.measure("smoke", 0, Context(store=RunStore.open()))
    assert math.isfinite(f["fit_error"]) and f["fit_error"] >= f["relative_error"]
    assert f["interval_bpb"][0] <= f["predicted_bpb"] <= f["interval_bpb"][1]
    assert len(f["_runs"]) == len(scaling.SIZES["smoke"]) and len(set(f["params"])) == len(f["params"])
    out = tmp_path / "fit.png"
    claim.plot([f], out)
    assert out.stat().st_size > 0
