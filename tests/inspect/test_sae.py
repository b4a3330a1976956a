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


ARCHS = ["topk", "batchtopk", "jumprelu", "relu-l1"]


def test_every_architecture_is_registered():
    assert sorted(S.ARCHS.names()) == sorted(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_init_encoder_is_decoder_transpose_and_unit_norm(arch):
    sae = S.build(8, S.SAEConfig(arch=arch, latents=12, k=2))
    assert torch.allclose(sae.W_enc, sae.W_dec.T)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(12), atol=1e-6)


# per architecture: (steps, config) that recover the 32 synthetic features
RECOVER = {"topk": (600, {}), "batchtopk": (1000, {}), "relu-l1": (1500, dict(l1=1.0)),
           "jumprelu": (600, dict(l0_coef=0.1, threshold=1.0))}


@pytest.mark.parametrize("arch", ARCHS)
def test_recovers_ground_truth_features(arch):
    acts, F = synthetic()
    steps, extra = RECOVER[arch]
    cfg = S.SAEConfig(arch=arch, latents=32, k=2, steps=steps, batch=512, lr=3e-3, dead_after=2000, **extra)
    sae = S.train_sae(acts, cfg)
    assert not sae.training  # evaluation mode: batchtopk then uses its threshold
    m = S.evaluate(sae, acts)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(32), atol=1e-5)
    assert m["fvu"] < 0.2
    if arch == "topk":
        assert m["l0"] <= 2.0
    if arch in ("batchtopk", "jumprelu"):
        assert 1.0 < m["l0"] < 3.0
    cos = np.abs(F @ sae.W_dec.detach().numpy().T).max(1)
    assert cos.mean() > 0.9


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu"])
def test_auxk_gives_dead_latents_a_gradient(arch):
    # with k=1 most latents get no gradient from the reconstruction; AuxK must reach the ones
    # marked dead (and only those), through the encoder
    acts, _ = synthetic(n=256)
    x = torch.from_numpy(acts)
    dead = torch.zeros(32, dtype=torch.bool)
    dead[16:] = True
    grads = {}
    for coef in (0.0, 1 / 32):
        sae = S.build(16, S.SAEConfig(arch=arch, latents=32, k=1, aux_k=4, aux_coef=coef, threshold=3.0))
        sae.prepare(x.mean(0), float(((x - x.mean(0)) ** 2).sum(-1).mean()))
        loss, _ = sae.loss(x, 1.0, dead)
        loss.backward()
        grads[coef] = sae.W_enc.grad.abs().sum(0)
    live_only, with_aux = grads[0.0], grads[1 / 32]
    assert torch.allclose(with_aux[~dead], live_only[~dead])     # live latents: same gradient
    assert (with_aux[dead] > live_only[dead]).sum() >= 8          # dead ones now learn


def test_sparse_training_path_matches_the_dense_definition():
    # topk's loss decodes k (index, value) pairs; its gradient must equal the dense f @ W_dec form
    acts, _ = synthetic(n=128)
    x = torch.from_numpy(acts)
    sae = S.build(16, S.SAEConfig(latents=32, k=3, aux_coef=0.0))
    with torch.no_grad():
        sae.b_dec.copy_(x.mean(0) + 0.1)
        sae.b_enc.uniform_(-0.1, 0.1)
    loss, _ = sae.loss(x, 2.0, torch.zeros(32, dtype=torch.bool))
    grads = torch.autograd.grad(loss, list(sae.parameters()))
    dense = ((sae.decode(sae.code((x - sae.b_dec) @ sae.W_enc + sae.b_enc)) - x) ** 2).sum(-1).mean() / 2.0
    assert torch.allclose(loss, dense, atol=1e-6)
    for g, h in zip(grads, torch.autograd.grad(dense, list(sae.parameters())), strict=True):
        assert torch.allclose(g, h, atol=1e-5)


def test_batchtopk_keeps_k_per_token_on_average_and_learns_a_threshold():
    acts, _ = synthetic(n=512)
    x = torch.from_numpy(acts)
    sae = S.build(16, S.SAEConfig(arch="batchtopk", latents=32, k=3))
    sae.prepare(x.mean(0), 1.0)
    f, smallest = sae._batch_code(sae.pre(x))
    assert int((f > 0).sum()) == 3 * len(x)               # k·B over the batch ...
    assert (f > 0).sum(-1).max() > 3                       # ... not k per token
    assert float(smallest) == float(f[f > 0].detach().min())
    sae.loss(x, 1.0, torch.zeros(32, dtype=torch.bool))
    assert float(sae.threshold) == pytest.approx(float(smallest))
    sae.eval()  # inference: the threshold decides, and it is saved with the SAE
    assert torch.equal(sae.encode(x), (lambda p: p * (p > sae.threshold))(sae.pre(x)))
    back = S.load(*S.state(sae))
    assert float(back.threshold) == float(sae.threshold) and torch.equal(back(x), sae(x))


def test_jumprelu_thresholds_learn_from_the_l0_penalty():
    # the straight-through gradient reaches the thresholds, and a larger L0 coefficient gives
    # higher thresholds and fewer active latents
    acts, _ = synthetic(n=2000)
    l0 = {}
    for coef in (0.01, 0.3):
        sae = S.train_sae(acts, S.SAEConfig(arch="jumprelu", latents=32, steps=300, batch=256, lr=3e-3,
                                            l0_coef=coef, aux_coef=0.0))
        l0[coef] = (S.evaluate(sae, acts)["l0"], float(sae.log_threshold.detach().mean()))
    assert l0[0.3][0] < l0[0.01][0] and l0[0.3][1] > l0[0.01][1] > np.log(S.SAEConfig().threshold) - 1
    sae = S.build(16, S.SAEConfig(arch="jumprelu", latents=32))
    x = torch.from_numpy(acts[:64])
    sae.prepare(x.mean(0), float(((x - x.mean(0)) ** 2).sum(-1).mean()))
    loss, _ = sae.loss(x, 1.0, torch.zeros(32, dtype=torch.bool))
    loss.backward()
    assert sae.log_threshold.grad.abs().sum() > 0


def test_evaluate_definitions():
    sae = S.build(4, S.SAEConfig(latents=4, k=4, arch="relu-l1")).eval()
    with torch.no_grad():  # an exact identity: W_enc = W_dec = I, no bias
        sae.W_dec.copy_(torch.eye(4))
        sae.W_enc.copy_(torch.eye(4))
    x = np.abs(np.random.default_rng(0).normal(size=(50, 4))).astype(np.float32)
    x[:, 3] = 0  # latent 3 never fires
    m = S.evaluate(sae, x)
    assert m["fvu"] == pytest.approx(0.0, abs=1e-10)
    assert m["dead"] == 0.25 and m["l0"] == pytest.approx(3.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip(arch):
    acts, _ = synthetic(n=300)
    sae = S.train_sae(acts, S.SAEConfig(arch=arch, latents=16, k=2, steps=5, batch=64))
    tensors, cfg = S.state(sae)
    back = S.load(tensors, cfg)
    x = torch.from_numpy(acts[:10])
    assert torch.equal(back(x), sae(x))


def test_bad_config():
    with pytest.raises(ConfigError, match="unknown SAE architecture"):
        S.SAEConfig(arch="nope").check()
    with pytest.raises(ConfigError):
        S.SAEConfig(latents=4, k=8).check()


def test_loss_recovered_is_one_for_an_exact_sae_and_zero_for_a_zero_one():
    from imo.model import GPT, ModelConfig

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_embd=8, n_head=2, context_length=16)).eval()
    windows = torch.randint(0, 256, (3, 16))
    sae = S.build(8, S.SAEConfig(latents=16, k=8)).eval()
    with torch.no_grad():  # latents ±e_i: the top 8 of [x, -x] are its positive and negative parts
        eye = torch.eye(8)
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.W_enc.copy_(torch.cat([eye, -eye]).T)
    m = S.loss_recovered(model, sae, "blocks.0.hook_resid_post", windows)
    assert m["loss_recovered"] == pytest.approx(1.0, abs=1e-4) and m["loss_recovered_mean"] == pytest.approx(1.0, abs=1e-4)
    assert m["kl_sae"] == pytest.approx(0.0, abs=1e-5) and m["ce_sae"] == pytest.approx(m["ce_clean"], abs=1e-5)
    assert m["ce_zero"] != m["ce_mean"]
    with torch.no_grad():
        sae.W_dec.zero_()
    m = S.loss_recovered(model, sae, "blocks.0.hook_resid_post", windows)
    assert m["loss_recovered"] == pytest.approx(0.0, abs=1e-6) and m["kl_sae"] > 0
