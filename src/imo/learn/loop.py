"""The one training loop every learning rule shares: the same seeded shuffle, the same batches,
an evaluation on the validation split after each epoch, a progress line per epoch.

    record, rule = fit("ff", load("digits"), RuleConfig(hidden=(256,)), epochs=5, batch=100)
    record["final"]["error"], record["history"]
"""

import time
from collections.abc import Callable

import torch

from imo.errors import ConfigError
from imo.learn import ff, mezo, sparse, voltage  # noqa: F401  (the rules register themselves on import)
from imo.learn.data import Split, batches
from imo.learn.rules import RULES, Rule, RuleConfig


def make_rule(name: str, cfg: RuleConfig, data: Split) -> Rule:
    return RULES.get(name)(cfg, data.n_in, data.n_classes)


def fit(name: str, data: Split, cfg: RuleConfig, epochs: int, batch: int,
        log: Callable[[str], None] | None = None, max_seconds: float | None = None) -> tuple[dict, Rule]:
    """Train rule `name` for `epochs` passes over data.x_train (or until `max_seconds` of wall
    time, checked after each batch), evaluating after each epoch. Returns a JSON-ready record and
the trained rule."""
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"--max-seconds must be > 0, got {max_seconds}")
    n = len(data.x_train)
    cfg.total_steps = epochs * -(-n // batch)
    rule = make_rule(name, cfg, data)
    gen = torch.Generator().manual_seed(cfg.seed)  # the data order: the same for every rule
    history, t0, stopped = [], time.perf_counter(), False
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        for idx in batches(n, batch, gen):
            total += rule.step(data.x_train[idx], data.y_train[idx]) * len(idx)
            count += len(idx)
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                stopped = True
                break
        errs = rule.errors(data.x_val, data.y_val)
        row = {"epoch": epoch, "steps": rule.steps, "train_loss": total / max(count, 1),
               "seconds": time.perf_counter() - t0, **errs}
        history.append(row)
        if log:
            extra = " ".join(f"{k}={v:.4f}" for k, v in errs.items() if k != "error")
            log(f"{name} epoch {epoch}/{epochs} step {rule.steps} loss {row['train_loss']:.4f} "
                f"val error {errs['error']:.4f} {extra} ({row['seconds']:.1f}s)".rstrip())
        if stopped:
            break
    return {"rule": rule.describe(), "data": data.source, "n_train": n, "n_val": len(data.x_val),
            "hidden": list(cfg.hidden), "batch": batch, "epochs": epochs, "seed": cfg.seed,
            "stopped_by_time": stopped, "final": history[-1], "history": history}, rule
