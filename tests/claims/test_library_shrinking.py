"""Shrinking claims: each smoke measurement returns finite figures with its rule's metric and
draws its plot; the outlier inducer preserves the function; collapse detection is right."""

import math

import pytest
import torch

from imo.claims.library import _shrinking_models as _models
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
    # fair arms: every arm, the float32 reference included, got the same fine-tuning (none),
    # as read back from each stored run's transform history
    assert f["finetune_steps_per_arm"] == [0] * len(f["points"]) and f["finetune_steps"] == 0
    store = RunStore.open()
    for run in f["_runs"][1:]:
        for step in store.get(run)["config"]["compress"]["steps"]:
            assert step.get("finetune_steps", 0) == 0, step


def test_prune_plus_quantize_refuses_unequal_fine_tuning(monkeypatch):
    """If one arm were fine-tuned and its rivals not (v1 of the claim), the measurement stops."""
    real = shrinking.prune_run

    def tuned(*args, **kw):
        return real(*args, **{**kw, "finetune_steps": 2})

    monkeypatch.setattr(shrinking, "prune_run", tuned)
    with pytest.raises(RuntimeError, match="unequal fine-tuning"):
        shrinking.measure_frontier("smoke", 0, Context(store=RunStore.open()))


def test_finetune_steps_are_counted_over_the_transform_history():
    class Store:
        def get(self, run):
            steps = {"p": [{"op": "prune", "finetune_steps": 5}, {"op": "quantize", "bits": 8}],
                     "q": [{"op": "quantize", "bits": 8}]}[run]
            return {"config": {"compress": {"steps": steps}}}

    assert _models.finetune_steps_from_base(Store(), "p", "base") == 5
    assert _models.finetune_steps_from_base(Store(), "q", "base") == 0
    assert _models.finetune_steps_from_base(Store(), "base", "base") == 0


def test_sensitivity_probe_reads_training_bytes_not_validation():
    from imo.data.corpora import load_corpus

    corpus = load_corpus("python-docs")
    probe = _models.probe_bytes("python-docs", 1000)
    assert len(probe) == 1000 and bytes(probe) == bytes(corpus.train[-1000:])
    assert bytes(probe) not in bytes(corpus.val)


def test_lottery_plot_draws_the_char_panel_only_with_data(tmp_path, monkeypatch):
    base = {"fraction_left": [1.0, 0.5], "acc_ticket": [0.9, 0.8], "acc_reinit": [0.9, 0.7],
            "acc_random": [0.9, 0.6], "criteria_ranked": ["large_final", "random"],
            "criteria_acc": {"large_final": 0.8, "random": 0.5}}
    nan = float("nan")
    assert shrinking.char_curves([base]) == []  # the quick budget runs no char lottery
    assert shrinking.char_curves([{**base, "char": {"fraction_left": [1.0], "bpb_ticket": [nan],
                                                    "bpb_reinit": [nan]}}]) == []
    good = {"fraction_left": [1.0, 0.8], "bpb_ticket": [3.0, nan], "bpb_reinit": [3.0, 3.2]}
    assert shrinking.char_curves([{**base, "char": good}]) == [
        {"fraction_left": [1.0], "bpb_ticket": [3.0], "bpb_reinit": [3.0]}]
    panels = []
    real = shrinking.plt.subplots

    def spy(*args, **kw):
        fig, axes = real(*args, **kw)
        panels.append(axes)
        return fig, axes

    monkeypatch.setattr(shrinking.plt, "subplots", spy)
    for figures, n in (([base], 2), ([{**base, "char": good}], 3)):
        shrinking.plot_lottery(figures, tmp_path / "p.png")
        assert len(panels[-1]) == n
        assert all(ax.has_data() for ax in panels[-1])  # no drawn panel is empty


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
