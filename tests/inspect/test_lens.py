"""The lens tools on tiny random models of both families: the logit lens's last layer is the
model's output, patching a whole residual reproduces the source run, patching scores are 1 and 0
where the graph says they must be, attention patterns are causal distributions, and the direct
logit attribution sums to the logit."""

import pytest
import torch

from imo.errors import ConfigError
from imo.inspect import lens
from imo.model import ModelConfig
from imo.model.families import build_model
from imo.model.hooks import run_with_cache

FAMILIES = {
    "gpt": dict(family="gpt", n_layer=3, n_embd=32, n_head=4, context_length=16, pos="learned"),
    "gpt-rope": dict(family="gpt", n_layer=2, n_embd=32, n_head=4, context_length=16, pos="rope"),
    "llama": dict(family="llama", n_layer=2, n_embd=32, n_head=4, n_kv_head=2, context_length=16,
                  pos="rope", bias=False, vocab_size=300),
}


@pytest.fixture(params=list(FAMILIES))
def model(request):
    torch.manual_seed(0)
    m = build_model(ModelConfig.from_dict(FAMILIES[request.param])).eval()
    with torch.no_grad():  # larger weights than the init, so outputs differ clearly between prompts
        for p in m.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
            elif p.dim() == 1 and m.cfg.family == "gpt":
                p.add_(0.1 * torch.randn_like(p))   # biases and norm weights away from 0/1
    return m


def prompts(model, T=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, model.cfg.vocab_size, (1, T), generator=g)
    corrupt = clean.clone()
    corrupt[0, 2] = (clean[0, 2] + 7) % model.cfg.vocab_size
    return clean, corrupt


def test_logit_lens_last_layer_is_the_model(model):
    idx, _ = prompts(model)
    out = lens.logit_lens(model, idx)
    logits, _ = run_with_cache(model, idx, [])
    assert out.shape == (model.cfg.n_layer + 1, 1, 10, model.cfg.vocab_size)
    assert torch.allclose(out[-1], logits, atol=1e-5)
    assert not torch.allclose(out[-2], logits, atol=1e-2)  # an earlier layer reads differently


def test_patching_a_whole_residual_reproduces_the_source(model):
    clean, corrupt = prompts(model)
    clean_logits, cache = run_with_cache(model, clean, None)
    corrupt_logits, _ = run_with_cache(model, corrupt, [])
    assert not torch.allclose(clean_logits, corrupt_logits, atol=1e-3)
    everywhere = torch.ones(1, 10, dtype=torch.bool)
    for layer in range(model.cfg.n_layer):
        name = f"blocks.{layer}.hook_resid_pre"
        out = lens.run_patched(model, corrupt, {name: (cache[name], everywhere)})
        assert torch.allclose(out, clean_logits, atol=1e-4), layer
    # patching only the positions before the change leaves the corrupted run as it was
    before = torch.zeros(1, 10, dtype=torch.bool)
    before[0, :2] = True
    out = lens.run_patched(model, corrupt, {"blocks.0.hook_resid_pre": (cache["blocks.0.hook_resid_pre"], before)})
    assert torch.allclose(out, corrupt_logits, atol=1e-5)


def test_patch_scan_scores(model):
    clean, corrupt = prompts(model)
    logits, _ = run_with_cache(model, clean, [])
    top2 = logits[0, -1].topk(2).indices.tolist()
    res = lens.patch_scan(model, clean, corrupt, top2[0], top2[1], kind="resid_post")
    s = res["score"]
    assert s.shape == (model.cfg.n_layer, 10)
    # after the last block only the last position reaches the last logits
    assert s[-1, -1] == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(s[-1, :-1], torch.zeros(9), atol=1e-4)
    # positions before the corrupted one hold the same activations in both runs
    assert torch.allclose(s[:, :2], torch.zeros(model.cfg.n_layer, 2), atol=1e-4)
    pre = lens.patch_scan(model, clean, corrupt, top2[0], top2[1], kind="resid_pre")["score"]
    assert pre[0, 2].abs() > 0.01  # the changed token's own residual matters at the first layer
    with pytest.raises(ConfigError, match="equal length"):
        lens.patch_scan(model, clean, corrupt[:, :5], 0, 1)
    with pytest.raises(ConfigError, match="unknown activation kind"):
        lens.patch_scan(model, clean, corrupt, 0, 1, kind="nope")


def test_attention_patterns_are_causal_distributions(model):
    idx, _ = prompts(model)
    pat = lens.attention_patterns(model, idx)
    assert pat.shape == (model.cfg.n_layer, model.cfg.n_head, 10, 10)
    assert torch.allclose(pat.sum(-1), torch.ones(pat.shape[:-1]), atol=1e-5)
    assert (pat.triu(1) == 0).all()
    assert pat.std() > 0.01  # not uniform


@pytest.mark.parametrize("position,against", [(-1, None), (4, 3)])
def test_dla_parts_sum_to_the_logit(model, position, against):
    idx, _ = prompts(model)
    logits, _ = run_with_cache(model, idx, [])
    token = int(logits[0, position].argmax())
    d = lens.direct_logit_attribution(model, idx, token, position=position, against=against)
    expect = logits[0, position, token] - (logits[0, position, against] if against is not None else 0)
    assert d["logit"] == pytest.approx(float(expect), abs=1e-5)
    assert lens.dla_total(d) == pytest.approx(d["logit"], abs=1e-3 * max(1.0, abs(d["logit"])))
    assert d["heads"].shape == (model.cfg.n_layer, model.cfg.n_head)
    assert d["heads"].abs().sum() > 0
    # the heads of a layer split its attention output: their parts and the bias part add up to
    # the direct read of hook_attn_out (taken from the model, not rebuilt from hook_z)
    L = model.cfg.n_layer
    names = [f"blocks.{i}.hook_attn_out" for i in range(L)] + [f"blocks.{L - 1}.hook_resid_post"]
    _, cache = run_with_cache(model, idx, names)
    _, _, W_U = lens._parts(model)
    u = W_U[token] - (W_U[against] if against is not None else 0)
    scale = lens.norm_scale(model, cache[names[-1]][0, position])
    for i in range(L):
        direct = (lens.final_norm_linear(model, cache[names[i]][0, position], scale) @ u).detach()
        assert float(direct) == pytest.approx(float(d["heads"][i].sum() + d["attn_bias"][i]), abs=1e-4)


def test_direction_logits_is_the_logit_change_up_to_scale(model):
    # a small step along d in the final residual changes the logits by ≈ direction_logits(d) / scale
    idx, _ = prompts(model)
    name = f"blocks.{model.cfg.n_layer - 1}.hook_resid_post"
    _, cache = run_with_cache(model, idx, [name])
    x = cache[name][0, -1]
    d = torch.randn(x.shape[0], generator=torch.Generator().manual_seed(3))
    eps = 1e-3
    change = (lens.unembed(model, x + eps * d) - lens.unembed(model, x)) / eps
    predicted = lens.direction_logits(model, d) / lens.norm_scale(model, x)
    # first order: the norm's scale also moves, which shifts every logit along W_U w ⊙ centre(x)
    corr = torch.corrcoef(torch.stack([change, predicted]))[0, 1]
    assert corr > 0.9
