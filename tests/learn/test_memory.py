"""The memory probe: MeZO keeps no gradient and no optimiser state; the child-process peak works
and shows MeZO training below the size of its own parameters."""

from imo.learn.data import load
from imo.learn.loop import make_rule
from imo.learn.memory import measure, tensor_bytes
from imo.learn.rules import RuleConfig


def test_tensor_bytes_of_mezo_and_backprop():
    data = load("digits", max_train=50)
    mezo, bp = (make_rule(r, RuleConfig(hidden=(32,)), data) for r in ("mezo", "backprop"))
    for rule in (mezo, bp):
        rule.step(data.x_train, data.y_train)
    m, b = tensor_bytes(mezo), tensor_bytes(bp)
    assert m["params"] == b["params"] == 4 * ((64 + 1) * 32 + (32 + 1) * 10)
    assert m["grads"] == 0 and m["optimizer"] == 0
    assert b["grads"] == b["params"] and b["optimizer"] == 2 * b["params"]  # Adam: two moments


def test_child_process_peak():
    # one child (each costs a torch import): MeZO's training peak stays below the 7.6 MiB of
    # parameters of this MLP (backprop alone would add 7.6 MiB of gradients and 15.3 MiB of Adam
    # state; `imo learn memory` measured 39.5 MiB against MeZO's 3.6 MiB at 3x1000)
    m = measure("mezo", (1000, 1000), batch=50)
    assert 0 < m["training_peak_mib"] < m["tensor_bytes"]["params"] / 2**20
    assert m["tensor_bytes"]["grads"] == 0 and m["inference_peak_mib"] >= 0


def test_live_bytes_counts_a_tensor_while_it_lives():
    import torch

    from imo.learn.memory import LiveBytes

    with LiveBytes() as lb:
        a = torch.ones(1000)  # 4,000 bytes
        b = a * 2  # 8,000 live
        del a  # 4,000 live
        c = b + 1  # 8,000 again
        v = c.view(10, 100)  # a view shares c's storage: nothing new
    assert lb.peak == 8000 and lb.now == 8000
    del b, c, v
    assert lb.now == 0


def test_step_bytes_sgd_local_rules_hold_one_layer_backprop_all():
    """Plain SGD: backprop holds every gradient at once; FF and DFA update and free one layer at a
    time (DFA keeps every layer's activations until the output error is known); MeZO holds one
    regenerated direction tensor. Exact bytes, so the order is fixed."""
    from imo.learn.memory import step_bytes

    data = load("digits", max_train=64)
    hidden = (400, 400, 400)
    got = {}
    for r in ("backprop", "dfa", "ff", "mezo"):
        cfg = RuleConfig(hidden=hidden, optimizer="sgd")
        cfg.total_steps = 10
        rule = make_rule(r, cfg, data)
        got[r] = step_bytes(rule, data.x_train[:32], data.y_train[:32])
    params = got["backprop"]["held"]
    assert params == 4 * ((64 + 1) * 400 + 2 * 401 * 400 + 401 * 10)
    assert got["backprop"]["training"] >= params  # every gradient, plus the saved activations
    assert got["backprop"]["carried"] == params  # the gradients left from the step before
    biggest = 4 * 401 * 400  # one hidden layer's weights and bias
    assert got["mezo"]["training"] < biggest + 4 * 32 * 400 * 2  # one direction tensor and a forward
    for r in ("ff", "dfa"):
        assert got[r]["carried"] == 0 and biggest <= got[r]["training"] < got["backprop"]["training"], r


def test_sgd_leaves_no_optimizer_state():
    data = load("digits", max_train=50)
    rule = make_rule("backprop", RuleConfig(hidden=(16,), optimizer="sgd"), data)
    rule.step(data.x_train, data.y_train)
    assert tensor_bytes(rule)["optimizer"] == 0 and rule.lr == rule.DEFAULT_SGD_LR
    assert rule.describe()["optimizer"] == "sgd"
