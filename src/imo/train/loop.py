"""One training loop for every learner in imo: `fit`.

`imo train`, the fine-tuning of pruned runs, and (through their owners) the reasoning policy and
verifiers all train through this function, so each of them gets the same things: AdamW with
warmup + cosine, gradient clipping and accumulation, a `--minutes` budget turned into steps,
checkpoints with an exact resume, a clean stop on Ctrl-C/SIGTERM, metrics in the run store
(loss, learning rate, gradient norm), a progress bar and DDP under torchrun.

What the caller brings:
- `model`: any nn.Module (a GPT usually); `fit` moves nothing, batches go to its device.
- `batches(gen, m)`: micro-batch `m` of the next step, drawn from the torch.Generator `gen` that
  `fit` owns (seeded with `cfg.seed`, saved in checkpoints: that is what makes resume exact).
- `loss_fn(model, batch) -> loss` (a scalar tensor, nats per token): the default calls
  `model(x, y)` and takes its loss. Extra losses go here; under DDP `model` is the wrapped
  module, so call it (forward) rather than its submodules.
- `callbacks`: `cb(info: StepInfo) -> dict | None`, called after each optimizer step; a dict
  returned is logged as metrics of that step (e.g. re-applying pruning masks, a probe).

    from imo.train.loop import FitConfig, fit
    cfg = FitConfig(steps=200, lr=3e-3, warmup=20, seed=1)
    result = fit(model, lambda gen, m: random_batch(data, 64, 16, gen), cfg)
    # with a run in the store: metrics, checkpoints every cfg.ckpt_every steps, resume
    log = RunLog(store, run_id, store.run_dir(run_id), meta=lambda: {"config": config})
    result = fit(model, batches, cfg, run=log, evaluate=lambda m: {"val/bpb": ...})
    if result.stopped: ...  # Ctrl-C/SIGTERM: checkpointed at result.steps, resumable
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from imo.errors import ConfigError
from imo.train import distributed as D
from imo.train.checkpoint import optimizer_tensors, restore_optimizer, save_checkpoint
from imo.train.progress import Progress
from imo.train.schedule import lr_at

LN2 = math.log(2)
TIMING_STEPS = 10  # steps timed to turn a --minutes budget into a step count (within warmup)

Batch = Any  # what `batches` returns and `loss_fn` takes; (x, y) by default


@dataclass(frozen=True)
class FitConfig:
    """The knobs of the loop (the model, data and run are the caller's)."""

    steps: int | None = None  # a step budget ...
    minutes: float | None = None  # ... or a time budget, turned into steps after the first steps
    lr: float = 3e-3
    warmup: int = 50
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # 0 disables clipping (the norm is still logged)
    grad_accum: int = 1  # micro-batches per optimizer step
    eval_every: int = 100
    log_every: int = 10  # train/bpb, lr and grad_norm are logged every N steps
    ckpt_every: int = 500
    seed: int = 0  # of the batch generator

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.minutes is None):
            raise ConfigError("give either steps or minutes (not both, not neither)")
        if self.steps is not None and self.steps < 0:
            raise ConfigError(f"steps must be >= 0, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"minutes must be > 0, got {self.minutes}")
        for name in ("grad_accum", "eval_every", "log_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")


@dataclass
class StepInfo:
    """What a callback sees after each optimizer step."""

    step: int
    total: int | None  # None while a --minutes budget is still being timed
    loss_bits: float  # mean over ranks, bits per token
    lr: float
    grad_norm: float
    model: nn.Module  # the unwrapped module
    optimizer: torch.optim.Optimizer


@dataclass
class RunLog:
    """Where fit records a run: metrics into the store, checkpoints into the run folder. On DDP
    ranks other than 0, `store` is None and nothing is written."""

    store: Any  # imo.runs.store.RunStore | None
    run_id: str
    run_dir: Path
    meta: Callable[[], dict] = dict  # JSON saved with each checkpoint (e.g. the run's config)
    on_total: Callable[[int], None] | None = None  # told the step total a --minutes budget became
    sinks: list[Callable[[int, dict[str, float]], None]] = field(default_factory=list)  # e.g. TensorBoard

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self.store is None or not metrics:
            return
        self.store.log_metrics(self.run_id, step, metrics)
        for sink in self.sinks:
            sink(step, metrics)


@dataclass
class FitResult:
    steps: int  # the step reached (counted from the start of the run, resumes included)
    total: int  # the step total (a --minutes budget's, once measured)
    stopped: bool  # Ctrl-C/SIGTERM or stop_at: checkpointed, resumable
    signal: int | None  # the signal that stopped it (None: finished, or stop_at)
    train_bpb: float  # the last step's loss, bits per token
    final_bpb: float | None  # the final evaluation (None: none asked, or stopped during it)
    seconds: float
    losses: list[float] = field(default_factory=list)  # bits per token of each step of this call
    step_seconds: float = 0.0  # of `seconds`, those spent in optimizer steps (no evaluation, checkpoints)


class StopFlag:
    """Set by the first SIGINT/SIGTERM; the loop finishes its step, checkpoints and returns.
    A second Ctrl-C raises KeyboardInterrupt at once (the last checkpoint stays valid)."""

    def __init__(self) -> None:
        self.set = False
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, no clean stop
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.set, self.signum = True, signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def default_loss(model: nn.Module, batch: Batch) -> Tensor:
    x, y = batch
    return model(x, y)[1]


def make_optimizer(model: nn.Module, cfg: FitConfig) -> torch.optim.AdamW:
    # nanoGPT: decay matrices (2-D), not biases, LayerNorm gains or anything 1-D
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    # fused: one kernel for the whole update (CPU and CUDA); foreach elsewhere (e.g. mps)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, **({"fused": True} if fused else {"foreach": True}))


def fit(
    model: nn.Module,
    batches: Callable[[torch.Generator, int], Batch],
    cfg: FitConfig,
    *,
    loss_fn: Callable[[nn.Module, Batch], Tensor] = default_loss,
    callbacks: Sequence[Callable[[StepInfo], dict | None]] = (),
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    final_eval: Sequence[tuple[Tensor, Tensor]] | None = None,
    run: RunLog | None = None,
    resume: tuple[dict, dict[str, Tensor]] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    world: D.World | None = None,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    tokens_per_step: int = 0,
    quiet: bool = False,
    label: str = "train",
    stop_at: int | None = None,
) -> FitResult:
    """Train `model` for `cfg.steps` (or `cfg.minutes`) optimizer steps.

    evaluate: called every `cfg.eval_every` steps and at the last step; its metrics are logged.
    final_eval: (x, y) batches scored once at the end (token-weighted loss in bits, with a
      progress bar and the stop handler, its time taken out of a --minutes budget).
    run: record metrics and checkpoints (without it, nothing is written).
    resume: (meta, state) of a checkpoint written by fit; the caller has loaded its weights.
    stop_at: stop after that step as a signal would (tests).
    Returns when done, or after a clean stop (`result.stopped`, checkpoint written)."""
    world = world or D.World()
    device = next(model.parameters()).device
    optimizer = optimizer or make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = 0
    if resume is not None:
        meta, state = resume
        restore_optimizer(optimizer, state, meta["optimizer"])
        gen.set_state(state["rng.batches"])
        torch.set_rng_state(state["rng.torch"])
        start = meta["step"]
    ddp = DistributedDataParallel(model) if world.distributed else model
    last_saved = start if resume is not None else -1

    def checkpoint(step: int) -> None:
        nonlocal last_saved
        if run is None or not world.is_main or step == last_saved:  # never rewrite the live one
            return
        last_saved = step
        state, groups = optimizer_tensors(optimizer)
        state["rng.batches"], state["rng.torch"] = gen.get_state(), torch.get_rng_state()
        weights = model.state_dict_for_save() if hasattr(model, "state_dict_for_save") else model.state_dict()
        path = save_checkpoint(run.run_dir, step, weights, state, {**run.meta(), "optimizer": groups})
        run.store.add_artifact(run.run_id, "checkpoint", path)

    def one_step(step: int, lr: float) -> tuple[float, float]:
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for m in range(cfg.grad_accum):
            batch = _to(batches(gen, m), device)
            last = m == cfg.grad_accum - 1
            sync = ddp.no_sync() if world.distributed and not last else nullcontext()
            with sync, autocast():
                loss = loss_fn(ddp, batch)
            (loss / cfg.grad_accum).backward()
            loss_sum += loss.item() / cfg.grad_accum
        params = [p for p in model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return D.mean_over_ranks(loss_sum, world) / LN2, float(norm)

    total = cfg.steps  # None until a --minutes budget has been measured
    timing = max(1, min(TIMING_STEPS, cfg.warmup))  # their learning rate does not depend on `total`
    progress = Progress(total, enabled=world.is_main and not quiet, label=label)
    step, train_bits, losses, stopped, step_seconds = start, math.nan, [], False, 0.0
    t0 = time.perf_counter()
    model.train()
    with StopFlag() as stop:
        while total is None or step < total:
            lr = lr_at(step, cfg.lr, cfg.warmup, total or 0, cfg.min_lr_ratio)
            t_step = time.perf_counter()
            train_bits, norm = one_step(step, lr)
            step_seconds += time.perf_counter() - t_step
            losses.append(train_bits)
            step += 1
            metrics: dict[str, float] = {}
            evaluated = False
            if total is None and step - start >= timing:
                total, metrics = _budget_total(cfg, model, step - start, time.perf_counter() - t0,
                                               evaluate, final_eval, world)
                total += step
                evaluated = evaluate is not None
                progress.total = total
                if run is not None and run.on_total is not None:
                    run.on_total(total)
            info = StepInfo(step, total, train_bits, lr, norm, model, optimizer)
            for cb in callbacks:
                metrics.update(cb(info) or {})
            if step % cfg.log_every == 0 or step == total:
                metrics.update({"train/bpb": train_bits, "lr": lr, "grad_norm": norm})
            if evaluate is not None and (step % cfg.eval_every == 0 or step == total) and not evaluated:
                metrics.update(_evaluating(evaluate, model))
            if world.is_main and run is not None:
                run.log(step, metrics)
            progress.update(step, train_bits, metrics.get("val/bpb"), tokens_per_step)
            if step % cfg.ckpt_every == 0 and step != total:
                checkpoint(step)
            if D.any_rank(stop.set or step == stop_at, world):
                stopped = True
                break
        progress.close()
        checkpoint(step)
        final = None
        if not stopped and final_eval is not None and world.is_main:
            final = score(model, final_eval, stop, quiet)
            stopped = final is None
    model.eval()
    return FitResult(step, total if total is not None else step, stopped, stop.signum, train_bits, final,
                     time.perf_counter() - t0, losses, step_seconds)


def _evaluating(evaluate: Callable[[nn.Module], dict[str, float]], model: nn.Module) -> dict[str, float]:
    was = model.training
    model.eval()
    try:
        return evaluate(model)
    finally:
        model.train(was)


@torch.no_grad()
def score(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], stop: StopFlag | None = None,
          quiet: bool = True) -> float | None:
    """Token-weighted mean loss in bits over (x, y) batches, with a progress bar; None when a
    stop signal arrives on the way."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    progress = Progress(len(batches), enabled=not quiet, label="eval", every=max(1, len(batches) // 10))
    total, count = 0.0, 0
    try:
        for i, (x, y) in enumerate(batches):
            if stop is not None and stop.set:
                return None
            _, loss = model(x.to(device), y.to(device))
            total += loss.item() * y.numel()
            count += y.numel()
            progress.update(i + 1, total / count / LN2, None, y.numel())
    finally:
        progress.close()
        model.train(was)
    return total / max(count, 1) / LN2


def _budget_total(cfg: FitConfig, model: nn.Module, done: int, seconds: float, evaluate, final_eval,
                  world: D.World) -> tuple[int, dict[str, float]]:
    """How many more steps a --minutes budget allows after `done` steps took `seconds`, from the
    time of those steps, of one evaluation (its metrics are returned, to be logged) and of one
    final-evaluation batch (so the final evaluation fits in the budget too). Rank 0 decides and
    broadcasts: ranks timing themselves could stop at different steps and hang."""
    per_step = seconds / done
    eval_s, metrics = 0.0, {}
    if evaluate is not None:
        t = time.perf_counter()
        metrics = _evaluating(evaluate, model)
        eval_s = time.perf_counter() - t
    final_s = 0.0
    if final_eval:
        t = time.perf_counter()
        with torch.no_grad():
            model.eval()
            x, y = final_eval[0]
            device = next(model.parameters()).device
            model(x.to(device), y.to(device))
            model.train()
        final_s = (time.perf_counter() - t) * len(final_eval)
    left = cfg.minutes * 60 - seconds - eval_s - final_s
    more = max(0, math.floor(left / (per_step + eval_s / cfg.eval_every)))
    return int(D.broadcast_object(more if world.is_main else None, world)), metrics


def _to(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(_to(b, device) for b in batch)
    return batch
