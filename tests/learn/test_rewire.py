"""Rewiring: the skip connects exactly the chosen units, it is empty until rewired, the shared
layers start equal in both arms, and every round keeps exactly as many weights in both."""

import torch

from imo.compress.lottery import MLP
from imo.compress.prune import get_mask
from imo.data.vision import load_digits
from imo.learn.rewire import RewiredMLP, RewireSetup, nonzeros, prune_to_, rewire_, rewired_tickets

SIZES = (64, 40, 30, 20, 10)


def test_an_empty_skip_changes_nothing_and_rewiring_connects_the_chosen_block():
    torch.manual_seed(0)
    plain = MLP(SIZES)
    torch.manual_seed(0)
    wired = RewiredMLP(SIZES)
    x = torch.rand(16, 64)
    torch.testing.assert_close(plain(x), wired(x))  # same init, no connection yet
    targets, sources = rewire_(wired, x, targets=5, sources=7)
    mask = get_mask(wired.skip)
    assert int(mask.sum()) == 35 and mask[targets][:, sources].all()
    # the targets are the last-hidden units with the largest incoming weights
    norms = wired.layers[-2].weight.norm(dim=1)
    assert min(norms[targets]) >= max(norms[[i for i in range(20) if i not in targets]])
    with torch.no_grad():
        wired.skip.weight.fill_(0.5)
        wired.skip.weight.mul_(mask)
    z = wired.layers[-2](wired.hidden(x)[1]) + wired.skip(wired.hidden(x)[0])
    torch.testing.assert_close(wired.layers[-1](torch.relu(z)), wired(x))  # the skip feeds the last hidden layer


def test_prune_to_keeps_exactly_the_count():
    torch.manual_seed(0)
    model = RewiredMLP(SIZES)
    rewire_(model, torch.rand(8, 64), 5, 7)
    with torch.no_grad():
        model.skip.weight.copy_(torch.randn_like(model.skip.weight) * get_mask(model.skip))
    for keep in (3000, 1234, 500):
        prune_to_(model, keep)
        assert nonzeros(model) == keep


def test_tickets_keep_equal_weights_and_repeat():
    setup = RewireSetup(sizes=SIZES, targets=5, sources=7, rewire_step=3, rounds=2, epochs=1)
    data = load_digits(0)
    a = rewired_tickets(data, setup, seed=1)
    b = rewired_tickets(data, setup, seed=1)
    assert a["rounds"] == b["rounds"] and a["wired"] == b["wired"]
    base = a["rounds"][0]["weights"]
    assert [r["weights"] for r in a["rounds"]] == [base, round(base * 0.8), round(base * 0.64)]
    assert a["rounds"][0]["skip_weights"] == 35 and a["wired"]["step"] == 3
