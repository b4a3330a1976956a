"""Context extension of a RoPE model: position interpolation vs extrapolation, by fine-tuning.

Follows Chen et al. 2023 ("Extending Context Window of Large Language Models via Positional
Interpolation"): a RoPE model trained at context L is fine-tuned at factor * L twice, once with
its positions multiplied by 1 / factor (`rope_scale`, interpolation: every angle stays inside the
trained range) and once unchanged (`rope_scale` 1, extrapolation: positions past L give angles the
model never saw). The curve is validation bits/byte at factor * L against fine-tuning steps.

Steps > 0 are the trainer's logged "val/bpb": fixed validation windows at the run's context,
evaluated every `steps // points` steps. Step 0 (no fine-tuning: the base weights with the new
context and scale) is evaluated here on the same windows, rebuilt as the trainer builds them;
`eval_check` is the gap between the trainer's last logged value and this module's evaluation of
the final weights on the rebuilt windows (0 when they are the same windows).

Both fine-tunes are reused only when their config and code fingerprint match: the caller's
`code_fingerprint`, else the base run's own (a claim trains its base keyed on its code, so the
fine-tunes that start from it are keyed on the same code).

    curve = interpolation_curve(base_run_id, store, factor=4, steps=200, points=4)
"""

from typing import Any

from imo.data.corpora import load_corpus
from imo.errors import ConfigError
from imo.model import GPT
from imo.train.checkpoint import load_model
from imo.train.config import RunConfig
from imo.train.evaluate import fixed_eval_set, mean_bpb
from imo.train.trainer import train_or_reuse


def finetune_config(base_cfg: dict, base_run_id: str, *, factor: int, rope_scale: float, steps: int,
                    points: int, seed: int, lr: float, batch_size: int, eval_batches: int) -> RunConfig:
    model = {**base_cfg["model"], "context_length": base_cfg["model"]["context_length"] * factor,
             "rope_scale": rope_scale}
    train = dict(corpus=base_cfg["train"]["corpus"], steps=steps, seed=seed, init_from=base_run_id,
                 lr=lr, warmup=max(1, steps // 10), batch_size=batch_size,
                 eval_every=steps // points, eval_batches=eval_batches, ckpt_every=steps)
    return RunConfig.build(preset=None, model=model, train=train)


def interpolation_curve(
    base_run_id: str,
    store,
    *,
    factor: int = 4,
    steps: int = 200,
    points: int = 4,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int | None = None,
    eval_batches: int = 16,
    quiet: bool = True,
    code_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Fine-tune the RoPE run `base_run_id` at factor * L with interpolated and extrapolated
    positions; returns {"steps": [0, ...], "interpolation": [bpb, ...], "extrapolation": [...],
    "context": factor * L, "runs": [interpolation id, extrapolation id], "eval_check": gap}.

    batch_size defaults to the base run's batch / factor, so a step sees as many bytes as before."""
    if steps % points:
        raise ConfigError(f"points={points} must divide steps={steps}")
    base, meta = load_model(store.run_dir(base_run_id))
    cfg = meta["config"]
    if cfg["model"]["pos"] != "rope":
        raise ConfigError(f"run {base_run_id} has {cfg['model']['pos']!r} positions; this exam needs rope")
    if code_fingerprint is None:
        code_fingerprint = store.get(base_run_id).get("fingerprint")
    L = cfg["model"]["context_length"]
    batch_size = batch_size or max(1, cfg["train"]["batch_size"] // factor)
    corpus = load_corpus(cfg["train"]["corpus"])
    windows = fixed_eval_set(corpus.val, factor * L, batch_size, eval_batches)
    out: dict[str, Any] = {"steps": list(range(0, steps + 1, steps // points)), "context": factor * L,
                           "runs": [], "eval_check": 0.0}
    for arm, scale in (("interpolation", 1.0 / factor), ("extrapolation", 1.0)):
        ft = finetune_config(cfg, base_run_id, factor=factor, rope_scale=scale, steps=steps,
                             points=points, seed=seed, lr=lr, batch_size=batch_size,
                             eval_batches=eval_batches)
        start = GPT(ft.model)  # step 0: the base weights at the new context and scale
        start.load_saved_state(base.state_dict_for_save())
        curve = [mean_bpb(start, windows)]
        run_id = train_or_reuse(ft, store=store, quiet=quiet, code_fingerprint=code_fingerprint)
        logged = {s: v for s, _, v in store.metrics(run_id, "val/bpb")}
        curve += [logged[s] for s in out["steps"][1:]]
        final, _ = load_model(store.run_dir(run_id))
        out["eval_check"] = max(out["eval_check"], abs(mean_bpb(final, windows) - curve[-1]))
        out[arm] = curve
        out["runs"].append(run_id)
    return out
