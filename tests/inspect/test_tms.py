"""Toy models of superposition at tiny sizes: measures on hand-made W, the batched trainer, the
phase theory and classifier, and the CLI end to end."""

import json

import pytest
import torch

from imo.cli import main
from imo.errors import ConfigError
from imo.inspect import tms


def test_dimensions_per_feature_on_known_geometries():
    # a dedicated dimension (1), an antipodal pair (1/2 each), and a feature left out (0)
    W = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, -1.0, 0.0]])
    D = tms.dimensions_per_feature(W)
    assert torch.allclose(D, torch.tensor([1.0, 0.5, 0.5, 0.0]), atol=1e-6)
    assert tms.dimensions_per_represented_feature(W).item() == pytest.approx(2 / 3)
    assert torch.allclose(tms.interference(W), torch.tensor([0.0, 1.0, 1.0, 0.0]))


def test_classify_phases():
    W = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, -1.0]], [[0.9, 0.1]]])
    assert tms.classify(W).tolist() == [0, 1, 2, 0]


def test_dense_keeps_m_features_and_sparse_superposes():
    # two sparsities in one batched run: dense data keeps exactly the m most important features
    # (PCA-like), sparse data keeps more than m
    cfg = tms.TMSConfig(n=6, m=2, sparsities=(0.0, 0.95), steps=1500, batch=256, lr=1e-2, seed=1)
    res = tms.train_tms(cfg)
    kept = (tms.feature_norms(res.W) > tms.REPRESENTED).sum(-1)
    assert kept[0].item() == 2                      # dense: PCA-like, the two most important
    assert kept[1].item() > 2                       # sparse: superposition
    assert tms.dimensions_per_represented_feature(res.W[0]).item() == pytest.approx(1.0, abs=0.05)
    norms0 = tms.feature_norms(res.W[0])
    assert norms0[:2].min() > 0.9 and norms0[2:].max() < 0.3


def test_one_hidden_unit_path_matches_the_general_forward():
    g = torch.Generator().manual_seed(0)
    W, b, x = torch.randn(3, 1, 2, generator=g), torch.randn(3, 2, generator=g), torch.rand(3, 8, 2, generator=g)
    general = torch.relu(torch.einsum("kmn,kbm->kbn", W, torch.einsum("kmn,kbn->kbm", W, x)) + b[:, None])
    assert torch.allclose(tms.forward(W, b, x), general, atol=1e-6)


def test_training_is_deterministic():
    cfg = tms.TMSConfig(n=4, m=2, sparsities=(0.5,), steps=50, batch=64, seed=3)
    a, b = tms.train_tms(cfg), tms.train_tms(cfg)
    assert torch.equal(a.W, b.W) and torch.equal(a.loss, b.loss)


def test_theory_has_the_papers_three_regions():
    cfg = tms.PhaseConfig(size=5, density=(0.01, 1.0), importance=(0.1, 10.0))
    phase, _ = tms.theory_phases(cfg, steps=300)
    assert phase[-1, 0].item() == 0      # dense, extra feature unimportant: dropped
    assert phase[-1, -1].item() == 1     # dense, extra feature important: it takes the dimension
    assert phase[0, 2].item() == 2       # sparse, equal importance: antipodal superposition


@pytest.mark.slow
def test_trained_phase_diagram_agrees_with_theory():
    cfg = tms.PhaseConfig(size=4, seeds=2, steps=1500, batch=512)
    theory, _ = tms.theory_phases(cfg, steps=300)
    emp = tms.train_phase_diagram(cfg)
    assert (emp["phase"] == theory).float().mean().item() >= 0.75


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError):
        tms.TMSConfig(sparsities=(1.0,)).check()
    with pytest.raises(ConfigError):
        tms.PhaseConfig(density=(0.0, 1.0)).check()


def run(capsys, args: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code or 0, capsys.readouterr().err


def test_cli_writes_figures_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "tms"
    args = ["inspect", "tms", "-o", str(out), "--n", "5", "--m", "2", "--sparsities", "0,0.9",
            "--steps", "30", "--batch", "32"]
    assert run(capsys, args) == (0, "")
    assert (out / "tms_wtw.png").stat().st_size > 1000
    assert (out / "tms_dimensionality.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert [r["sparsity"] for r in summary["sparsities"]] == [0.0, 0.9]
    code, err = run(capsys, args)
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 2  # error + hint
    assert run(capsys, args + ["--force", "--phase", "--grid", "2", "--phase-seeds", "1", "--phase-steps", "20"])[0] == 0
    assert (out / "tms_phase.png").exists()
    assert "agreement" in json.loads((out / "summary.json").read_text())["phase"]


def test_cli_rejects_bad_sparsities(tmp_path, capsys):
    code, err = run(capsys, ["inspect", "tms", "-o", str(tmp_path), "--sparsities", "0,abc"])
    assert code == 2 and "sparsities" in err
    assert not (tmp_path / "summary.json").exists()
