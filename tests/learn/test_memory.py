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
