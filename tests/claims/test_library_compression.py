"""The compression claims run end to end at the smoke budget: figures hold the rule's metric,
finite and consistent, and their plots write PNGs."""

import math

import pytest

import imo.claims.library.compression  # noqa: F401  (registers the claims)
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore


def smoke(claim_id, tmp_path, finite: bool = True):
    claim = CLAIMS.get(claim_id)
    figures = claim.measure("smoke", 0, Context(store=RunStore.open()))
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and (math.isfinite(value) or not finite)
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    return figures


def test_nn_is_compressor_smoke(tmp_path):
    f = smoke("nn-is-compressor", tmp_path)
    m = f["models"][0]
    assert m["heldout_bpb_with_model"] > m["heldout_bpb"] > 0  # counting the weights only adds
    assert 0.0 <= m["recall_heldout"] <= 1.0 and 0.0 <= m["recall_train"] <= 1.0
    assert f["gap_to_xz_bpb"] == pytest.approx(f["xz_given_train_bpb"] - f["best_model_bpb"])
    assert 0 < f["zip_net_alone_bpb"] < 16


def test_compute_per_byte_smoke(tmp_path):
    f = smoke("compute-per-byte", tmp_path, finite=False)
    assert f["time_ratio_xz"] == pytest.approx(f["imo_s_per_byte"] / f["xz_s_per_byte"])
    assert f["log10_time_ratio_xz"] == pytest.approx(math.log10(f["time_ratio_xz"]))
    # the rule's metric is the time ratio only where imo zip's ratio is at least xz's
    if f["imo_bpb"] <= f["xz_bpb"]:
        assert f["log10_time_ratio_xz_at_ratio"] == f["log10_time_ratio_xz"]
    else:
        assert math.isnan(f["log10_time_ratio_xz_at_ratio"])
    assert f["imo_flops_per_byte"] > 0 and 0 < f["imo_bpb"] < 16


def test_compute_per_byte_seeds_read_different_slices(monkeypatch, shared_data):
    """At the full budget each seed must measure its own bytes, not repeat the same slice
    (the full budget reads tinyshakespeare from ../shared/data)."""
    import imo.claims.library.compression as comp

    monkeypatch.setattr(comp, "SHARED_TEXT", shared_data / "tinyshakespeare.txt")

    seen = []
    monkeypatch.setattr(comp, "measure_compute", lambda data, **kw: seen.append(data) or {})
    for seed in range(3):
        comp.measure_cpb("full", seed, Context(store=None))
    assert len(seen) == 3 and all(len(d) == comp.CPB_BYTES["full"] for d in seen)
    # not just shifted by a few bytes: where a later slice starts inside an earlier one, it starts
    # at least a fifth of a slice later
    for i in range(3):
        for j in range(i + 1, 3):
            shift = bytes(seen[i]).find(bytes(seen[j][:256]))
            assert shift == -1 or shift >= len(seen[i]) // 5


def test_timed_xz_codes_like_xz_9e_and_round_trips():
    """The timed xz (dictionary cut to the input) codes to exactly xz -9e's length and decodes."""
    import lzma

    import imo.claims.library.compression as comp

    data = bytes(range(256)) * 20 + b"to be or not to be " * 300
    for n in (1, 4096, 4097, len(data)):
        packed = comp.xz_timed(data[:n])
        assert lzma.decompress(packed) == data[:n]
        assert len(packed) == len(comp.CLASSIC["xz"](data[:n]))


def test_fastest_excludes_the_warm_up_and_takes_the_fastest_call():
    import imo.claims.library.compression as comp

    calls = []
    best, median, result = comp.fastest(lambda b: calls.append(len(b)) or len(b), b"x" * 5000, repeats=3)
    assert calls[0] == comp.WARMUP_BYTES and calls[1:] == [5000] * 3  # warm-up on the head, untimed
    assert result == 5000 and 0 <= best <= median
