"""Shrinking claims: each smoke measurement returns finite figures with its rule's metric and
draws its plot; the outlier inducer preserves the function; collapse detection is right."""

import math

import pytest
import torch

from imo.claims.library import shrinking
from imo.claims.registry import CLAIMS, Context
from imo.compress import lottery
from imo.compress.prune import set_mask
from imo.runs.store import RunStore


def _check(claim_id: str, tmp_path) -> dict:
    claim = CLAIMS.get(claim_id)
    figures = claim.measure("smoke", 0, Context(store=RunStore.open()))
    metric = figures[claim.rule.metric]
    assert isinstance(metric, float) and math.isfinite(metric)
    out = tmp_path / "plot.png"
    claim.plot([figures], out)
    assert out.stat().st_size > 0
    return figures


def test_lottery_tickets_smoke(tmp_path):
    f = _check("lottery-tickets", tmp_path)
    assert f["fraction_left"][0] == 1.0 and f["fraction_left"] == sorted(f["fraction_left"], reverse=True)
    assert set(f["criteria_acc"]) == {"large_final", "magnitude_increase", "large_init_large_final",
                                      "movement", "random"}
    assert f["ticket_advantage"] == pytest.approx(min(f["ticket_minus_reinit"], f["ticket_minus_random"]))
    assert len(f["char"]["bpb_ticket"]) == 2 and f["char"]["fraction_left"][1] < 1.0


def test_synflow_no_collapse_smoke(tmp_path):
    f = _check("synflow-no-collapse", tmp_path)
    assert len(f["paths_synflow"]) == len(f["compressions"])


def test_prune_plus_quantize_smoke(tmp_path):
    f = _check("prune-plus-quantize", tmp_path)
    size = dict(zip(f["points"], f["bytes"], strict=True))
    assert size["int8"] < 0.35 * size["float32"] and size["prune 50% + int8"] < size["int8"]
    assert size["prune 50%"] < 0.6 * size["float32"] and len(f["_runs"]) == len(f["points"])


def test_outlier_split_smoke(tmp_path):
    f = _check("outlier-split", tmp_path)
    assert f["induced_max_activation"] > 6.0 and f["induced_outlier_columns"] > 0
    assert f["plain_float_bpb"] == pytest.approx(f["induced_float_bpb"], abs=1e-4)


def test_induced_outliers_preserve_the_function():
    from imo.model import GPT, ModelConfig

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_embd=32, n_head=2, context_length=16)).eval()
    x = torch.randint(0, 256, (2, 16))
    before = model(x)[0]
    shrinking.induce_outliers(model)
    torch.testing.assert_close(model(x)[0], before, rtol=1e-4, atol=1e-4)


def test_collapse_detection():
    model = lottery.MLP((4, 3, 2))
    assert lottery.collapsed(model) == (False, 4 * 3 * 2)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 0] = True
    set_mask(model.layers[0], mask)
    assert lottery.collapsed(model) == (False, 2.0)
    out = torch.zeros(2, 3, dtype=torch.bool)
    out[0, 1] = True  # the only surviving hidden unit is not read by the output layer
    set_mask(model.layers[1], out)
    assert lottery.collapsed(model) == (True, 0.0)
