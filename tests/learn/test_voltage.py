"""The voltage rule: no autograd graph, the output layer's update is the exact local gradient,
silent units stack up voltage that triggers a correction and resets, and θ = ∞ is plain DFA."""

import math

import torch
import torch.nn.functional as F

from imo.learn.data import load
from imo.learn.loop import fit, make_rule
from imo.learn.rules import RuleConfig


def test_output_layer_learns_by_its_exact_local_gradient():
    data = load("digits", max_train=64)
    lr = 0.1
    rule = make_rule("dfa", RuleConfig(hidden=(16,), seed=0, optimizer="sgd", lr=lr), data)
    x, y = data.x_train, data.y_train
    out = rule.linears[-1]
    h = rule.linears[0](x).relu()
    w = out.weight.detach().clone().requires_grad_()
    F.cross_entropy(F.linear(h, w, out.bias), y).backward()
    rule.step(x, y)
    # plain SGD: the output layer moved by exactly -lr times backprop's gradient of it
    torch.testing.assert_close(out.weight.detach(), w.detach() - lr * w.grad)
    assert all(not p.requires_grad for p in rule.net.parameters())
    assert all(p.grad is None for p in rule.net.parameters())  # each layer's gradient freed once applied


def test_silent_units_stack_voltage_and_fire_a_correction():
    data = load("digits", max_train=200)
    cfg = RuleConfig(hidden=(8,), seed=0, volt_threshold=0.02, decay=0.9)
    rule = make_rule("voltage", cfg, data)
    with torch.no_grad():
        rule.linears[0].bias[:4] = -50.0  # units 0-3 can never fire: DFA alone never moves them
    dead_w = rule.linears[0].weight[:4].clone()
    x, y = data.x_train[:100], data.y_train[:100]
    for _ in range(30):
        rule.step(x, y)
        assert torch.all(rule.voltage[0] <= cfg.volt_threshold)  # a trace over θ fired and was reset
    assert rule.corrections > 0
    moved = (rule.linears[0].weight[:4] != dead_w).any(1)
    assert moved.all()  # every silent unit was corrected, by its voltage alone

    dfa = make_rule("dfa", RuleConfig(hidden=(8,), seed=0), data)
    with torch.no_grad():
        dfa.linears[0].bias[:4] = -50.0
    dead = dfa.linears[0].weight[:4].clone()
    for _ in range(30):
        dfa.step(x, y)
    assert torch.equal(dfa.linears[0].weight[:4], dead) and dfa.corrections == 0
    assert math.isinf(dfa.describe()["threshold"])


def test_voltage_learns_digits():
    data = load("digits")
    rec, _ = fit("voltage", data, RuleConfig(hidden=(128,), seed=0), epochs=5, batch=50)
    assert rec["final"]["error"] < 0.2 and rec["rule"]["corrections"] > 0
