"""Mixture of experts (imo.model.moe, imo.learn.moe): causal routing, cached decode equal to the
full forward under every position encoding and attention backend, the Switch balance loss's
values, capacity dropping in training only, a save/load round trip, and clean CLI errors."""

import math

import pytest
import torch

from imo.engine.cache import KVCache
from imo.errors import ConfigError
from imo.model.config import ModelConfig
from imo.model.moe import MoEConfig, MoEGPT, MoEMLP, balance_loss, load_cv, training_flops_per_token
from imo.train.flops import flops_per_token


def tiny(**kw) -> ModelConfig:
    return ModelConfig(n_layer=2, n_head=2, n_embd=16, context_length=32, **kw)


def model_of(cfg=None, moe=None, seed=0) -> MoEGPT:
    torch.manual_seed(seed)
    return MoEGPT(cfg or tiny(), moe or MoEConfig(experts=4, top_k=2)).eval()


def test_routing_is_causal_at_eval():
    m = model_of()
    x = torch.randint(0, 256, (2, 20))
    x2 = x.clone()
    x2[:, 12:] = torch.randint(0, 256, (2, 8))
    with torch.no_grad():
        a, b = m(x)[0], m(x2)[0]
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("pos", ["learned", "rope", "alibi", "sinusoidal", "none"])
@pytest.mark.parametrize("attn", ["naive", "sdpa", "tiled"])
def test_cached_decode_equals_full_forward(pos, attn):
    m = model_of(tiny(pos=pos, attn=attn, attn_tile=4))
    x = torch.randint(0, 256, (1, 14))
    with torch.no_grad():
        full = m(x)[0]
        cache = KVCache.for_model(m)
        steps = [m(x[:, :6], cache=cache)[0]]
        for t in range(6, 14):
            steps.append(m(x[:, t : t + 1], cache=cache)[0])
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


def test_balance_loss_uniform_is_one_and_collapsed_is_E():
    E, N = 8, 64
    uniform = torch.full((N, E), 1.0 / E)
    top1 = (torch.arange(N) % E)[:, None]  # every expert gets N/E tokens
    assert balance_loss(uniform, top1, E).item() == pytest.approx(1.0)
    top2 = torch.stack([torch.arange(N) % E, (torch.arange(N) + 1) % E], 1)
    assert balance_loss(uniform, top2, E).item() == pytest.approx(1.0)
    collapsed = torch.zeros(N, E)
    collapsed[:, 0] = 1.0
    assert balance_loss(collapsed, torch.zeros(N, 1, dtype=torch.long), E).item() == pytest.approx(E)
    # by hand: f = (3/4, 1/4), P = (0.6, 0.4): 2 * (0.45 + 0.1) = 1.1
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5], [0.3, 0.7]])
    chosen = torch.tensor([[0], [0], [0], [1]])
    assert balance_loss(probs, chosen, 2).item() == pytest.approx(1.1)


def test_gates_renormalised_and_output_is_the_gated_experts():
    cfg, moe = tiny(), MoEConfig(experts=4, top_k=2, capacity_factor=0)
    torch.manual_seed(0)
    layer = MoEMLP(cfg, moe).eval()
    x = torch.randn(5, 16)
    with torch.no_grad():
        y = layer(x)
        p = torch.softmax(layer.router(x), -1)
        g, idx = p.topk(2, -1)
        g = g / g.sum(-1, keepdim=True)
        ref = torch.stack([sum(g[n, j] * layer.expert(int(idx[n, j]), x[n]) for j in range(2)) for n in range(5)])
    assert torch.allclose(y, ref, atol=1e-6)
    assert layer.load.sum().item() == 10


def test_capacity_drops_in_training_only():
    cfg, moe = tiny(), MoEConfig(experts=4, top_k=1, capacity_factor=1.0)
    torch.manual_seed(0)
    layer = MoEMLP(cfg, moe)
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0, 0] = 10.0  # every token with x[0] > 0 prefers expert 0
    x = torch.randn(64, 16).abs()
    layer.train()
    y = layer(x)
    cap = math.ceil(64 * 1 / 4)
    assert layer.dropped == 64 - cap
    assert (y.abs().sum(-1) == 0).sum().item() == 64 - cap  # dropped tokens: no expert output
    assert (y[:cap].abs().sum(-1) > 0).all()  # earlier tokens first
    layer.eval()
    layer.reset_load()
    y = layer(x)
    assert layer.dropped == 0 and (y.abs().sum(-1) > 0).all()


def test_training_loss_adds_aux_and_eval_loss_does_not():
    from imo.model.gpt import GPT

    m = model_of(moe=MoEConfig(experts=4, top_k=2, aux_coef=0.5))
    x, y = torch.randint(0, 256, (2, 16)), torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        ev = m(x, y)[1]
        assert ev.item() == pytest.approx(GPT.forward(m, x, y)[1].item())  # eval: cross-entropy alone
        m.train()  # dropout is 0: training differs by the capacity and the aux term only
        tr = m(x, y)[1]
        aux = m.aux_loss()
        ce = GPT.forward(m, x, y)[1]
    assert aux.item() > 0.9
    assert tr.item() == pytest.approx(ce.item() + 0.5 * aux.item())


def test_dense_arm_is_a_plain_mlp_and_params_count():
    cfg = tiny()
    d = model_of(cfg, MoEConfig(experts=1, top_k=1, hidden=128))
    assert d.moe_layers()[0].router is None
    p = model_of(cfg, MoEConfig(experts=8, top_k=2)).params()
    assert cfg.bias
    per_expert = 2 * 16 * 64 + 64 + 16  # two matrices and two biases
    assert p["total"] - p["active"] == 2 * 6 * per_expert
    # equal active parameters: dense width 2 x 4C has the MoE's active MLP matrices; the router
    # (C x E per layer) and the second expert's output bias (C per layer) aside
    assert d.params()["total"] == p["active"] - 2 * 16 * 8 - 2 * 16
    # the dense width-4C model counts FLOPs as imo.train.flops does; MoE adds k experts and the router
    assert training_flops_per_token(cfg, MoEConfig(experts=1, top_k=1)) == flops_per_token(cfg)
    moe = training_flops_per_token(cfg, MoEConfig(experts=8, top_k=2))
    assert moe - flops_per_token(cfg) == 6 * 2 * (per_expert + 16 * 8)


def test_save_load_round_trip(tmp_path):
    from safetensors.torch import load_file, save_file

    m = model_of(tiny(pos="rope"))
    save_file(m.state_dict_for_save(), tmp_path / "w.safetensors")
    m2 = MoEGPT(tiny(pos="rope"), MoEConfig(experts=4, top_k=2)).eval()
    m2.load_saved_state(load_file(tmp_path / "w.safetensors"))
    x = torch.randint(0, 256, (1, 10))
    with torch.no_grad():
        assert torch.equal(m(x)[0], m2(x)[0])
    assert MoEConfig.from_dict(MoEConfig(experts=4, top_k=2).to_dict()) == MoEConfig(experts=4, top_k=2)


def test_load_cv():
    assert load_cv(torch.tensor([5, 5, 5, 5])) == 0.0
    assert load_cv(torch.tensor([4, 0, 0, 0])) == pytest.approx(math.sqrt(3))


@pytest.mark.parametrize("kw, fragment", [
    (dict(experts=0), "experts must be a positive integer"),
    (dict(experts=4, top_k=5), "top-k must be an integer in 1..experts"),
    (dict(top_k=0), "top-k"),
    (dict(capacity_factor=0.5), "capacity factor"),
    (dict(aux_coef=-1.0), "aux coefficient"),
    (dict(hidden=-3), "hidden"),
])
def test_bad_config(kw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        MoEConfig(**kw)


def _run(capsys, args):
    from imo.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


@pytest.mark.parametrize("args, fragment", [
    (["--experts", "0"], "experts must be a positive integer"),
    (["--experts", "4", "--top-k", "6"], "top-k must be an integer in 1..experts (4)"),
    (["--capacity-factor", "0.3"], "capacity factor"),
    (["--steps", "0"], "--steps"),
])
def test_cli_errors(capsys, args, fragment):
    code, out, err = _run(capsys, ["learn", "moe", *args])
    assert code == 2 and fragment in err and "Traceback" not in err + out


def test_cli_help(capsys):
    code, out, _ = _run(capsys, ["learn", "moe", "--help"])
    assert code == 0 and "--top-k" in out


def test_cli_trains_records_and_reloads(capsys, tmp_path):
    from imo.learn.moe import KIND, load_moe_model
    from imo.runs.store import RunStore

    path = tmp_path / "c.txt"
    path.write_bytes(bytes(range(32, 127)) * 60)
    args = ["learn", "moe", "--experts", "4", "--top-k", "2", "--steps", "3", "--batch", "2", "--context", "16",
            "--corpus", f"file:{path}", "--quiet", "--eval-bytes", "200", "--warmup", "1"]
    code, out, err = _run(capsys, args)
    assert code == 0, err
    assert "bits/byte" in out and "FLOPs" in out and "coefficient of variation" in out and " e3 " in out
    store = RunStore.open()
    runs = store.list(kind=KIND)
    assert len(runs) == 1
    model, meta = load_moe_model(store.run_dir(runs[0]["id"]))
    assert isinstance(model, MoEGPT) and meta["config"]["moe"]["experts"] == 4
    assert store.results("moe-load")
    code, out, err = _run(capsys, ["runs", "show", runs[0]["id"]])
    assert code == 0, err
    assert "expert load" in out and "coefficient of variation" in out and " e3 " in out
