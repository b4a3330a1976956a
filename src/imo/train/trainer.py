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

from imo.data.batches import random_batch
from imo.data.corpora import load_corpus
from imo.errors import ConfigError
from imo.model import GPT
from imo.runs.store import RunStore, config_hash
from imo.train import distributed as D
from imo.train.checkpoint import (
    checkpoint_dir,
    optimizer_tensors,
    read_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from imo.train.config import RunConfig
from imo.train.evaluate import LN2, evaluate_split, fixed_eval_set, mean_bpb
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
    `stop_at` stops as an interrupt would after that step (used by tests)."""
    world = D.init_world(cfg.train.device if cfg else "auto")
    store = store or (RunStore.open() if world.is_main else None)
    try:
        trainer = Trainer(cfg, resume, store, world, quiet)
        try:
            return trainer.run(stop_at)
        except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint is still valid
            if world.is_main:
                store.set_status(trainer.run_id, "interrupted")
            raise
        except BaseException:
            if world.is_main:
                store.set_status(trainer.run_id, "failed")
            raise
    finally:
        D.shutdown(world)


def train_or_reuse(cfg: RunConfig, store: RunStore | None = None, quiet: bool = True) -> str:
    """The id of a finished run with exactly this config, training one only if none exists
    (claims and exams use this, so identical experiments are not trained twice)."""
    store = store or RunStore.open()
    found = store.find(KIND, config_hash(cfg.to_dict()))
    if found:
        return found[0]
    run_id = train(cfg, store=store, quiet=quiet)
    if store.get(run_id)["status"] != "finished":
        # stopped by SIGINT/SIGTERM: the run is resumable, but a caller must not measure it
        raise KeyboardInterrupt(f"training of run {run_id} was interrupted")
    return run_id


class Trainer:
    """Everything that can refuse (device, corpus, shapes, the run to resume) is checked before a
    run is recorded, so bad input leaves nothing behind in the store."""

    def __init__(self, cfg: RunConfig | None, resume: str | None, store: RunStore | None,
                 world: D.World, quiet: bool) -> None:
        self.store, self.world, self.quiet = store, world, quiet
        meta, weights, state, self.start_step = None, None, {}, 0
        if resume is not None:  # the run's own config and latest checkpoint
            run_id = store.resolve(resume) if world.is_main else None
            if world.is_main and store.get(run_id)["status"] == "finished":
                raise ConfigError(f"run {run_id} has finished; train a new run (e.g. --init-from {run_id})")
            self.run_id = D.broadcast_object(run_id, world)
            self.run_dir = D.broadcast_object(str(store.run_dir(self.run_id)) if world.is_main else None, world)
            meta, weights, state = read_checkpoint(checkpoint_dir(self.run_dir))
            cfg = RunConfig.from_dict(meta["config"])
            self.start_step = meta["step"]
        t = cfg.train
        self.device = resolve_device(t.device)
        if self.device.startswith("cuda") and world.distributed:
            self.device = f"cuda:{world.local_rank}"
        self.corpus = _checked_corpus(cfg, world)
        self.micro = t.batch_size // world.size // t.grad_accum

        # model, optimizer, batch generator: fresh from the seed, or exactly as checkpointed
        torch.manual_seed(t.seed)
        self.model = GPT(cfg.model).to(self.device)
        self.optimizer = make_optimizer(self.model, t)
        self.gen = torch.Generator().manual_seed(t.seed + 1)
        if weights is not None:
            self.model.load_saved_state({k: v.to(self.device) for k, v in weights.items()})
            restore_optimizer(self.optimizer, state, meta["optimizer"])
            self.gen.set_state(state["rng.batches"])
            torch.set_rng_state(state["rng.torch"])
        else:
            if t.init_from:  # fine-tuning: start from another run's weights, which becomes the parent
                parent = D.broadcast_object(store.resolve(t.init_from) if world.is_main else None, world)
                cfg = cfg.with_train(init_from=parent)  # the full id, so the config names one run
                src = D.broadcast_object(str(store.run_dir(parent)) if world.is_main else None, world)
                init_meta, init, _ = read_checkpoint(checkpoint_dir(src), with_state=False)
                if "compress" in init_meta:  # packed ints / sparse layout: not float weights to train
                    raise ConfigError(
                        f"run {parent} is a pruned or quantized run; fine-tune it with `imo prune "
                        f"--finetune-steps N` (masks kept) or start from its parent run")
                try:
                    self.model.load_saved_state({k: v.to(self.device) for k, v in init.items()})
                except RuntimeError as e:
                    raise ConfigError(f"run {parent} does not fit this model's shape: "
                                      f"{str(e).splitlines()[0]}") from None
            run_id = (store.create_run(KIND, cfg.name(), cfg.to_dict(), parent=cfg.train.init_from)
                      if world.is_main else None)
            self.run_id = D.broadcast_object(run_id, world)
            self.run_dir = D.broadcast_object(str(store.run_dir(self.run_id)) if world.is_main else None, world)
        self.cfg = cfg
        self.ddp = DistributedDataParallel(self.model) if world.distributed else self.model
        self.autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16)
                         if t.dtype == "bfloat16" and self.device.startswith("cuda") else nullcontext())
        self.eval_set = fixed_eval_set(self.corpus.val, cfg.model.context_length, t.batch_size, t.eval_batches)
        self.last_saved = self.start_step if weights is not None else -1

    def rows(self, m: int) -> slice:
        """This rank's rows of micro-batch m within the global batch (all ranks draw the same batch)."""
        begin = (m * self.world.size + self.world.rank) * self.micro
        return slice(begin, begin + self.micro)

    def checkpoint(self, step: int) -> None:
        if not self.world.is_main or step == self.last_saved:  # never rewrite the live checkpoint
            return
        self.last_saved = step
        state, groups = optimizer_tensors(self.optimizer)
        state["rng.batches"] = self.gen.get_state()
        state["rng.torch"] = torch.get_rng_state()
        path = save_checkpoint(self.run_dir, step, self.model.state_dict_for_save(), state,
                               {"run_id": self.run_id, "config": self.cfg.to_dict(), "optimizer": groups})
        self.store.add_artifact(self.run_id, "checkpoint", path)

    def step(self, lr: float) -> float:
        """One optimizer step; returns the training loss in bits per byte (mean over ranks)."""
        t = self.cfg.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for m in range(t.grad_accum):
            x, y = random_batch(self.corpus.train, self.cfg.model.context_length, t.batch_size, self.gen,
                                rows=self.rows(m))
            x, y = x.to(self.device), y.to(self.device)
            last = m == t.grad_accum - 1
            sync = self.ddp.no_sync() if self.world.distributed and not last else nullcontext()
            with sync, self.autocast:
                _, loss = self.ddp(x, y)
            (loss / t.grad_accum).backward()
            loss_sum += loss.item() / t.grad_accum
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return D.mean_over_ranks(loss_sum, self.world) / LN2

    def run(self, stop_at: int | None = None) -> str:
        cfg, t, world, store = self.cfg, self.cfg.train, self.world, self.store
        if world.is_main:
            store.set_status(self.run_id, "running")
            if not self.quiet:
                print(f"run {self.run_id}  {cfg.name()}  {self.model.num_params():,} parameters  "
                      f"{world.size} process(es) on {self.device}", flush=True)
                changed = non_defaults(cfg)
                if changed:
                    print("  " + "  ".join(f"{k}={v}" for k, v in changed.items()), flush=True)
        total = t.steps  # None until a --minutes budget has been measured
        timing_steps = max(1, min(10, t.warmup))  # their learning rate does not depend on `total`
        tokens_per_step = t.batch_size * cfg.model.context_length
        progress = Progress(total, enabled=world.is_main and not self.quiet)
        step, train_bpb, interrupted = self.start_step, float("nan"), False
        t_start = time.perf_counter()
        with StopFlag() as stop:
            while total is None or step < total:
                lr = lr_at(step, t.lr, t.warmup, total or 0, t.min_lr_ratio)
                train_bpb = self.step(lr)
                step += 1
                if total is None and step - self.start_step >= timing_steps:
                    total = self.start_step + _steps_for_budget(t, step - self.start_step, time.perf_counter() - t_start)
                    self.cfg = cfg = cfg.with_train(steps=total)
                    progress.total = total
                    if world.is_main:
                        store.update_config(self.run_id, cfg.to_dict())
                metrics = {"train/bpb": train_bpb, "lr": lr}
                if step % t.eval_every == 0 or step == total:
                    metrics["val/bpb"] = mean_bpb(self.model, self.eval_set, self.device)
                if world.is_main and (step % t.log_every == 0 or "val/bpb" in metrics):
                    store.log_metrics(self.run_id, step, metrics)
                progress.update(step, train_bpb, metrics.get("val/bpb"), tokens_per_step)
                if step % t.ckpt_every == 0 and step != total:
                    self.checkpoint(step)
                if D.any_rank(stop.set or step == stop_at, world):
                    interrupted = True
                    break
        progress.close()
        self.checkpoint(step)
        elapsed = time.perf_counter() - t_start
        if not world.is_main:
            return self.run_id
        if interrupted:
            store.set_status(self.run_id, "interrupted")
            print(f"stopped at step {step}; continue with: imo train --resume {self.run_id}", flush=True)
            return self.run_id
        val = evaluate_split(self.model, self.corpus.val, cfg.model.context_length, device=self.device)
        figures = {
            "val_bpb": val, "train_bpb": train_bpb, "steps": step, "params": self.model.num_params(),
            "tokens": step * tokens_per_step, "seconds": elapsed,
            "tokens_per_s": (step - self.start_step) * tokens_per_step / max(elapsed, 1e-9),
        }
        store.finish(self.run_id, figures)
        if not self.quiet:
            print(f"done: step {step}, validation {val:.3f} bits/byte "
                  f"({figures['tokens_per_s']:,.0f} tokens/s)", flush=True)
        return self.run_id


def non_defaults(cfg: RunConfig) -> dict[str, object]:
    """The fields of a run's config that differ from the dataclass defaults."""
    from dataclasses import asdict

    from imo.model.config import ModelConfig
    from imo.train.config import TrainConfig

    out: dict[str, object] = {}
    for prefix, value, default in (("model", cfg.model, ModelConfig()), ("train", cfg.train, TrainConfig())):
        base = asdict(default)
        out.update({f"{prefix}.{k}": v for k, v in asdict(value).items() if base[k] != v})
    return out


def _checked_corpus(cfg: RunConfig, world: D.World):
    t = cfg.train
    if t.batch_size % (world.size * t.grad_accum):
        raise ConfigError(f"batch_size={t.batch_size} must be divisible by processes x grad_accum "
                          f"= {world.size * t.grad_accum}")
    corpus = load_corpus(t.corpus)
    for split in (corpus.train, corpus.val):  # fail now if a split is too short for the context
        random_batch(split, cfg.model.context_length, 1, torch.Generator())
    return corpus


def _steps_for_budget(t, steps_done: int, seconds: float) -> int:
    """Turn a time budget into a step count from the throughput of the first steps; evaluations
    (forward only, about a third of a training step per batch) are counted in."""
    per_step = seconds / steps_done
    eval_cost = t.eval_batches * per_step / (3 * t.grad_accum)
    per_step_all = per_step + eval_cost / t.eval_every
    return max(steps_done, math.floor(t.minutes * 60 / per_step_all))
