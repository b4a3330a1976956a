"""Training and loading memory runs (`imo train --arch bswa|fam|infini`).

The trunk's config is an ordinary imo.train.config.RunConfig; the memory's own MemoryConfig is
stored beside it under "memory" in the run's config (in the store and in each checkpoint's
meta.json), and the weights are safetensors, like every imo checkpoint. Training goes through
imo.train.loop.fit (AdamW, warmup + cosine, clipping, checkpoints, exact resume, clean stops),
with backpropagation through every block of a training window (`context_length` tokens).
Rows can mix the corpus with passkey episodes (imo.memory.passkey): with `passkey` = p, a row is
an episode with probability p, placed at the row's end after corpus text. Rows may be longer than
the context (`row_length`): a memory model reads them window by window with truncated
backpropagation (window_loss), so training memory does not grow with the row. A plain GPT
(`mem` None) can be trained on the same rows (of its context) for a fair baseline. Runs are float32 ("auto"
is float32 here: Infini's memory sums grow with length, and bf16 would round them away).
Infini runs log sigmoid(beta) per layer and head as `gate/L.H` every `log_every` steps.

    run_id = train_memory(RunConfig.build(preset="tiny", train={"steps": 200}), MemoryConfig(arch="fam"))
    model, meta = load_memory_model(store.run_dir(run_id))
"""

import random
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imo.data.batches import random_batch, windows
from imo.data.corpora import load_corpus
from imo.errors import CheckpointError, ConfigError, RunBusy
from imo.memory.config import MemoryConfig
from imo.memory.model import MemoryLM
from imo.memory.passkey import MIN_BYTES, training_episode
from imo.model.gpt import GPT
from imo.runs.store import RunStore
from imo.train.checkpoint import checkpoint_dir, read_checkpoint
from imo.train.config import RunConfig
from imo.train.evaluate import fixed_eval_set, mean_bpb
from imo.train.loop import RunLog, fit
from imo.train.trainer import fit_config, resolve_device

KIND = "memory"


def memory_config(config: dict) -> MemoryConfig | None:
    """The run's memory (None: a plain GPT trained on these rows)."""
    if "memory" not in config:
        raise ConfigError("this run has no memory config (it is not a memory run)")
    return None if config["memory"] is None else MemoryConfig.from_dict(config["memory"])


@dataclass(frozen=True)
class Rows:
    """What a training row is: `row_length` bytes (read in windows of the context, the state
    carried between them with its gradient cut), a `passkey` fraction of them ending with an
    episode of `passkey_bytes` = (min, max) bytes."""

    passkey: float = 0.0
    passkey_bytes: tuple[int, int] = (256, 1024)
    row_length: int = 0  # 0: the context length

    def to_dict(self) -> dict:
        return {"passkey": self.passkey, "passkey_bytes": list(self.passkey_bytes), "row_length": self.row_length}

    @classmethod
    def from_dict(cls, d: dict) -> "Rows":
        return cls(d["passkey"], tuple(d["passkey_bytes"]), d["row_length"])


def build_model(cfg: RunConfig, mem: MemoryConfig | None) -> nn.Module:
    return GPT(cfg.model) if mem is None else MemoryLM(cfg.model, mem)


class MemoryBatches:
    """Rows of L + 1 bytes: corpus windows, a fraction replaced by passkey episodes (the episode
    ends the row; corpus text before it). Drawn from fit's generator only."""

    def __init__(self, data: np.ndarray, L: int, batch: int, passkey: float, lengths: tuple[int, int]) -> None:
        self.data, self.L, self.batch, self.passkey, self.lengths = data, L, batch, passkey, lengths

    def __call__(self, gen: torch.Generator, m: int):
        x, y = random_batch(self.data, self.L, self.batch, gen)
        if self.passkey <= 0:
            return x, y
        rows = torch.cat([x, y[:, -1:]], 1)  # (B, L + 1)
        draw = torch.rand(self.batch, generator=gen).tolist()
        seeds = torch.randint(0, 2**31 - 1, (self.batch,), generator=gen).tolist()
        for r in range(self.batch):
            if draw[r] < self.passkey:
                text = training_episode(*self.lengths, random.Random(seeds[r]))
                rows[r, -len(text):] = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def window_loss(window: int):
    """Truncated backpropagation through time: a row longer than `window` is read window by
    window; each window's share of the mean loss is backpropagated at once and the state goes on
    without its gradient, so training memory is that of one window whatever the row length. The
    value returned is the row's mean loss; its gradient is the last window's share (fit
    backpropagates it), so the step's gradient is the gradient of the mean."""

    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        L = x.size(1)
        if L <= window:
            return model(x, y)[1]
        state, done = model.init_state(x.size(0)), 0.0
        for s in range(0, L, window):
            logits, state = model.stream(x[:, s : s + window], state)
            part = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[:, s : s + window].reshape(-1))
            share = part * (logits.size(1) / L)
            if s + window >= L:
                return share + done
            share.backward()
            done += share.item()
            state = state.detach()
        raise AssertionError("unreachable")

    return loss_fn


def _check(cfg: RunConfig, mem: MemoryConfig | None, rows: Rows) -> None:
    T = cfg.model.context_length
    L = rows.row_length or T
    if not 0.0 <= rows.passkey <= 1.0:
        raise ConfigError(f"passkey fraction must be in [0, 1], got {rows.passkey}")
    if L < T:
        raise ConfigError(f"row length {L} must be >= the context {T}")
    if L > T and mem is None:
        raise ConfigError(f"a plain GPT reads rows of its context only ({T}); drop --row-length or give --arch")
    if L > T and T % mem.block:
        raise ConfigError(f"rows longer than the context are read window by window: the block {mem.block} "
                          f"must divide the context {T}")
    lo, hi = rows.passkey_bytes
    if rows.passkey > 0 and not (MIN_BYTES <= lo <= hi <= L + 1):
        raise ConfigError(f"passkey episode lengths {lo}-{hi} must satisfy {MIN_BYTES} <= min <= max <= row length + 1 "
                          f"= {L + 1}")
    if cfg.train.grad_accum != 1:
        raise ConfigError("memory runs train without --grad-accum (one micro-batch per step)")
    build_model(cfg, mem)  # refuses positions and families it cannot read block by block


def train_memory(cfg: RunConfig | None, mem: MemoryConfig | None = None, *, rows: Rows = Rows(),
                 resume: str | None = None, store: RunStore | None = None, quiet: bool = False,
                 name: str | None = None, tags=(), stop_at: int | None = None) -> tuple[str, bool]:
    """Train a new memory run (`mem` None: a plain GPT on the same rows), or continue `resume`;
    returns (run_id, stopped)."""
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
            cfg, mem, rows = RunConfig.from_dict(meta["config"]), memory_config(meta["config"]), Rows.from_dict(meta["config"]["rows"])
        t = cfg.train
        if t.dtype == "bfloat16":
            raise ConfigError("memory runs train in float32 (--dtype float32 or auto)")
        cfg = cfg.with_train(dtype="float32")
        _check(cfg, mem, rows)
        device = resolve_device(t.device)
        corpus = load_corpus(t.corpus)
        L = rows.row_length or cfg.model.context_length
        for split in (corpus.train, corpus.val):
            random_batch(split, L, 1, torch.Generator())
        torch.manual_seed(t.seed)
        model = build_model(cfg, mem).to(device)
        arch = "gpt" if mem is None else mem.arch
        full = {**cfg.to_dict(), "memory": None if mem is None else mem.to_dict(), "rows": rows.to_dict()}
        if weights is not None:
            model.load_saved_state({k: v.to(device) for k, v in weights.items()})
        else:
            run_id = store.create_run(KIND, name or f"{arch}-{cfg.name()}", full, tags=tags)
            _lock(store, run_id, locks)
        store.set_status(run_id, "running")
        log = RunLog(store, run_id, store.run_dir(run_id), meta=lambda: {"run_id": run_id, "config": full})
        eval_set = fixed_eval_set(corpus.val, cfg.model.context_length, t.batch_size, t.eval_batches)
        callbacks = [_gate_logger(t.log_every)] if arch == "infini" else []
        if not quiet:
            what = "full attention" if mem is None else (
                f"block {mem.block}, state {mem.state_floats(cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head):,}"
                " floats per sequence")
            print(f"run {run_id}  {arch} ({what})  {model.num_params():,} parameters  rows of {L} bytes, "
                  f"{rows.passkey:.0%} passkey  float32 on {device}", flush=True)
        res = fit(model, MemoryBatches(corpus.train, L, t.batch_size, rows.passkey, rows.passkey_bytes),
                  fit_config(t), loss_fn=window_loss(cfg.model.context_length), run=log,
                  resume=None if meta is None else (meta, state),
                  evaluate=lambda m: {"val/bpb": mean_bpb(m, eval_set, device)},
                  final_eval=list(windows(corpus.val, cfg.model.context_length)), callbacks=callbacks,
                  tokens_per_step=t.batch_size * L, quiet=quiet, stop_at=stop_at)
        if res.stopped:
            store.set_status(run_id, "interrupted")
            if not quiet:
                print(f"stopped at step {res.steps}; continue with: imo train --resume {run_id}", flush=True)
            return run_id, True
        figures = {"val_bpb": res.final_bpb, "train_bpb": res.train_bpb, "steps": res.steps,
                   "params": model.num_params(), "seconds": res.seconds, "dtype": "float32",
                   "train_tokens_per_s": (res.steps - (meta or {}).get("step", 0)) * t.batch_size * L
                   / max(res.step_seconds, 1e-9)}
        if arch == "infini":
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


def load_memory_model(run_dir, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The model of a memory run's latest checkpoint (a MemoryLM, or a GPT trained on the same
    rows), in eval mode, and its metadata."""
    meta, weights, _ = read_checkpoint(checkpoint_dir(run_dir), with_state=False)
    full = meta["config"]
    model = build_model(RunConfig.from_dict(full), memory_config(full))
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
        return model, meta, model.mem.arch if isinstance(model, MemoryLM) else "gpt"
    model, meta = load_model(store.run_dir(run_id), device)
    if (meta["config"].get("tokenizer") or {}).get("kind", "byte") != "byte":
        raise ConfigError(f"run {run_id} is an imported token model; the passkey exam reads byte models")
    return model, meta, "gpt"
