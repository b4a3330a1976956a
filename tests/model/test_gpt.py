"""Contract tests of the GPT over every (position encoding, attention backend) pair."""

import itertools

import pytest
import torch

from imo.errors import ConfigError
from imo.model import GPT, ModelConfig
from imo.model.attention import BACKENDS
from imo.model.hooks import run_with_cache
from imo.model.positions import POSITIONS, alibi_slopes

POS = POSITIONS.names()
ATTN = BACKENDS.names()


def tiny(pos="learned", attn="naive", **kw) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_embd=32, n_head=4, context_length=64, pos=pos, attn=attn, attn_tile=8, **kw)
    return GPT(cfg).eval()


@pytest.mark.parametrize("pos,attn", list(itertools.product(POS, ATTN)))
def test_causal(pos, attn):
    model = tiny(pos, attn)
    x = torch.randint(0, 256, (2, 21))
    t = 13
    y = x.clone()
    y[:, t] = (y[:, t] + 1) % 256
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    assert torch.equal(a[:, :t], b[:, :t])  # nothing before t may change
    assert not torch.allclose(a[:, t:], b[:, t:])  # and the change is seen from t on


@pytest.mark.parametrize("pos", POS)
@pytest.mark.parametrize("attn", ["tiled", "sdpa"])
@pytest.mark.parametrize("T", [1, 7, 8, 19, 64])
def test_backends_agree_with_naive(pos, attn, T):
    ref, other = tiny(pos, "naive"), tiny(pos, attn)
    other.load_state_dict(ref.state_dict())
    x = torch.randint(0, 256, (2, T))
    la, lossa = ref(x, x)
    lb, lossb = other(x, x)
    torch.testing.assert_close(lb, la, atol=2e-5, rtol=1e-4)
    ga = torch.autograd.grad(lossa, list(ref.parameters()))
    gb = torch.autograd.grad(lossb, list(other.parameters()))
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-3)


def one_layer(pos, attn="naive") -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=1, n_embd=32, n_head=4, context_length=64, pos=pos, attn=attn, attn_tile=8)).eval()


def shuffled_prefix(x: torch.Tensor) -> torch.Tensor:
    """Permute all but the last token, making sure the sequence really changes."""
    g = torch.Generator().manual_seed(0)
    while True:
        perm = torch.cat([torch.randperm(x.size(1) - 1, generator=g), torch.tensor([x.size(1) - 1])])
        if not torch.equal(x[:, perm], x):
            return x[:, perm]


def last_attention_output_change(model: GPT) -> float:
    """Relative change of the last position's attention output when the prefix is shuffled."""
    x = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(1))
    name = "blocks.0.hook_attn_out"
    _, a = run_with_cache(model, x, [name])
    _, b = run_with_cache(model, shuffled_prefix(x), [name])
    a, b = a[name][0, -1], b[name][0, -1]
    return float((a - b).norm() / a.norm())


@pytest.mark.parametrize("attn", ATTN)
def test_no_positions_is_permutation_invariant_over_the_prefix(attn):
    """Without positions, a layer's last output is a function of the *set* of earlier tokens:
    shuffling the prefix leaves it unchanged (up to the order of a float sum)."""
    model = one_layer("none", attn)
    x = torch.randint(0, 256, (1, 16))
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(shuffled_prefix(x))
    torch.testing.assert_close(a[:, -1], b[:, -1], atol=1e-5, rtol=0)
    assert last_attention_output_change(model) < 1e-5


@pytest.mark.parametrize("attn", ATTN)
def test_attention_without_positions_is_permutation_equivariant(attn):
    """With every key visible (q_offset >= T) and no position, permuting q, k, v permutes the
    output the same way: attention treats x.y and y.x alike."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 12, 8) for _ in range(3))
    perm = torch.randperm(12)
    fn = BACKENDS.get(attn)
    out = fn(q, k, v, q_offset=12)
    out_perm = fn(q[:, :, perm], k[:, :, perm], v[:, :, perm], q_offset=12)
    torch.testing.assert_close(out_perm, out[:, :, perm], atol=1e-6, rtol=0)


@pytest.mark.parametrize("pos", [p for p in POS if p != "none"])
def test_positions_break_symmetry(pos):
    # at initialisation the pattern is near uniform, so the effect is small, yet 100x above the
    # float noise that is all a shuffle changes without positions
    assert last_attention_output_change(one_layer(pos)) > 1e-3


def test_rope_scores_depend_only_on_relative_position():
    model = tiny("rope")
    enc = model.positions
    torch.manual_seed(1)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m: int, n: int) -> float:
        qm = enc.rotate(q, torch.tensor([m]))
        kn = enc.rotate(k, torch.tensor([n]))
        return float((qm * kn).sum())

    assert score(5, 2) == pytest.approx(score(105, 102), abs=1e-4)
    assert score(7, 7) == pytest.approx(score(0, 0), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)


def test_rope_scale_is_position_interpolation():
    a = tiny("rope", rope_scale=0.25).positions
    b = tiny("rope").positions
    x = torch.randn(1, 1, 4, 8)
    torch.testing.assert_close(a.rotate(x, torch.arange(4) * 4), b.rotate(x, torch.arange(4) * 1.0))


def test_alibi_slopes_match_press_et_al():
    # Press et al. 2022: for 8 heads the slopes are 1/2, 1/4, ..., 1/256
    assert alibi_slopes(8).tolist() == [2.0 ** -(i + 1) for i in range(8)]
    assert alibi_slopes(4).tolist() == [2.0 ** -(2 * (i + 1)) for i in range(4)]
    # non-power of two: the 4-head slopes then every other of the 8-head slopes
    assert alibi_slopes(6).tolist() == alibi_slopes(4).tolist() + alibi_slopes(8).tolist()[0::2][:2]


def test_learned_table_length_is_enforced():
    model = tiny("learned")
    with pytest.raises(ConfigError, match="longer than the learned position table"):
        model(torch.zeros(1, 65, dtype=torch.long))
    tiny("rope")(torch.zeros(1, 65, dtype=torch.long))  # rope has no table: fine


@pytest.mark.parametrize(
    "kw,msg",
    [
        (dict(pos="rotary"), "unknown position encoding 'rotary'; choose one of"),
        (dict(attn="flash"), "unknown attention backend 'flash'; choose one of"),
        (dict(n_head=5), "does not divide"),
        (dict(dropout=1.5), "dropout"),
        (dict(n_layer=0), "n_layer must be a positive"),
    ],
)
def test_bad_config(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        ModelConfig(**kw)


def test_presets_have_the_promised_sizes():
    sizes = {name: GPT(ModelConfig.preset(name)).num_params() for name in ("tiny", "small")}
    assert 0.7e6 < sizes["tiny"] < 0.95e6
    assert 4.5e6 < sizes["small"] < 5.5e6
    with pytest.raises(ConfigError, match="unknown preset"):
        ModelConfig.preset("huge")


def test_run_with_cache_names_and_shapes():
    model = tiny("alibi", "sdpa")
    x = torch.randint(0, 256, (2, 10))
    logits, cache = run_with_cache(model, x)
    assert cache["blocks.1.attn.hook_pattern"].shape == (2, 4, 10, 10)
    torch.testing.assert_close(cache["blocks.1.attn.hook_pattern"].sum(-1), torch.ones(2, 4, 10))
    assert cache["blocks.0.mlp.hook_post"].shape == (2, 10, 128)
    assert model.transformer.h[0].attn.backend == "sdpa"  # restored after the call
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x)[0], atol=2e-5, rtol=1e-4)


def test_hook_can_edit_activations():
    from imo.model.hooks import hooks

    model = tiny("rope")
    x = torch.randint(0, 256, (1, 8))
    with torch.no_grad():
        base, _ = model(x)
        with hooks(model, {"blocks.0.hook_attn_out": lambda a: torch.zeros_like(a)}):
            edited, _ = model(x)
    assert not torch.allclose(base, edited)
    with pytest.raises(ConfigError, match="unknown hook point"):
        with hooks(model, {"blocks.9.nope": lambda a: a}):
            pass


def test_nanogpt_parameter_names():
    names = set(tiny("learned").state_dict_for_save())
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
            "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.weight"} <= names
    assert "lm_head.weight" not in names  # tied: stored once


def test_multi_token_heads():
    torch.manual_seed(0)
    base = ModelConfig(n_layer=2, n_embd=32, n_head=4, context_length=16, pos="rope")
    one, three = GPT(base), GPT(base.replace(n_future=3))
    assert three.num_params() > one.num_params()
    x = torch.randint(0, 256, (2, 16))
    y = torch.roll(x, -1, 1)
    three.load_state_dict(one.state_dict(), strict=False)  # same trunk and next-byte head
    one.eval(), three.eval()
    l1, loss1 = one(x, y)
    l3, loss3 = three(x, y)
    assert torch.equal(l1, l3) and torch.equal(loss1, loss3)  # eval: next-byte loss only
    three.train()
    _, train_loss = three(x, y)
    assert not torch.allclose(train_loss, loss3)  # training averages the three heads
    train_loss.backward()
    assert all(p.grad is not None for p in three.future.parameters())
