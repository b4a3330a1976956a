"""The memory probe: MeZO keeps no gradient and no optimiser state; the child-process peak works
and shows MeZO training below backprop training."""

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
    mezo = measure("mezo", (1000, 1000), batch=50)
    bp = measure("backprop", (1000, 1000), batch=50)
    assert mezo["training_peak_mib"] > 0 and bp["inference_peak_mib"] >= 0
    # backprop holds ~4x the 7 MiB of parameters more (gradients + two Adam moments) at its peak
    assert bp["training_peak_mib"] > mezo["training_peak_mib"] + 10
