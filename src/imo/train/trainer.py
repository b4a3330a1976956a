"""`imo train`: a GPT on a corpus, recorded as a run in the store, trained by imo.train.loop.fit
(AdamW, warmup + cosine, clipping, accumulation, periodic eval and checkpoints, an exact resume,
clean stops on Ctrl-C/SIGTERM, DDP under torchrun). This module builds the model and the batches,
checks every input before a run is recorded, and writes the run's figures.

Exactness: everything that decides the numbers (model, optimizer moments, the batch generator,
the torch RNG, the step count) is in the checkpoint, so a resumed run repeats the curve of an
uninterrupted one bit for bit on the same machine.

    run_id = train(RunConfig.build(preset="tiny", train={"steps": 200}))
"""

import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from imo.data.batches import random_batch, windows
from imo.data.corpora import load_corpus
from imo.doctor import run_mfu
from imo.errors import ConfigError, RunBusy
from imo.model import GPT
from imo.runs.store import RunStore, config_hash
from imo.train import distributed as D
from imo.train.checkpoint import POINTER, checkpoint_dir, read_checkpoint
from imo.train.config import RunConfig, TrainConfig
from imo.train.evaluate import fixed_eval_set, mean_bpb
from imo.train.loop import FitConfig, FitResult, RunLog, StopFlag, default_loss, fit, make_optimizer  # noqa: F401
from imo.train.precision import autocast as precision_autocast
from imo.train.precision import native_bf16, resolve_dtype
from imo.train.tracking import TensorBoard

KIND = "train"


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    return name


@dataclass(frozen=True)
class Outcome:
    run_id: str
    signal: int | None  # the signal that stopped the run cleanly (None: finished, or stop_at)
    stopped: bool


def train(
    cfg: RunConfig | None = None,
    *,
    resume: str | None = None,
    store: RunStore | None = None,
    quiet: bool = False,
    stop_at: int | None = None,
    compile: bool = False,
    name: str | None = None,
    tags: Sequence[str] = (),
    fingerprint: str | None = None,
) -> str:
    """Train a new run from `cfg`, or continue run `resume`; returns the run id.
    `name`/`tags` label the run in listings (default name: the config's slug); `fingerprint` is
    stored with it for train_or_reuse. `stop_at` stops as an interrupt would after that step
    (tests); `compile` runs the training forward/backward through torch.compile (the numbers
    differ within float rounding)."""
    return run_training(cfg, resume=resume, store=store, quiet=quiet, stop_at=stop_at, compile=compile,
                        name=name, tags=tags, fingerprint=fingerprint).run_id


def run_training(
    cfg: RunConfig | None = None,
    *,
    resume: str | None = None,
    store: RunStore | None = None,
    quiet: bool = False,
    stop_at: int | None = None,
    compile: bool = False,
    name: str | None = None,
    tags: Sequence[str] = (),
    fingerprint: str | None = None,
    tensorboard: Path | None = None,
) -> Outcome:
    """As train(), also saying whether (and by which signal) the run was stopped;
    `tensorboard`: also write the metrics as event files under that folder/run id."""
    world = D.init_world(cfg.train.device if cfg else "auto")
    store = store or (RunStore.open() if world.is_main else None)
    tb = TensorBoard(tensorboard) if tensorboard is not None and world.is_main else None
    try:
        with ExitStack() as locks:
            trainer = Trainer(cfg, resume, store, world, quiet, locks, compile, name=name, tags=tags,
                              fingerprint=fingerprint)
            if tb is not None:
                tb.open(trainer.run_id)
                trainer.sinks.append(tb.log)
                locks.callback(tb.close)
            try:
                return trainer.run(stop_at)
            except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint is still valid
                if world.is_main:
                    store.set_status(trainer.run_id, "interrupted")
                raise
            except BaseException as e:
                if world.is_main:
                    store.set_status(trainer.run_id, "failed")
                if _out_of_memory(e):
                    raise trainer.allocation_error(e) from None
                raise
    finally:
        D.shutdown(world)


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError | MemoryError) or (
        isinstance(e, RuntimeError) and any(s in str(e) for s in ("can't allocate memory", "out of memory")))


def train_or_reuse(cfg: RunConfig, store: RunStore | None = None, quiet: bool = True,
                   code_fingerprint: str | None = None) -> str:
    """The id of a finished run with exactly this config and code fingerprint, training one only
    if none exists (claims and exams use this, so identical experiments are not trained twice).
    A lock in the store makes a second process with the same config wait, then reuse the run."""
    store = store or RunStore.open()
    if cfg.train.dtype == "auto":  # float32, so their figures do not depend on the CPU they ran on
        cfg = cfg.with_train(dtype="float32")
    key = config_hash(cfg.to_dict())
    with store.lock(f"reuse-{KIND}-{key}-{code_fingerprint or ''}"[:120]):
        found = store.find(KIND, key, fingerprint=code_fingerprint)
        if found:
            return found[0]
        run_id = train(cfg, store=store, quiet=quiet, fingerprint=code_fingerprint)
    if store.get(run_id)["status"] != "finished":
        # stopped by SIGINT/SIGTERM: the run is resumable, but a caller must not measure it
        raise KeyboardInterrupt(f"training of run {run_id} was interrupted")
    return run_id


class Trainer:
    """Everything that can refuse (device, corpus, shapes, the run to resume) is checked before a
    run is recorded, so bad input leaves nothing behind in the store."""

    def __init__(self, cfg: RunConfig | None, resume: str | None, store: RunStore | None,
                 world: D.World, quiet: bool, locks: ExitStack, compile: bool = False, *,
                 name: str | None = None, tags: Sequence[str] = (), fingerprint: str | None = None) -> None:
        self.store, self.world, self.quiet, self.compile = store, world, quiet, compile
        self.sinks: list = []  # extra metric mirrors (TensorBoard)
        self.new_run = resume is None
        meta, weights, state, self.start_step = None, None, {}, 0
        if resume is not None:  # the run's own config and latest checkpoint
            run_id = store.resolve(resume) if world.is_main else None
            if world.is_main:
                _lock_run(store, run_id, locks)
                if store.get(run_id)["status"] == "finished":
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
        # auto -> what this machine does natively; the config records the dtype the run used
        self.dtype_auto = t.dtype == "auto"
        cfg = cfg.with_train(dtype=resolve_dtype(t.dtype, self.device))
        t = cfg.train
        self.corpus = _checked_corpus(cfg, world)
        self.micro = t.batch_size // world.size // t.grad_accum

        # model and optimizer: fresh from the seed, or exactly as checkpointed; fit restores
        # the optimizer, the batch generator and the torch RNG from `self.resume`
        torch.manual_seed(t.seed)
        self.model = GPT(cfg.model).to(self.device)
        self.resume = None
        if weights is not None:
            self.model.load_saved_state({k: v.to(self.device) for k, v in weights.items()})
            self.resume = (meta, state)
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
                _check_shapes(parent, init, self.model.state_dict_for_save())
                try:
                    self.model.load_saved_state({k: v.to(self.device) for k, v in init.items()})
                except RuntimeError as e:
                    raise ConfigError(f"run {parent} does not fit this model's shape: "
                                      f"{str(e).splitlines()[0]}") from None
            run_id = (store.create_run(KIND, name or cfg.name(), cfg.to_dict(), parent=cfg.train.init_from,
                                       fingerprint=fingerprint, tags=tags)
                      if world.is_main else None)
            if world.is_main:
                _lock_run(store, run_id, locks)
            self.run_id = D.broadcast_object(run_id, world)
            self.run_dir = D.broadcast_object(str(store.run_dir(self.run_id)) if world.is_main else None, world)
        self.cfg = cfg
        self.eval_set = fixed_eval_set(self.corpus.val, cfg.model.context_length, t.batch_size, t.eval_batches)

    def allocation_error(self, e: BaseException) -> ConfigError:
        """Memory ran out: one line with a hint; a new run that never checkpointed is removed."""
        m, t = self.cfg.model, self.cfg.train
        if self.world.is_main and self.new_run and not (Path(self.run_dir) / POINTER).exists():
            self.store.rm(self.run_id)
        hint = ("--attn tiled (naive attention holds a context x context score matrix per head)"
                if m.attn == "naive" else "a smaller --batch-size, --context or --width, or --grad-accum N")
        return ConfigError(f"not enough memory for this run (context {m.context_length}, batch "
                           f"{t.batch_size // t.grad_accum} per micro-step): {str(e).splitlines()[0][:120]}; try {hint}")

    def batch(self, gen: torch.Generator, m: int):
        """This rank's rows of micro-batch m of the global batch (all ranks draw the same batch)."""
        t = self.cfg.train
        begin = (m * self.world.size + self.world.rank) * self.micro
        return random_batch(self.corpus.train, self.cfg.model.context_length, t.batch_size, gen,
                            rows=slice(begin, begin + self.micro))

    def final_batches(self) -> list:
        """The whole validation split in non-overlapping windows: the run's final figure."""
        return list(windows(self.corpus.val, self.cfg.model.context_length))

    def on_total(self, total: int) -> None:
        """A --minutes budget became `total` steps: the config says so (resume keeps it)."""
        self.cfg = self.cfg.with_train(steps=total)
        if self.world.is_main:
            self.store.update_config(self.run_id, self.cfg.to_dict())

    def run(self, stop_at: int | None = None) -> Outcome:
        cfg, t, world, store = self.cfg, self.cfg.train, self.world, self.store
        if world.is_main:
            store.set_status(self.run_id, "running")
            if not self.quiet:
                print(f"run {self.run_id}  {cfg.name()}  {self.model.num_params():,} parameters  "
                      f"{world.size} process(es) on {self.device}", flush=True)
                changed = non_defaults(cfg)
                changed.pop("train.dtype", None)
                if changed:
                    print("  " + "  ".join(f"{k}={v}" for k, v in changed.items()), flush=True)
                why = (f"auto: {'native' if native_bf16(self.device) else 'no native'} bf16 on this {self.device}"
                       if self.dtype_auto else "as asked")
                mixed = " mixed precision (fp32 weights and optimizer, bf16 autocast)" if t.dtype == "bfloat16" else ""
                print(f"  precision {t.dtype}{mixed} ({why}); {torch.get_num_threads()} thread(s)"
                      + ("; torch.compile" if self.compile else ""), flush=True)
        tokens_per_step = t.batch_size * cfg.model.context_length
        log = RunLog(store if world.is_main else None, self.run_id, self.run_dir,
                     meta=lambda: {"run_id": self.run_id, "config": self.cfg.to_dict()}, on_total=self.on_total,
                     sinks=self.sinks)
        autocast = partial(precision_autocast, t.dtype, self.device)  # evaluation keeps fp32
        final = self.final_batches() if world.is_main else None
        loss_fn = default_loss
        if self.compile:
            compiled = _compiled(self.model)
            loss_fn = lambda m, b: default_loss(compiled if m is self.model else m, b)  # noqa: E731
        res = fit(self.model, self.batch, fit_config(t), run=log, resume=self.resume, world=world,
                  evaluate=lambda m: {"val/bpb": mean_bpb(m, self.eval_set, self.device)},
                  final_eval=final, autocast=autocast, tokens_per_step=tokens_per_step, loss_fn=loss_fn,
                  quiet=self.quiet, stop_at=stop_at)
        if not world.is_main:
            return Outcome(self.run_id, res.signal, res.stopped)
        if res.stopped:
            store.set_status(self.run_id, "interrupted")
            where = "during the final evaluation" if res.steps == res.total else f"at step {res.steps}"
            print(f"stopped {where}; continue with: imo train --resume {self.run_id}", flush=True)
            return Outcome(self.run_id, res.signal, True)
        done = res.steps - self.start_step
        figures = {
            "val_bpb": res.final_bpb, "train_bpb": res.train_bpb, "steps": res.steps,
            "params": self.model.num_params(), "tokens": res.steps * tokens_per_step, "seconds": res.seconds,
            "tokens_per_s": done * tokens_per_step / max(res.seconds, 1e-9), "dtype": t.dtype,
            # training speed alone (the evaluations and checkpoints left out): what MFU is of
            "train_tokens_per_s": done * tokens_per_step / max(res.step_seconds, 1e-9),
        }
        # MFU against this machine's peak at the run's own matmul shapes (imo doctor's, cached);
        # quiet runs (claims, exams) only use a cached peak, so they never pay to measure one
        found = run_mfu(cfg.model, figures["train_tokens_per_s"], t.dtype, self.device,
                        self.micro * cfg.model.context_length, measure=not self.quiet)
        if found is not None:
            figures["mfu"], figures["peak_flops"] = found
        store.finish(self.run_id, figures)
        if not self.quiet:
            mfu = f", MFU {figures['mfu']:.0%}" if "mfu" in figures else ""
            print(f"done: step {res.steps}, validation {res.final_bpb:.3f} bits/byte; "
                  f"{figures['train_tokens_per_s']:,.0f} tokens/s{mfu} ({t.dtype})", flush=True)
        return Outcome(self.run_id, None, False)


def _compiled(model: GPT):
    """torch.compile of the training forward, its kernels cached beside imo's other caches
    (TORCHINDUCTOR_CACHE_DIR wins), so a second run of the same shape compiles in seconds."""
    from imo import paths

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(paths.corpus_cache_dir().parent / "inductor"))
    return torch.compile(model)


def _check_shapes(parent: str, saved: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> None:
    """Refuse --init-from a run whose tensors differ from this model's, naming them and their
    shapes (a position table that grew with --context is the usual one)."""
    diffs = [f"{k} {tuple(saved[k].shape)} -> {tuple(v.shape)}" for k, v in own.items()
             if k in saved and saved[k].shape != v.shape]
    diffs += [f"{k} missing in run {parent}" for k in own if k not in saved]
    diffs += [f"{k} not in this model" for k in saved if k not in own]
    if diffs:
        more = f" and {len(diffs) - 4} more" if len(diffs) > 4 else ""
        raise ConfigError(f"run {parent} does not fit this model's shape: {'; '.join(diffs[:4])}{more}")


def _lock_run(store: RunStore, run_id: str, locks: ExitStack) -> None:
    """Hold the run's lock while training it, so a second `--resume` of it is refused."""
    try:
        locks.enter_context(store.lock(f"run-{run_id}", wait=False))
    except RunBusy:
        raise RunBusy(f"run {run_id} is being trained by another process; wait for it or stop it "
                      f"(Ctrl-C there checkpoints it)") from None


def fit_config(t: TrainConfig) -> FitConfig:
    """The loop's knobs of a training config (the batch generator is seeded with seed + 1)."""
    return FitConfig(steps=t.steps, minutes=None if t.steps is not None else t.minutes, lr=t.lr,
                     warmup=t.warmup, min_lr_ratio=t.min_lr_ratio, weight_decay=t.weight_decay,
                     betas=(t.beta1, t.beta2), grad_clip=t.grad_clip, grad_accum=t.grad_accum,
                     eval_every=t.eval_every, log_every=t.log_every, ckpt_every=t.ckpt_every, seed=t.seed + 1)


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
