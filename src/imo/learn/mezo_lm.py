"""MeZO and backprop (AdamW) fine-tuning an imo LM on a new corpus, at matched budgets, and the memory
each needs beside inference.

Both methods start from the same trained run and see the same seeded batches of the target corpus
(`random_batch` with one generator). A budget is wall-clock seconds of training (evaluation time
excluded) or forward passes: AdamW does one forward (and one backward) per step, MeZO (n-SPSA with
the seed trick, `imo.learn.mezo.mezo_step_`) does two forwards per direction and no backward.
Validation bits/byte on fixed windows of the target corpus's validation split is taken before
and during training. The `gain` of a run is the bits/byte it removed; MeZO's share of AdamW's gain
is the figure of the issue's target.

Memory is measured the way `imo.exams.memory` and `imo.learn.memory` do it, in a fresh child
process per method (`python -m imo.learn.mezo_lm RUN_DIR METHOD`): a warm-up step first, then the
kernel's peak-RSS mark is reset (/proc/self/clear_refs) and the growth of VmHWM over the resident
size before is read during one inference forward, during three AdamW steps, or during three MeZO
steps; glibc's mmap threshold is pinned so that freed buffers leave. The exact live tensor bytes
of one step (`imo.learn.memory.LiveBytes`) are reported beside it. The footprint of a method is the
model's parameter bytes plus its peak growth; the ratio to inference's footprint is the figure the
issue's target names.

    curve = finetune(model, "mezo", corpus, Budget(seconds=240), lr=3e-5, eps=1e-3)
    memory_footprints(run_dir, batch=16, context=256)   # three child processes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from imo.errors import ConfigError

METHODS = ("adam", "mezo")
LN2 = math.log(2)


@dataclass(frozen=True)
class Budget:
    seconds: float | None = None  # training time, evaluation excluded
    forwards: int | None = None  # forward passes over a batch

    def check(self) -> None:
        if self.seconds is None and self.forwards is None:
            raise ConfigError("give a budget in seconds or in forward passes")
        if (self.seconds is not None and not self.seconds > 0) or (self.forwards is not None and self.forwards < 1):
            raise ConfigError("a budget must be positive")

    def spent(self, seconds: float, forwards: int) -> bool:
        return ((self.seconds is not None and seconds >= self.seconds)
                or (self.forwards is not None and forwards >= self.forwards))


def forwards_per_step(method: str, samples: int = 1) -> int:
    return 1 if method == "adam" else 2 * samples


def finetune(model, method: str, train, evals: list, budget: Budget, *, lr: float, eps: float = 1e-3,
             samples: int = 1, batch_size: int = 16, context_length: int = 256, seed: int = 0,
             eval_every: int = 50, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Fine-tune `model` in place with `method` until `budget` is spent; the validation curve."""
    from imo.data.batches import random_batch
    from imo.learn.mezo import mezo_step_
    from imo.train.evaluate import mean_bpb

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    budget.check()
    if not lr > 0 or not eps > 0 or samples < 1:
        raise ConfigError("lr and eps must be > 0 and samples >= 1")
    gen = torch.Generator().manual_seed(seed)
    zgen = torch.Generator().manual_seed(7919 + seed)  # MeZO's direction seeds
    params = [p for p in model.parameters()]
    opt = None
    if method == "adam":
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    else:
        for p in params:
            p.requires_grad_(False)
    start = mean_bpb(model, evals)
    curve = [{"step": 0, "seconds": 0.0, "forwards": 0, "val_bpb": start}]
    seconds, forwards, step = 0.0, 0, 0
    while not budget.spent(seconds, forwards):
        x, y = random_batch(train, context_length, batch_size, gen)
        t0 = time.perf_counter()
        model.train()
        if method == "adam":
            _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            seeds = [int(torch.randint(0, 2**62, (1,), generator=zgen)) for _ in range(samples)]
            mezo_step_(params, lambda: model(x, y)[1].item(), lr, eps, seeds)  # noqa: B023
        seconds += time.perf_counter() - t0
        forwards += forwards_per_step(method, samples)
        step += 1
        if step % eval_every == 0 or budget.spent(seconds, forwards):
            bpb = mean_bpb(model, evals)
            curve.append({"step": step, "seconds": seconds, "forwards": forwards, "val_bpb": bpb})
            log(f"{method} step {step}: {seconds:.0f} s, {forwards} forwards, val {bpb:.4f} bits/byte")
    for p in params:
        p.requires_grad_(True)
    end = curve[-1]["val_bpb"]
    return {"method": method, "lr": lr, "eps": eps, "samples": samples, "batch_size": batch_size,
            "context_length": context_length, "steps": step, "seconds": seconds, "forwards": forwards,
            "start_bpb": start, "end_bpb": end, "gain_bpb": start - end, "curve": curve}


# --- memory, in a fresh child process per method ------------------------------------------------


def measure_here(run_dir: str, method: str, batch: int, context: int, seed: int = 0) -> dict[str, Any]:
    """Meaningful only in a fresh process: see the module docstring."""
    from imo.exams.memory import _status_mib, reset_peak
    from imo.learn.memory import LiveBytes
    from imo.learn.mezo import mezo_step_
    from imo.train.checkpoint import load_model

    if method not in ("inference", *METHODS):
        raise ConfigError(f"unknown method {method!r}; choose inference, adam or mezo")
    torch.set_num_threads(1)
    model, _ = load_model(Path(run_dir))
    params = list(model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.cfg.vocab_size, (batch, context), generator=gen)
    y = torch.randint(0, model.cfg.vocab_size, (batch, context), generator=gen)
    opt = torch.optim.AdamW(params, lr=1e-5) if method == "adam" else None

    def step() -> None:
        if method == "inference":
            with torch.no_grad():
                model(x)
        elif method == "adam":
            _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            mezo_step_(params, lambda: model(x, y)[1].item(), 1e-7, 1e-3, [int(torch.randint(0, 2**62, (1,)))])

    if method == "mezo":
        for p in params:
            p.requires_grad_(False)
    step()  # warm-up: first-use costs and AdamW's lazily made state
    if not reset_peak():
        raise OSError("this kernel cannot reset the peak RSS mark (/proc/self/clear_refs)")
    base = _status_mib("VmRSS")
    for _ in range(1 if method == "inference" else 3):
        step()
    peak = _status_mib("VmHWM") - base
    lb = LiveBytes()
    for t in (*params, *model.buffers()):
        lb.adopt(t, count=False)
    for p in params:
        if p.grad is not None:
            lb.adopt(p.grad)
    if opt is not None:
        for state in opt.state.values():
            for v in state.values():
                if isinstance(v, torch.Tensor) and v.dim() > 0:
                    lb.adopt(v)
    with lb:
        step()
    return {"method": method, "batch": batch, "context": context, "param_bytes": param_bytes,
            "peak_growth_mib": peak, "live_bytes_peak": lb.peak,
            "footprint_mib": param_bytes / 2**20 + peak, "exact_footprint_mib": (param_bytes + lb.peak) / 2**20}


def measure_memory(run_dir: Path, method: str, batch: int, context: int, timeout: float = 600) -> dict[str, Any]:
    src = str(Path(__file__).resolve().parents[2])  # the child imports this very imo
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
           "MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "imo.learn.mezo_lm", str(run_dir), method, "--batch", str(batch),
           "--context", str(context)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"memory measurement of {method} failed (exit {res.returncode}): "
                           f"{res.stderr.strip().splitlines()[-1:] or ['no output']}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def memory_footprints(run_dir: Path, batch: int, context: int) -> dict[str, Any]:
    """Inference, AdamW and MeZO footprints, each from its own child process, and the ratios."""
    out = {m: measure_memory(run_dir, m, batch, context) for m in ("inference", *METHODS)}
    inf = out["inference"]
    for m in METHODS:
        out[m]["ratio_to_inference"] = out[m]["footprint_mib"] / inf["footprint_mib"]
        out[m]["exact_ratio_to_inference"] = out[m]["exact_footprint_mib"] / inf["exact_footprint_mib"]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="one method's memory on a run's model (prints one JSON line)")
    ap.add_argument("run_dir")
    ap.add_argument("method", choices=("inference", *METHODS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=256)
    args = ap.parse_args(argv)
    print(json.dumps(measure_here(args.run_dir, args.method, args.batch, args.context)))


if __name__ == "__main__":
    main()
