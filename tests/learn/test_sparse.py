"""SET, RigL and static sparse MLPs: the density stays exact through every prune and regrow, the
topology moves, RigL regrows where the gradient is largest, ERK hits the global target, and the
CSR inference path gives the dense path's logits."""

import torch

from imo.learn.data import load
from imo.learn.loop import fit, make_rule
from imo.learn.rules import RuleConfig
from imo.learn.sparse import layer_densities


def _check_exact(rule):
    for m, mask, k in zip(rule.linears, rule.masks, rule.counts, strict=True):
        assert int(mask.sum()) == k
        assert torch.all(m.weight[~mask] == 0)


def test_density_stays_exact_through_prune_and_regrow():
    data = load("digits", max_train=400)
    for name in ("set", "rigl"):
        cfg = RuleConfig(hidden=(64, 32), sparsity=0.8, update_every=2, drop_fraction=0.5, seed=1)
        cfg.total_steps = 40
        rule = make_rule(name, cfg, data)
        first = [mask.clone() for mask in rule.masks]
        gen = torch.Generator().manual_seed(0)
        for _ in range(cfg.total_steps):
            idx = torch.randint(0, len(data.x_train), (32,), generator=gen)
            rule.step(data.x_train[idx], data.y_train[idx])
            _check_exact(rule)
        assert rule.updates >= 10
        moved = sum(int((a != b).sum()) for a, b in zip(first, rule.masks, strict=True))
        assert moved > 0, name


def test_static_mask_never_moves():
    data = load("digits", max_train=300)
    rec, rule = fit("static", data, RuleConfig(hidden=(32,), sparsity=0.7, update_every=1), epochs=2, batch=30)
    assert rule.updates == 0
    _check_exact(rule)
    assert rec["rule"]["weight_nonzeros"] == sum(rule.counts)


def test_rigl_grows_where_the_dense_gradient_is_largest():
    data = load("digits", max_train=200)
    cfg = RuleConfig(hidden=(16,), sparsity=0.9, update_every=1, drop_fraction=0.3, seed=0)
    cfg.total_steps = 100
    rule = make_rule("rigl", cfg, data)
    rule.steps = 1  # an update step
    x, y = data.x_train[:64], data.y_train[:64]
    before = [mask.clone() for mask in rule.masks]
    torch.nn.functional.cross_entropy(rule.net(x), y).backward()
    grads = [m.weight.grad.clone() for m in rule.linears]
    rule.update_topology()
    for old, new, g in zip(before, rule.masks, grads, strict=True):
        grown = new & ~old
        if grown.any():
            # every grown position beats every position left inactive that was inactive before
            left = ~new & ~old
            assert g[grown].abs().min() >= g[left].abs().max()


def test_erk_and_uniform_hit_the_global_density():
    shapes = [(1000, 784), (1000, 1000), (10, 1000)]
    total = sum(o * i for o, i in shapes)
    for dist in ("erk", "uniform"):
        d = layer_densities(shapes, 0.03, dist)
        assert abs(sum(di * o * i for di, (o, i) in zip(d, shapes, strict=True)) / total - 0.03) < 1e-9
    erk = layer_densities(shapes, 0.03, "erk")
    assert erk[2] > erk[1]  # the small output layer keeps more of its weights
    assert layer_densities([(10, 10), (1000, 1000)], 0.1, "erk")[0] == 1.0  # over-full layers go dense


def test_csr_path_gives_the_dense_logits():
    data = load("digits", max_train=200)
    rec, rule = fit("set", data, RuleConfig(hidden=(64, 64), sparsity=0.95, update_every=2), epochs=2, batch=20)
    x = data.x_val[:17]
    torch.testing.assert_close(rule.csr_forward()(x), rule.logits(x), rtol=1e-4, atol=1e-5)
