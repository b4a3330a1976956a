"""SAEs at tiny sizes: init and norms, ground-truth recovery on synthetic sparse data, AuxK
revives dead latents, evaluation definitions, loss recovered on a tiny model, save/load."""

import numpy as np
import pytest
import torch

from imo.errors import ConfigError
from imo.inspect import sae as S


def synthetic(n=4000, d=16, feats=32, active=2, seed=0):
    g = np.random.default_rng(seed)
    F = g.normal(size=(feats, d))
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    codes = np.zeros((n, feats))
    for i in range(n):
        idx = g.choice(feats, active, replace=False)
        codes[i, idx] = g.uniform(0.5, 1.5, active)
    return (codes @ F).astype(np.float32), F


def test_init_encoder_is_decoder_transpose_and_unit_norm():
    sae = S.build(8, S.SAEConfig(latents=12, k=2))
    assert torch.allclose(sae.W_enc, sae.W_dec.T)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(12), atol=1e-6)


@pytest.mark.parametrize("arch,steps", [("topk", 600), ("relu-l1", 1500)])
def test_recovers_ground_truth_features(arch, steps):
    acts, F = synthetic()
    cfg = S.SAEConfig(arch=arch, latents=32, k=2, l1=1.0, steps=steps, batch=512, lr=3e-3, dead_after=2000)
    sae = S.train_sae(acts, cfg)
    m = S.evaluate(sae, acts)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(32), atol=1e-5)
    assert m["fvu"] < 0.2
    if arch == "topk":
        assert m["l0"] <= 2.0
    cos = np.abs(F @ sae.W_dec.detach().numpy().T).max(1)
    assert cos.mean() > 0.9


def test_auxk_gives_dead_latents_a_gradient():
    # with k=1 most latents get no gradient from the reconstruction; AuxK must reach the ones
    # marked dead (and only those), through the encoder
    acts, _ = synthetic(n=256)
    x = torch.from_numpy(acts)
    dead = torch.zeros(32, dtype=torch.bool)
    dead[16:] = True
    grads = {}
    for coef in (0.0, 1 / 32):
        sae = S.build(16, S.SAEConfig(latents=32, k=1, aux_k=4, aux_coef=coef))
        with torch.no_grad():
            sae.b_dec.copy_(x.mean(0))
        loss, _ = sae.loss(x, 1.0, dead)
        loss.backward()
        grads[coef] = sae.W_enc.grad.abs().sum(0)
    live_only, with_aux = grads[0.0], grads[1 / 32]
    assert torch.allclose(with_aux[~dead], live_only[~dead])     # live latents: same gradient
    assert (with_aux[dead] > live_only[dead]).sum() >= 8          # dead ones now learn


def test_evaluate_definitions():
    sae = S.build(4, S.SAEConfig(latents=4, k=4, arch="relu-l1"))
    with torch.no_grad():  # an exact identity: W_enc = W_dec = I, no bias
        sae.W_dec.copy_(torch.eye(4))
        sae.W_enc.copy_(torch.eye(4))
    x = np.abs(np.random.default_rng(0).normal(size=(50, 4))).astype(np.float32)
    x[:, 3] = 0  # latent 3 never fires
    m = S.evaluate(sae, x)
    assert m["fvu"] == pytest.approx(0.0, abs=1e-10)
    assert m["dead"] == 0.25 and m["l0"] == pytest.approx(3.0)


def test_save_load_round_trip():
    acts, _ = synthetic(n=300)
    sae = S.train_sae(acts, S.SAEConfig(latents=16, k=2, steps=5, batch=64))
    tensors, cfg = S.state(sae)
    back = S.load(tensors, cfg)
    x = torch.from_numpy(acts[:10])
    assert torch.equal(back(x), sae(x))


def test_bad_config():
    with pytest.raises(ConfigError, match="unknown SAE architecture"):
        S.SAEConfig(arch="nope").check()
    with pytest.raises(ConfigError):
        S.SAEConfig(latents=4, k=8).check()
