"""Training mixture-of-experts byte LMs (`imo learn moe`), and their dense baselines.

The trunk's config is an ordinary imo.train.config.RunConfig; the MoE's own MoEConfig
(imo.model.moe) is stored beside it under "moe" in the run's config (in the store and in each
checkpoint's meta.json), and the weights are safetensors, like every imo checkpoint. Training goes
through imo.train.loop.fit (AdamW, warmup + cosine, clipping, checkpoints, clean stops), so an
MoE arm and a dense arm differ only in the model. A callback logs each layer's expert-load
coefficient of variation (`moe/cv/L`) and the dropped share (`moe/dropped`) every `log_every`
steps; at the end the final validation pass (no capacity, eval routing) gives the per-layer load,
its CV and a text histogram, stored with the run's figures and as a result `moe-load`.

    run_id, out = train_moe(RunConfig.build(preset="tiny", train={"steps": 200}), MoEConfig())
    model, meta = load_moe_model(store.run_dir(run_id))
"""

from __future__ import annotations

from typing import Any

import torch

from imo.errors import CheckpointError, ConfigError
from imo.model.moe import MoEConfig, MoEGPT, load_cv, training_flops_per_token

KIND = "moe"


def histogram(load: list[int], width: int = 40) -> list[str]:
    """One text bar per expert: its share of the assignments."""
    total = max(1, sum(load))
    top = max(load) if load and max(load) > 0 else 1
    return [f"  e{e:<2} {'#' * round(width * n / top):<{width}} {n / total:6.1%}" for e, n in enumerate(load)]


def load_report(loads: list[list[int]]) -> dict[str, Any]:
    return {"load": loads, "cv": [load_cv(torch.tensor(layer)) for layer in loads]}


def _eval_loads(model: MoEGPT, batches) -> dict[str, Any]:
    from imo.train.loop import score

    model.reset_load()
    bpb = score(model, batches)
    return {"val_bpb": bpb, **load_report(model.loads())}


def train_moe(cfg, moe: MoEConfig, *, store=None, quiet: bool = False, name: str | None = None,
              record: bool = True, eval_bytes: int | None = None) -> tuple[str | None, dict[str, Any]]:
    """Train an MoE run (experts=1: a dense MLP of width `hidden`) from scratch; with `record`,
    as a run of kind 'moe' in the store. Returns (run_id or None, figures)."""
    from imo.data.batches import random_batch, windows
    from imo.data.corpora import load_corpus
    from imo.runs.store import RunStore
    from imo.train.evaluate import fixed_eval_set, mean_bpb
    from imo.train.loop import RunLog, fit
    from imo.train.trainer import fit_config, resolve_device

    t = cfg.train
    if t.dtype == "bfloat16":
        raise ConfigError("moe runs train in float32 (--dtype float32 or auto)")
    if t.grad_accum != 1:
        raise ConfigError("moe runs train without --grad-accum (one micro-batch per step)")
    if t.init_from is not None:
        raise ConfigError("moe runs train from scratch (no --init-from)")
    device = resolve_device(t.device)
    corpus = load_corpus(t.corpus)
    T = cfg.model.context_length
    torch.manual_seed(t.seed)
    model = MoEGPT(cfg.model, moe).to(device)
    full = {**cfg.to_dict(), "moe": moe.to_dict()}
    run_id = log = None
    if record:
        store = store or RunStore.open()
        arm = f"moe{moe.experts}x{moe.top_k}" if moe.experts > 1 else f"dense{moe.width(cfg.model.n_embd)}"
        run_id = store.create_run(KIND, name or f"{arm}-{cfg.name()}", full)
        store.set_status(run_id, "running")
        log = RunLog(store, run_id, store.run_dir(run_id), meta=lambda: {"run_id": run_id, "config": full})
    eval_set = fixed_eval_set(corpus.val, T, t.batch_size, t.eval_batches)
    final = list(windows(corpus.val, T, eval_bytes))
    params = model.params()
    fpt = training_flops_per_token(cfg.model, moe)
    if not quiet:
        what = (f"{moe.experts} experts, top-{moe.top_k}, capacity {moe.capacity_factor:g}, aux {moe.aux_coef:g}"
                if moe.experts > 1 else f"dense MLP of width {moe.width(cfg.model.n_embd)}")
        print(f"run {run_id or '(not recorded)'}  {what}  {params['total']:,} parameters "
              f"({params['active']:,} active per token)  {fpt / 1e6:.2f} MFLOP per trained token", flush=True)

    def load_logger(info) -> dict | None:
        if info.step % t.log_every:
            return None
        m = info.model
        out = {f"moe/cv/{i}": load_cv(layer.load) for i, layer in enumerate(m.moe_layers())}
        assigned = sum(layer.assigned for layer in m.moe_layers())
        out["moe/dropped"] = sum(layer.dropped for layer in m.moe_layers()) / max(1, assigned)
        out["moe/aux"] = float(m.aux_loss().detach())
        m.reset_load()
        return out

    # validation bits/byte against steps, tokens and training FLOPs (fit runs the callbacks of a
    # step before its evaluation, so `at` holds the step being evaluated)
    curve: list[dict[str, float]] = []
    at = {"step": 0}

    def track(info) -> None:
        at["step"] = info.step

    def evaluate(m) -> dict[str, float]:
        layers = [b.mlp for b in [*m.transformer.h, *m.future]]
        kept = [(layer.load.clone(), layer.assigned, layer.dropped) for layer in layers]
        bpb = mean_bpb(m, eval_set, device)
        for layer, (load, assigned, dropped) in zip(layers, kept, strict=True):  # training load only
            layer.load.copy_(load)
            layer.assigned, layer.dropped = assigned, dropped
        tokens = at["step"] * t.batch_size * T
        curve.append({"step": at["step"], "tokens": tokens, "train_flops": fpt * tokens, "val_bpb": bpb})
        return {"val/bpb": bpb}

    res = fit(model, lambda gen, mb: random_batch(corpus.train, T, t.batch_size, gen), fit_config(t),
              run=log, evaluate=evaluate,
              callbacks=[track, load_logger] if moe.experts > 1 else [track], tokens_per_step=t.batch_size * T, quiet=quiet)
    if res.stopped:
        if record:
            store.set_status(run_id, "interrupted")
        raise ConfigError(f"stopped at step {res.steps} (moe runs do not resume; train again)")
    ev = _eval_loads(model, final)
    tokens = res.steps * t.batch_size * T
    figures = {"val_bpb": ev["val_bpb"], "train_bpb": res.train_bpb, "steps": res.steps, "tokens": tokens,
               "params": params["total"], "active_params": params["active"], "flops_per_token": fpt,
               "train_flops": fpt * tokens, "seconds": res.seconds,
               "train_tokens_per_s": tokens / max(res.step_seconds, 1e-9),
               "load": ev["load"], "load_cv": ev["cv"], "experts": moe.experts, "top_k": moe.top_k,
               "losses": res.losses, "curve": curve}
    if record:
        store.finish(run_id, {k: v for k, v in figures.items() if k not in ("losses", "curve")})
        store.put_result("moe-load", run_id, {"load": ev["load"], "cv": ev["cv"], "moe": moe.to_dict()}, [run_id])
    return run_id, figures


def report_lines(figures: dict[str, Any]) -> list[str]:
    """The result block `imo learn moe` prints."""
    out = [f"validation {figures['val_bpb']:.4f} bits/byte after {figures['steps']} steps "
           f"({figures['tokens']:,} tokens); training {figures['train_flops']:.3e} FLOPs "
           f"({figures['flops_per_token'] / 1e6:.2f} MFLOP/token); {figures['params']:,} parameters, "
           f"{figures['active_params']:,} active"]
    if figures["experts"] > 1:
        out.append("expert load on the validation split (eval routing, no capacity):")
        for i, (layer, cv) in enumerate(zip(figures["load"], figures["load_cv"], strict=True)):
            out.append(f" layer {i}: coefficient of variation {cv:.3f}")
            out += histogram(layer)
    return out


def moe_config(config: dict) -> MoEConfig:
    if "moe" not in config:
        raise ConfigError("this run has no moe config (it is not an moe run)")
    return MoEConfig.from_dict(config["moe"])


def load_moe_model(run_dir, device: str = "cpu") -> tuple[MoEGPT, dict]:
    """The MoEGPT of an moe run's latest checkpoint (safetensors), in eval mode, and its meta."""
    from imo.train.checkpoint import checkpoint_dir, read_checkpoint
    from imo.train.config import RunConfig

    meta, weights, _ = read_checkpoint(checkpoint_dir(run_dir), with_state=False)
    full = meta["config"]
    model = MoEGPT(RunConfig.from_dict(full).model, moe_config(full))
    try:
        model.load_saved_state(weights)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint in '{run_dir}' does not match its config: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta

