"""Training and loading memory runs (`imo train --arch bswa|fam|infini`).

The trunk's config is an ordinary imo.train.config.RunConfig; the memory's own MemoryConfig is
stored beside it under "memory" in the run's config (in the store and in each checkpoint's
meta.json), and the weights are safetensors, like every imo checkpoint. Training goes through
imo.train.loop.fit (AdamW, warmup + cosine, clipping, checkpoints, exact resume, clean stops),
with backpropagation through every block of a training window (`context_length` tokens).
Rows can mix the corpus with passkey episodes (imo.memory.passkey): with `passkey` = p, a row is
an episode with probability p, placed at the row's end after corpus text. Runs are float32 ("auto"
is float32 here: Infini's memory sums grow with length, and bf16 would round them away).
Infini runs log sigmoid(beta) per layer and head as `gate/L.H` every `log_every` steps.

    run_id = train_memory(RunConfig.build(preset="tiny", train={"steps": 200}), MemoryConfig(arch="fam"))
    model, meta = load_memory_model(store.run_dir(run_id))
"""

import random
from contextlib import ExitStack
from dataclasses import replace

import numpy as np
import torch

from imo.data.batches import random_batch, windows
from imo.data.corpora import load_corpus
from imo.errors import CheckpointError, ConfigError, RunBusy
from imo.memory.config import MemoryConfig
from imo.memory.model import MemoryLM
from imo.memory.passkey import MIN_BYTES, training_episode
from imo.runs.store import RunStore
from imo.train.checkpoint import checkpoint_dir, read_checkpoint
from imo.train.config import RunConfig
from imo.train.evaluate import fixed_eval_set, mean_bpb
from imo.train.loop import RunLog, fit
from imo.train.trainer import fit_config, resolve_device

KIND = "memory"


def memory_config(config: dict) -> MemoryConfig:
    if "memory" not in config:
        raise ConfigError("this run has no memory config (it is not a memory run)")
    return MemoryConfig.from_dict(config["memory"])


def full_config(cfg: RunConfig, mem: MemoryConfig, passkey: float, passkey_len: tuple[int, int]) -> dict:
    return {**cfg.to_dict(), "memory": mem.to_dict(),
            "passkey": {"fraction": passkey, "min_bytes": passkey_len[0], "max_bytes": passkey_len[1]}}


class MemoryBatches:
    """Rows of context_length + 1 bytes: corpus windows, a fraction replaced by passkey episodes
    (the episode ends the row; corpus text before it). Seeded by fit's generator only."""

    def __init__(self, data: np.ndarray, T: int, batch: int, passkey: float, lengths: tuple[int, int]) -> None:
        self.data, self.T, self.batch, self.passkey, self.lengths = data, T, batch, passkey, lengths

    def __call__(self, gen: torch.Generator, m: int):
        x, y = random_batch(self.data, self.T, self.batch, gen)
        if self.passkey <= 0:
            return x, y
        rows = torch.cat([x, y[:, -1:]], 1)  # (B, T + 1)
        draw = torch.rand(self.batch, generator=gen).tolist()
        seeds = torch.randint(0, 2**31 - 1, (self.batch,), generator=gen).tolist()
        for r in range(self.batch):
            if draw[r] < self.passkey:
                text = training_episode(*self.lengths, random.Random(seeds[r]))[-(self.T + 1):]
                rows[r, -len(text):] = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def _check(cfg: RunConfig, mem: MemoryConfig, passkey: float, lengths: tuple[int, int]) -> None:
    if not 0.0 <= passkey <= 1.0:
        raise ConfigError(f"passkey fraction must be in [0, 1], got {passkey}")
    lo, hi = lengths
    if passkey > 0 and not (MIN_BYTES <= lo <= hi <= cfg.model.context_length + 1):
        raise ConfigError(f"passkey episode lengths {lo}-{hi} must satisfy {MIN_BYTES} <= min <= max <= context + 1 "
                          f"= {cfg.model.context_length + 1}")
    if cfg.train.grad_accum != 1:
        raise ConfigError("memory runs train without --grad-accum (one micro-batch per step)")
    MemoryLM(cfg.model, mem)  # refuses positions and families it cannot read block by block


def train_memory(cfg: RunConfig | None, mem: MemoryConfig | None = None, *, resume: str | None = None,
                 passkey: float = 0.0, passkey_len: tuple[int, int] = (256, 1024), store: RunStore | None = None,
                 quiet: bool = False, name: str | None = None, tags=(), stop_at: int | None = None):
    """Train a new memory run (or continue `resume`); returns (run_id, stopped)."""
    store = store or RunStore.open()
    meta = weights = None
    state: dict = {}
    with ExitStack() as locks:
        if resume is not None:
            run_id = store.resolve(resume)
            r = store.get(run_id)
            if r["kind"] != KIND:
                raise ConfigError(f"run {run_id} is not a memory run")
            if r["status"] == "finished":
                raise ConfigError(f"run {run_id} has finished; train a new run")
            _lock(store, run_id, locks)
            meta, weights, state = read_checkpoint(checkpoint_dir(store.run_dir(run_id)))
            full = meta["config"]
            cfg, mem = RunConfig.from_dict(full), memory_config(full)
            pk = full.get("passkey", {})
            passkey, passkey_len = pk.get("fraction", 0.0), (pk.get("min_bytes", 256), pk.get("max_bytes", 1024))
        t = cfg.train
        if t.dtype == "bfloat16":
            raise ConfigError("memory runs train in float32 (--dtype float32 or auto)")
        cfg = cfg.with_train(dtype="float32")
        _check(cfg, mem, passkey, passkey_len)
        device = resolve_device(t.device)
        corpus = load_corpus(t.corpus)
        for split in (corpus.train, corpus.val):
            random_batch(split, cfg.model.context_length, 1, torch.Generator())
        torch.manual_seed(t.seed)
        model = MemoryLM(cfg.model, mem).to(device)
        full = full_config(cfg, mem, passkey, passkey_len)
        if weights is not None:
            model.load_saved_state({k: v.to(device) for k, v in weights.items()})
        else:
            run_id = store.create_run(KIND, name or f"{mem.arch}-{cfg.name()}", full, tags=tags)
            _lock(store, run_id, locks)
        store.set_status(run_id, "running")
        log = RunLog(store, run_id, store.run_dir(run_id), meta=lambda: {"run_id": run_id, "config": full})
        eval_set = fixed_eval_set(corpus.val, cfg.model.context_length, t.batch_size, t.eval_batches)
        callbacks = [_gate_logger(t.log_every)] if mem.arch == "infini" else []
        if not quiet:
            state_f = mem.state_floats(cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head)
            print(f"run {run_id}  {mem.arch} block {mem.block}  {model.num_params():,} parameters  "
                  f"state {state_f:,} floats per sequence  float32 on {device}", flush=True)
        res = fit(model, MemoryBatches(corpus.train, cfg.model.context_length, t.batch_size, passkey, passkey_len),
                  replace(fit_config(t)), run=log, resume=None if meta is None else (meta, state),
                  evaluate=lambda m: {"val/bpb": mean_bpb(m, eval_set, device)},
                  final_eval=list(windows(corpus.val, cfg.model.context_length)), callbacks=callbacks,
                  tokens_per_step=t.batch_size * cfg.model.context_length, quiet=quiet, stop_at=stop_at)
        if res.stopped:
            store.set_status(run_id, "interrupted")
            if not quiet:
                print(f"stopped at step {res.steps}; continue with: imo train --resume {run_id}", flush=True)
            return run_id, True
        figures = {"val_bpb": res.final_bpb, "train_bpb": res.train_bpb, "steps": res.steps,
                   "params": model.num_params(), "seconds": res.seconds, "dtype": "float32",
                   "train_tokens_per_s": (res.steps - (meta or {}).get("step", 0)) * t.batch_size
                   * cfg.model.context_length / max(res.step_seconds, 1e-9)}
        if mem.arch == "infini":
            figures["gate_mean"] = float(model.gates().mean())
        store.finish(run_id, figures)
        if not quiet:
            print(f"done: step {res.steps}, validation {res.final_bpb:.3f} bits/byte; "
                  f"{figures['train_tokens_per_s']:,.0f} tokens/s", flush=True)
        return run_id, False


def _gate_logger(every: int):
    def log(info) -> dict | None:
        if info.step % every:
            return None
        g = info.model.gates()
        return {f"gate/{i}.{h}": float(g[i, h]) for i in range(g.size(0)) for h in range(g.size(1))}

    return log


def _lock(store: RunStore, run_id: str, locks: ExitStack) -> None:
    try:
        locks.enter_context(store.lock(f"run-{run_id}", wait=False))
    except RunBusy:
        raise RunBusy(f"run {run_id} is being trained by another process") from None


def load_memory_model(run_dir, device: str = "cpu") -> tuple[MemoryLM, dict]:
    """The memory model of a run's latest checkpoint, in eval mode, and its metadata."""
    meta, weights, _ = read_checkpoint(checkpoint_dir(run_dir), with_state=False)
    full = meta["config"]
    model = MemoryLM(RunConfig.from_dict(full).model, memory_config(full))
    try:
        model.load_saved_state(weights)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint in '{run_dir}' does not match its config: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta


def load_any(store: RunStore, run: str, device: str = "cpu"):
    """(model, meta, kind) of a run: a memory run's MemoryLM or a byte GPT (kind 'gpt')."""
    from imo.train.checkpoint import load_model

    run_id = store.resolve(run)
    r = store.get(run_id)
    if r["kind"] == KIND:
        model, meta = load_memory_model(store.run_dir(run_id), device)
        return model, meta, model.mem.arch
    model, meta = load_model(store.run_dir(run_id), device)
    if (meta["config"].get("tokenizer") or {}).get("kind", "byte") != "byte":
        raise ConfigError(f"run {run_id} is an imported token model; the passkey exam reads byte models")
    return model, meta, "gpt"
