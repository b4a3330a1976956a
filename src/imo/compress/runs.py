"""Transforms on stored runs: prune or quantize a run's model into a new run (parent link) whose
checkpoint is the compact layout of imo.compress.storage, with its size and bits/byte measured
against the parent on the same validation bytes. Also: fine-tuning with masks kept, activation
outlier statistics, and bytes on disk.

    new_id, figures = prune_run(store, "3fa2", "magnitude", 0.5, finetune_steps=100)
    new_id, figures = quantize_run(store, new_id, QuantConfig(bits=8))
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import torch
from torch import nn

from imo.compress.prune import keep_masks, linear_filter, prune_
from imo.compress.quantize import QuantConfig, quantize_
from imo.compress.storage import encode
from imo.data.batches import random_batch
from imo.data.corpora import load_corpus
from imo.errors import ConfigError
from imo.runs.store import RunStore
from imo.train.checkpoint import POINTER, checkpoint_dir, load_model, save_checkpoint
from imo.train.evaluate import evaluate_split
from imo.train.loop import FitConfig, StepInfo, fit

EVAL_BYTES = 65_536  # validation bytes the parent and the transformed model are both scored on


def checkpoint_bytes(run_dir: Path) -> int | None:
    """Bytes of the weights file of a run's latest checkpoint (None: no checkpoint)."""
    if not (Path(run_dir) / POINTER).exists():
        return None
    f = checkpoint_dir(run_dir) / "model.safetensors"
    return f.stat().st_size if f.exists() else None


def finetune_(model: nn.Module, corpus: str, steps: int, *, lr: float = 3e-4, batch_size: int = 16,
              seed: int = 0, log=lambda msg: None, quiet: bool = True) -> list[float]:
    """AdamW steps (imo.train.loop.fit: constant rate, no clipping, no weight decay) on the
    training split, every pruning mask re-applied after each step (the zeros stay zeros). Returns
    the training loss (bits/byte) of each step; a Ctrl-C stops early, cleanly, with fewer."""
    if steps < 0:
        raise ConfigError(f"fine-tuning steps must be >= 0, got {steps}")
    if steps == 0:
        return []
    data = load_corpus(corpus).train
    cfg = FitConfig(steps=steps, lr=lr, warmup=0, min_lr_ratio=1.0, weight_decay=0.0, grad_clip=0.0, seed=seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    hook = keep_masks(opt, model)

    def report(info: StepInfo) -> None:
        if info.step % 50 == 0:
            log(f"fine-tune step {info.step}/{steps}: {info.loss_bits:.3f} bits/byte")

    try:
        result = fit(model, lambda gen, m: random_batch(data, model.cfg.context_length, batch_size, gen), cfg,
                     optimizer=opt, callbacks=[report], quiet=quiet, label="fine-tune",
                     tokens_per_step=batch_size * model.cfg.context_length)
    finally:
        hook.remove()
    return result.losses


def save_run(store: RunStore, parent: str, model: nn.Module, kind: str, name: str, transform: dict,
             figures: dict) -> tuple[str, dict]:
    """Record a transformed model as a new run whose parent is `parent`; returns its id and
    figures (with bytes on disk, the parent's, and their ratio)."""
    prun = store.get(parent)
    config = dict(prun["config"])
    history = list(config.get("compress", {}).get("steps", []))
    config["compress"] = {"steps": [*history, transform]}
    tensors, layout = encode(model)
    rid = store.create_run(kind, name, config, parent=parent)
    try:
        step = int(prun["figures"].get("steps") or prun.get("steps") or 0)
        path = save_checkpoint(store.run_dir(rid), step, tensors, {},
                               {"run_id": rid, "config": config, "compress": layout})
        store.add_artifact(rid, "checkpoint", path)
        size = checkpoint_bytes(store.run_dir(rid))
        parent_size = checkpoint_bytes(store.run_dir(parent))
        figures = {**figures, "bytes_on_disk": size, "parent_bytes": parent_size,
                   "size_ratio": size / parent_size if parent_size else None}
        store.finish(rid, figures)
    except BaseException:
        store.set_status(rid, "failed")
        raise
    return rid, figures


def scored(model: nn.Module, corpus: str, eval_bytes: int) -> float:
    return evaluate_split(model, load_corpus(corpus).val, model.cfg.context_length, max_tokens=eval_bytes)


def _load(store: RunStore, run: str):
    rid = store.resolve(run)
    model, meta = load_model(store.run_dir(rid))
    return rid, model, meta


def prune_run(store: RunStore, run: str, method: str, sparsity: float, *, scope: str = "global",
              skip: tuple[str, ...] = (), finetune_steps: int = 0, lr: float = 3e-4, batch_size: int = 16,
              seed: int = 0, eval_bytes: int = EVAL_BYTES, log=lambda msg: None) -> tuple[str, dict]:
    rid, model, meta = _load(store, run)
    corpus = meta["config"]["train"]["corpus"]
    _check_patterns(model, skip)
    report = prune_(model, method, sparsity, filter_fn=linear_filter(skip), scope=scope, seed=seed)
    log(report.table())
    before = scored(load_model(store.run_dir(rid))[0], corpus, eval_bytes)  # the parent, as stored
    pruned = scored(model, corpus, eval_bytes)
    losses = finetune_(model, corpus, finetune_steps, lr=lr, batch_size=batch_size, seed=seed, log=log)
    if len(losses) < finetune_steps:  # Ctrl-C/SIGTERM stopped the fine-tuning: record nothing
        raise KeyboardInterrupt(f"fine-tuning stopped after {len(losses)} of {finetune_steps} steps; no run was saved")
    after = scored(model, corpus, eval_bytes) if finetune_steps else pruned
    transform = {"op": "prune", "method": method, "sparsity": sparsity, "scope": scope, "skip": list(skip),
                 "finetune_steps": finetune_steps, "lr": lr, "batch_size": batch_size, "seed": seed}
    figures = {"val_bpb": after, "parent_val_bpb": before, "pruned_val_bpb_before_finetune": pruned,
               "bpb_delta_rel": after / before - 1, "sparsity": report.sparsity,
               "finetune_steps": finetune_steps, "eval_bytes": eval_bytes,
               "final_finetune_train_bpb": losses[-1] if losses else None}
    name = f"{store.get(rid)['name']}-{method}{round(sparsity * 100)}"
    new, figures = save_run(store, rid, model, "prune", name, transform, figures)
    return new, {**figures, "report": report}


def quantize_run(store: RunStore, run: str, config: QuantConfig, *, keep: tuple[str, ...] = (),
                 eval_bytes: int = EVAL_BYTES, log=lambda msg: None) -> tuple[str, dict]:
    rid, model, meta = _load(store, run)
    corpus = meta["config"]["train"]["corpus"]
    report = quantize_(model, config, skip=keep)  # refusals come before any evaluation
    log(report.table())
    before = scored(load_model(store.run_dir(rid))[0], corpus, eval_bytes)
    after = scored(model, corpus, eval_bytes)
    transform = {"op": "quantize", **config.to_dict(), "kernel_used": report.kernel, "keep": list(keep)}
    figures = {"val_bpb": after, "parent_val_bpb": before, "bpb_delta_rel": after / before - 1,
               "bits": config.bits, "eval_bytes": eval_bytes, "kept_in_float": report.kept}
    tag = f"int{config.bits}" + ("-split" if config.outlier_threshold else "") + ("-keep" if keep else "")
    name = f"{store.get(rid)['name']}-{tag}"
    new, figures = save_run(store, rid, model, "quantize", name, transform, figures)
    return new, {**figures, "report": report}


def _check_patterns(model: nn.Module, patterns) -> None:
    names = [n for n, _ in model.named_modules()]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise ConfigError(f"pattern {p!r} matches no layer of this model (layers look like "
                              f"'transformer.h.0.attn.c_attn', 'lm_head')")


@torch.no_grad()
def outlier_stats(model: nn.Module, x: torch.Tensor, threshold: float = 6.0) -> dict[str, dict]:
    """Per Linear (or QuantLinear) layer, over the inputs it sees for token windows x (B, T):
    the largest |activation|, the number of input feature columns with any |value| > threshold,
    and the fraction of input values above it (LLM.int8: < 0.1% of values)."""
    if not threshold > 0:
        raise ConfigError(f"threshold must be > 0, got {threshold}")
    stats: dict[str, dict] = {}
    handles = []

    def hook(name):
        def f(module, inputs):
            a = inputs[0].reshape(-1, inputs[0].shape[-1]).float()  # (N, in)
            big = a.abs() > threshold
            s = stats.setdefault(name, {"max_abs": 0.0, "columns": set(), "values": 0, "total": 0,
                                        "width": a.shape[1]})
            s["max_abs"] = max(s["max_abs"], float(a.abs().max()))
            s["columns"].update(big.any(dim=0).nonzero().flatten().tolist())
            s["values"] += int(big.sum())
            s["total"] += a.numel()
        return f

    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) or hasattr(m, "qweight") and hasattr(m, "in_features"):
            handles.append(m.register_forward_pre_hook(hook(name)))
    try:
        model.eval()
        model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: {"max_abs": s["max_abs"], "outlier_columns": len(s["columns"]), "width": s["width"],
                "outlier_value_fraction": s["values"] / max(s["total"], 1),
                "columns": sorted(s["columns"])[:16]} for n, s in stats.items()}


def validation_windows(corpus: str, context_length: int, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x, _ = random_batch(load_corpus(corpus).val, context_length, n, gen)
    return x
