"""Pruning: exact sparsity (global and per layer), masks that survive training, SynFlow against a
brute-force path sum, lottery-ticket rewinding and the mask criteria."""

import itertools

import pytest
import torch
from torch import nn

from imo.compress import lottery
from imo.compress.prune import (
    PRUNERS,
    get_mask,
    keep_masks,
    linear_filter,
    prune_,
    select,
    synflow_scores,
)
from imo.errors import ConfigError


def mlp(seed=0, sizes=(12, 20, 16, 5)):
    torch.manual_seed(seed)
    return lottery.MLP(sizes)


@pytest.mark.parametrize("method", ["magnitude", "random", "synflow"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9])
def test_global_sparsity_is_exact(method, sparsity):
    model = mlp()
    options = {"rounds": 5} if method == "synflow" else {}
    rep = prune_(model, method, sparsity, **options)
    total = sum(m.weight.numel() for m in select(model).values())
    zeros = sum(int((m.weight == 0).sum()) for m in select(model).values())
    assert zeros == round(sparsity * total)
    assert rep.sparsity == pytest.approx(round(sparsity * total) / total)


def test_layer_scope_prunes_each_layer_exactly():
    model = mlp()
    rep = prune_(model, "magnitude", 0.75, scope="layer")
    for name, (kept, total) in rep.layers.items():
        assert kept == total - round(0.75 * total), name


def test_magnitude_keeps_the_largest_weights():
    model = mlp()
    w = {n: m.weight.detach().clone() for n, m in select(model).items()}
    prune_(model, "magnitude", 0.5)
    kept = torch.cat([w[n][get_mask(m)].abs() for n, m in select(model).items()])
    cut = torch.cat([w[n][~get_mask(m)].abs() for n, m in select(model).items()])
    assert kept.min() >= cut.max()


def test_pruning_twice_never_unprunes():
    model = mlp()
    prune_(model, "magnitude", 0.5)
    first = {n: get_mask(m).clone() for n, m in select(model).items()}
    prune_(model, "random", 0.7, seed=3)
    for n, m in select(model).items():
        assert not (get_mask(m) & ~first[n]).any()


def test_masks_stay_applied_through_training():
    model = mlp()
    prune_(model, "magnitude", 0.6)
    masks = {n: get_mask(m).clone() for n, m in select(model).items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    keep_masks(opt, model)
    x, y = torch.randn(32, 12), torch.randint(0, 5, (32,))
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, m in select(model).items():
        assert (m.weight[~masks[n]] == 0).all()
        assert (m.weight[masks[n]] != 0).all()


def test_bad_input_is_refused():
    model = mlp()
    for s in (1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match=r"\[0, 1\)"):
            prune_(model, "magnitude", s)
    with pytest.raises(ConfigError, match="choose one of: magnitude, random, synflow"):
        prune_(model, "largest", 0.5)
    with pytest.raises(ConfigError, match="matches no weight"):
        prune_(model, "magnitude", 0.5, filter_fn=linear_filter(["layers.*"]))
    with pytest.raises(ConfigError, match="scope"):
        prune_(model, "magnitude", 0.5, scope="block")
    with pytest.raises(ConfigError, match="criterion"):
        lottery.CRITERIA.get("largest")


def brute_force_synflow(ws):
    """R = sum over every input -> output path of the product of |w| on it (no biases);
    a weight's score is |w| * dR/dw = the sum of the products of the paths through it."""
    sizes = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    scores = [torch.zeros_like(w, dtype=torch.float64) for w in ws]
    for path in itertools.product(*[range(s) for s in sizes]):
        prod = 1.0
        for layer, w in enumerate(ws):
            prod *= abs(float(w[path[layer + 1], path[layer]]))
        for layer in range(len(ws)):
            scores[layer][path[layer + 1], path[layer]] += prod
    return scores


def test_synflow_scores_equal_brute_force_path_sums():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 3, bias=False),
                        nn.ReLU(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[2].weight[0, 1] = 0.0  # a pruned weight scores zero
    mods = {"0": net[0], "2": net[2], "4": net[4]}
    before = [m.weight.detach().clone() for m in mods.values()]
    got = synflow_scores(net, mods, (3,))
    want = brute_force_synflow([m.weight.detach() for m in mods.values()])
    for g, w in zip(got.values(), want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-15)
    for m, b in zip(mods.values(), before, strict=True):  # signs and values restored
        assert torch.equal(m.weight, b) and m.weight.dtype == torch.float32


def test_synflow_avoids_layer_collapse_where_magnitude_does_not():
    # a narrow last layer with small weights: global magnitude removes it first
    sizes = (16, 64, 64, 4)
    torch.manual_seed(0)
    for method in ("magnitude", "synflow"):
        model = lottery.MLP(sizes)
        with torch.no_grad():
            model.layers[-1].weight.mul_(0.01)
        prune_(model, method, 0.99, **({"rounds": 20} if method == "synflow" else {}))
        alive = [int(get_mask(m).sum()) for m in select(model).values()]
        if method == "magnitude":
            assert alive[-1] == 0
        else:
            assert min(alive) > 0
    assert "synflow" in PRUNERS


def test_rewinding_restores_the_step_k_weights_exactly():
    from imo.data.vision import load

    data = load("digits", seed=0)
    setup = lottery.LotterySetup(sizes=(64, 32, 10), epochs=1, rewind_step=3)
    torch.manual_seed(0)
    model = lottery.MLP(setup.sizes)
    _, w_k = lottery.train_mlp(model, data, setup, seed=0, capture_step=3)
    # w_k is really step 3: replaying 3 steps from the same init gives the same weights
    torch.manual_seed(0)
    replay = lottery.MLP(setup.sizes)
    _, again = lottery.train_mlp(replay, data, setup, seed=0, capture_step=3)
    assert all(torch.equal(w_k[k], again[k]) for k in w_k)
    lottery.prune_round(model, w_k, "large_final", 0.5, torch.Generator().manual_seed(0))
    lottery.rewind_(model, w_k)
    for n, m in select(model).items():
        mask = get_mask(m)
        assert torch.equal(m.weight[mask], w_k[f"{n}.weight"][mask])
        assert (m.weight[~mask] == 0).all()
        assert torch.equal(m.bias, w_k[f"{n}.bias"])


def test_criteria_scores():
    wi = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    wf = torch.tensor([[2.0, -1.0, -3.0, 3.5]])
    g = torch.Generator().manual_seed(0)
    assert lottery.CRITERIA.get("large_final")(wi, wf, g).tolist() == [[2.0, 1.0, 3.0, 3.5]]
    assert lottery.CRITERIA.get("magnitude_increase")(wi, wf, g).tolist() == [[1.0, -1.0, 2.5, 0.5]]
    assert lottery.CRITERIA.get("large_init_large_final")(wi, wf, g).tolist() == [[1.0, 1.0, 0.5, 3.0]]
    assert lottery.CRITERIA.get("movement")(wi, wf, g).tolist() == [[1.0, 1.0, 3.5, 0.5]]


def test_iterative_pruning_rounds_and_output_layer_rate():
    from imo.data.vision import load

    data = load("digits", seed=0)
    setup = lottery.LotterySetup(sizes=(64, 32, 10), epochs=1, rounds=2)
    rounds = lottery.iterative_pruning(data, setup, seed=0)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["fraction_left"] < 1.0 and rounds[2]["fraction_left"] < rounds[1]["fraction_left"]
    assert all(0 <= r["acc_reinit"] <= 1 and 0 <= r["acc_random"] <= 1 for r in rounds)
    again = lottery.iterative_pruning(data, setup, seed=0)
    assert again == rounds  # seeded: repeats exactly
