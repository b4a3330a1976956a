"""Forward-Forward: every layer learns from its own loss only (no gradient crosses layers), the
two read-outs are kept apart, and it learns the 8x8 digits."""

import torch

from imo.learn.data import load
from imo.learn.ff import ForwardForward
from imo.learn.loop import fit
from imo.learn.rules import RuleConfig


def test_no_gradient_crosses_layers():
    ff = ForwardForward(RuleConfig(hidden=(16, 12, 8)), n_in=20, n_classes=4)
    x, y = torch.rand(6, 20), torch.randint(0, 4, (6,))
    losses = ff.layer_losses(ff.embed(x, y), ff.embed(x, ff.wrong_labels(y)))
    assert len(losses) == 3
    for k, loss in enumerate(losses):
        for j, layer in enumerate(ff.layers):
            grads = torch.autograd.grad(loss, list(layer.parameters()), retain_graph=True, allow_unused=True)
            if j == k:
                assert all(g is not None and g.abs().sum() > 0 for g in grads)
            else:  # not even a zero gradient: layer j is not in loss k's graph
                assert all(g is None for g in grads), (k, j)


def test_a_step_changes_each_layer_by_its_own_loss_alone():
    torch.manual_seed(0)
    cfg = RuleConfig(hidden=(16, 8), lr=1e-2, seed=0)
    a = ForwardForward(cfg, n_in=20, n_classes=4)
    b = ForwardForward(cfg, n_in=20, n_classes=4)
    b.net.load_state_dict(a.net.state_dict())
    x, y = torch.rand(6, 20), torch.randint(0, 4, (6,))
    a.step(x, y)  # the rule's own step: one backward per layer
    # by hand: layer k's loss, backpropagated alone, must reproduce layer k's update
    losses = b.layer_losses(b.embed(x, y), b.embed(x, b.wrong_labels(y)))  # all layers see the same batch
    for loss, opt in zip(losses, b.opts, strict=True):
        opt.zero_grad()
        loss.backward()
        opt.step()
    for la, lb in zip(a.layers, b.layers, strict=True):
        for pa, pb in zip(la.parameters(), lb.parameters(), strict=True):
            torch.testing.assert_close(pa, pb)
    # the softmax read-out trains on detached features: its loss reaches no FF layer
    assert not a.readout_features(x).requires_grad


def test_ff_learns_digits_with_both_readouts_reported():
    data = load("digits")
    rec, rule = fit("ff", data, RuleConfig(hidden=(128, 128), seed=0), epochs=20, batch=50)
    final = rec["final"]
    assert {"error", "softmax_error", "goodness_error"} <= set(final)
    assert final["softmax_error"] == final["error"]
    assert final["softmax_error"] < 0.35 and final["goodness_error"] < 0.6  # chance is 0.9
    g = rule.goodness(data.x_val[:5])
    assert g.shape == (5, 10)
