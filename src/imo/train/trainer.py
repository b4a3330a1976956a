"""The trainer: AdamW, warmup + cosine, clipping, accumulation, periodic eval and checkpoints,
an exact resume, clean stops on Ctrl-C/SIGTERM, and DDP under torchrun.

Exactness: everything that decides the numbers (model, optimizer moments, the batch generator,
the torch RNG, the step count) is in the checkpoint, so a resumed run repeats the curve of an
uninterrupted one bit for bit on the same machine.

    run_id = train(RunConfig.build(preset="tiny", train={"steps": 200}))
"""

import math
import signal
import time
from contextlib import nullcontext
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from imo.data import load_corpus, random_batch
from imo.errors import ConfigError
from imo.model import GPT
from imo.runs.store import RunStore
from imo.train import distributed as D
from imo.train.checkpoint import (
    checkpoint_dir,
    optimizer_tensors,
    read_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from imo.train.config import RunConfig
from imo.train.evaluate import LN2, evaluate_split, mean_bpb
from imo.train.progress import Progress
from imo.train.schedule import lr_at

KIND = "train"


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    return name


def make_optimizer(model: GPT, cfg) -> torch.optim.AdamW:
    # nanoGPT: decay matrices (2-D), not biases, LayerNorm gains or anything 1-D
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=True)


class StopFlag:
    """Set by the first SIGINT/SIGTERM; the loop finishes its step, checkpoints and exits.
    A second Ctrl-C stops at once (the last checkpoint stays valid)."""

    def __init__(self) -> None:
        self.set = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, no clean stop
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(
    cfg: RunConfig | None = None,
    *,
    resume: str | None = None,
    store: RunStore | None = None,
    quiet: bool = False,
    stop_at: int | None = None,
) -> str:
    """Train a new run from `cfg`, or continue run `resume`; returns the run id.
    `stop_at` simulates an interrupt after that step (used by tests)."""
    world = D.init_world(cfg.train.device if cfg else "cpu")
    store = store or (RunStore.open() if world.is_main else None)
    try:
        return _train(cfg, resume, store, quiet, stop_at, world)
    finally:
        D.shutdown(world)


def _train(cfg, resume, store, quiet, stop_at, world: D.World) -> str:
    # --- the run: new, or resumed from its latest checkpoint -----------------------------------
    start_step, state = 0, {}
    if resume is not None:
        run_id = store.resolve(resume) if world.is_main else None
        run_id = D.broadcast_object(run_id, world)
        run_dir = D.broadcast_object(str(store.run_dir(run_id)) if world.is_main else None, world)
        meta, weights, state = read_checkpoint(checkpoint_dir(run_dir))
        cfg = RunConfig.from_dict(meta["config"])
        start_step = meta["step"]
    else:
        run_id = store.create_run(KIND, cfg.name(), cfg.to_dict()) if world.is_main else None
        run_id = D.broadcast_object(run_id, world)
        run_dir = D.broadcast_object(str(store.run_dir(run_id)) if world.is_main else None, world)
        weights = None
    t = cfg.train
    device = resolve_device(t.device)
    if device.startswith("cuda") and world.distributed:
        device = f"cuda:{world.local_rank}"
        torch.cuda.set_device(device)
    if t.batch_size % (world.size * t.grad_accum):
        raise ConfigError(
            f"batch_size={t.batch_size} must be divisible by processes x grad_accum = {world.size * t.grad_accum}"
        )

    # --- model, optimizer, data ----------------------------------------------------------------
    torch.manual_seed(t.seed)
    model = GPT(cfg.model).to(device)
    optimizer = make_optimizer(model, t)
    gen = torch.Generator().manual_seed(t.seed + 1)  # batch sampling; its state is checkpointed
    if weights is not None:
        model.load_saved_state({k: v.to(device) for k, v in weights.items()})
        restore_optimizer(optimizer, state, meta["optimizer"])
        gen.set_state(state["rng.batches"])
        torch.set_rng_state(state["rng.torch"])
    corpus = load_corpus(t.corpus)
    T, B = cfg.model.block_size, t.batch_size
    eval_gen = torch.Generator().manual_seed(12345)  # fixed windows: comparable across steps and runs
    eval_set = [random_batch(corpus.val, T, B, eval_gen) for _ in range(t.eval_batches)]
    random_batch(corpus.train, T, 1, torch.Generator())  # fail early if the split is too short
    ddp = DistributedDataParallel(model) if world.distributed else model
    micro = B // world.size // t.grad_accum
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if t.dtype == "bfloat16" and device.startswith("cuda") else nullcontext()
    )

    def rows(m: int) -> slice:  # this rank's rows of micro-batch m within the global batch
        begin = (m * world.size + world.rank) * micro
        return slice(begin, begin + micro)

    def checkpoint(step: int) -> None:
        if not world.is_main:
            return
        opt_t, opt_groups = optimizer_tensors(optimizer)
        opt_t["rng.batches"] = gen.get_state()
        opt_t["rng.torch"] = torch.get_rng_state()
        save_checkpoint(
            run_dir, step, model.state_dict_for_save(), opt_t,
            {"run_id": run_id, "config": cfg.to_dict(), "optimizer": opt_groups},
        )

    if world.is_main:
        store.set_status(run_id, "running")
        if not quiet:
            print(f"run {run_id}  {cfg.name()}  {model.num_params():,} parameters  "
                  f"{world.size} process(es) on {device}", flush=True)

    # --- the loop --------------------------------------------------------------------------------
    total = t.steps  # None until a --minutes budget has been measured
    timing_steps = max(1, min(10, t.warmup))  # their learning rate does not depend on `total`
    progress = Progress(total, enabled=world.is_main and not quiet)
    step, tokens_per_step = start_step, B * T
    t_start = time.perf_counter()
    interrupted = False
    with StopFlag() as stop:
        while total is None or step < total:
            lr = lr_at(step, t.lr, t.warmup, total or 0, t.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            for m in range(t.grad_accum):
                x, y = random_batch(corpus.train, T, B, gen, rows=rows(m))
                x, y = x.to(device), y.to(device)
                sync = ddp.no_sync() if world.distributed and m < t.grad_accum - 1 else nullcontext()
                with sync, autocast:
                    _, loss = ddp(x, y)
                (loss / t.grad_accum).backward()
                loss_sum += loss.item() / t.grad_accum
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_bpb = D.mean_over_ranks(loss_sum, world) / LN2

            if total is None and step - start_step >= timing_steps:
                total = _steps_for_budget(t, step, time.perf_counter() - t_start)
                cfg = cfg.with_train(steps=total)
                progress.total = total
                if world.is_main:
                    store.update_config(run_id, cfg.to_dict())
            metrics = {"train/bpb": train_bpb, "lr": lr}
            if step % t.eval_every == 0 or step == total:
                metrics["val/bpb"] = mean_bpb(model, eval_set, device)
            if world.is_main and (step % t.log_every == 0 or "val/bpb" in metrics or step == total):
                store.log_metrics(run_id, step, metrics)
            progress.update(step, train_bpb, metrics.get("val/bpb"), tokens_per_step)
            if step % t.ckpt_every == 0 and step != total:
                checkpoint(step)
            if D.any_rank(stop.set or step == stop_at, world):
                interrupted = True
                break
    progress.close()
    checkpoint(step)
    elapsed = time.perf_counter() - t_start
    if world.is_main:
        if interrupted:
            store.set_status(run_id, "interrupted")
            print(f"stopped at step {step}; continue with: imo train --resume {run_id}", flush=True)
        else:
            val = evaluate_split(model, corpus.val, T, device=device)
            figures = {
                "val_bpb": val, "train_bpb": train_bpb, "steps": step, "params": model.num_params(),
                "tokens": step * tokens_per_step, "seconds": elapsed,
                "tokens_per_s": (step - start_step) * tokens_per_step / max(elapsed, 1e-9),
            }
            store.finish(run_id, figures)
            if not quiet:
                print(f"done: step {step}, validation {val:.3f} bits/byte "
                      f"({figures['tokens_per_s']:,.0f} tokens/s)", flush=True)
    return run_id


def _steps_for_budget(t, steps_done: int, seconds: float) -> int:
    """Turn a time budget into a step count from the throughput of the first steps; evaluations
    (forward only, about a third of a training step per batch) are counted in."""
    per_step = seconds / steps_done
    eval_cost = t.eval_batches * per_step / (3 * t.grad_accum)
    per_step_all = per_step + eval_cost / t.eval_every
    return max(steps_done, math.floor(t.minutes * 60 / per_step_all))
