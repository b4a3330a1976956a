"""The char models and model surgery behind the shrinking claims (imo.claims.library.shrinking):
the char model three claims share, the lottery on it, the sensitivity probe of
prune-plus-quantize, and the function-preserving outlier inducer of outlier-split.

A private helper (its name starts with "_"), so `imo.claims.load_all()` registers nothing from it.
"""

from __future__ import annotations

from typing import Any

import torch

from imo.claims.registry import Context
from imo.compress.prune import get_mask, linear_filter, prune_, select, set_mask
from imo.compress.quantize import QuantConfig, quantize_
from imo.compress.runs import finetune_, scored
from imo.data.corpora import load_corpus
from imo.train.checkpoint import load_model
from imo.train.config import RunConfig
from imo.train.evaluate import evaluate_split
from imo.train.trainer import train_or_reuse

CORPUS = "python-docs"

# the char model shared by lottery-tickets (full), prune-plus-quantize and outlier-split
CHAR: dict[str, dict[str, Any]] = {
    "smoke": dict(model=dict(n_layer=1, n_embd=32, n_head=2, context_length=16), steps=4, batch=4,
                  eval_bytes=1024, lottery_rounds=1, lottery_steps=4),
    "quick": dict(model=dict(n_layer=2, n_embd=64, n_head=4, context_length=32), steps=200, batch=16,
                  eval_bytes=4096, lottery_rounds=0, lottery_steps=0),
    "full": dict(model=dict(n_layer=4, n_embd=128, n_head=4, context_length=64), steps=600, batch=16,
                 eval_bytes=32768, lottery_rounds=5, lottery_steps=200),
}
# the char-model lottery retrains from scratch twice a round, so it uses the quick model's size
CHAR_LOTTERY_MODEL = {"smoke": CHAR["smoke"]["model"], "quick": CHAR["quick"]["model"],
                      "full": CHAR["quick"]["model"]}


def char_config(budget: str, seed: int) -> RunConfig:
    s = CHAR[budget]
    return RunConfig.build(preset=None, model=s["model"],
                           train={"corpus": CORPUS, "steps": s["steps"], "seed": seed,
                                  "batch_size": s["batch"], "warmup": min(20, s["steps"] // 4),
                                  "eval_every": max(1, s["steps"]), "device": "cpu"})


def char_run(budget: str, seed: int, ctx: Context) -> str:
    ctx.log(f"char model ({budget}, seed {seed})")
    return train_or_reuse(char_config(budget, seed), store=ctx.store, quiet=ctx.quiet,
                          code_fingerprint=ctx.code_fingerprint)


def char_lottery(budget: str, seed: int, ctx: Context) -> dict[str, list[float]]:
    """Iterative magnitude pruning with rewinding to the initialisation on the char model: the
    block matrices lose 20% a round (the tied embedding/head stays dense); bits/byte of the
    retrained ticket and of the same mask on fresh weights."""
    s = CHAR[budget]
    from imo.model import GPT, ModelConfig

    cfg_model = ModelConfig.from_dict(CHAR_LOTTERY_MODEL[budget])
    torch.manual_seed(seed)
    model = GPT(cfg_model)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    skip = linear_filter(["lm_head"])
    out: dict[str, list[float]] = {"fraction_left": [], "bpb_ticket": [], "bpb_reinit": []}

    def fit(m) -> float:
        finetune_(m, CORPUS, s["lottery_steps"], lr=3e-3, batch_size=s["batch"], seed=seed)
        return scored(m, CORPUS, s["eval_bytes"])

    dense = fit(model)
    out["fraction_left"].append(1.0)
    out["bpb_ticket"].append(dense)
    out["bpb_reinit"].append(dense)
    for r in range(1, s["lottery_rounds"] + 1):
        mods = select(model, skip)
        target = 1.0 - 0.8 ** r
        prune_(model, "magnitude", {n: target for n in mods}, filter_fn=skip, scope="layer")
        masks = {n: get_mask(m).clone() for n, m in select(model, skip).items()}
        model.load_state_dict(init)  # rewind to step 0
        for n, m in select(model, skip).items():
            set_mask(m, masks[n])
        torch.manual_seed(50_000 + seed + r)
        fresh = GPT(cfg_model)
        for n, m in select(fresh, skip).items():
            set_mask(m, masks[n])
        out["fraction_left"].append(sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values()))
        out["bpb_ticket"].append(fit(model))
        out["bpb_reinit"].append(fit(fresh))
        ctx.log(f"char ticket round {r}: {out['fraction_left'][-1]:.3f} left, {out['bpb_ticket'][-1]:.3f} bits/byte")
    return out


def probe_bytes(corpus: str, eval_bytes: int) -> Any:
    """The last `eval_bytes` of the training split: where the sensitivity probe is measured, so
    the choice of the layers kept in float never looks at the validation bytes it is scored on."""
    train = load_corpus(corpus).train
    return train[max(0, len(train) - eval_bytes):]


def sensitive_layers(store, run: str, eval_bytes: int, k: int = 2) -> tuple[list[str], dict[str, float]]:
    """The k weight matrices whose int4 quantization alone costs the most bits/byte (a harsh
    probe, so that differences show), measured on training bytes (probe_bytes); returns their
    names and every matrix's cost."""
    base, meta = load_model(store.run_dir(run))
    corpus = meta["config"]["train"]["corpus"]
    data = probe_bytes(corpus, eval_bytes)
    context = base.cfg.context_length
    ref = evaluate_split(base, data, context)
    names = [n for n, m in base.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    cost = {}
    for n in [*names, "transformer.wte"]:
        model, _ = load_model(store.run_dir(run))
        if n == "transformer.wte":
            quantize_(model, QuantConfig(bits=4, group_size=16), filter_fn=lambda name, m: name in ("lm_head", "transformer.wte"))
        else:
            quantize_(model, QuantConfig(bits=4, group_size=16), filter_fn=lambda name, m, n=n: name == n)
        cost[n] = evaluate_split(model, data, context) - ref
    return sorted(cost, key=lambda n: -cost[n])[:k], cost


def finetune_steps_from_base(store, run: str, base: str) -> int:
    """Fine-tuning steps a transformed run received after `base`, read from its stored transform
    history (config["compress"]["steps"], one entry per transform since training)."""
    if run == base:
        return 0
    steps = store.get(run)["config"].get("compress", {}).get("steps", [])
    return sum(int(s.get("finetune_steps") or 0) for s in steps)


OUTLIER_SCALE = 40.0  # induced outlier columns are this many times their natural size
OUTLIER_CHANNELS = 2  # per LayerNorm


def induce_outliers(model, channels: int = OUTLIER_CHANNELS, scale: float = OUTLIER_SCALE) -> list[int]:
    """Make a few feature columns huge without changing the function: for channel c of each
    block's ln_1 and ln_2, multiply the LayerNorm gain and bias by `scale` and divide column c of
    the Linear that reads it (c_attn, c_fc) by `scale`. In float the model computes the same
    thing; the Linear inputs now carry outliers far above 6.0, as large language models' do."""
    chans = list(range(channels))
    with torch.no_grad():
        for block in model.transformer.h:
            for ln, lin in ((block.ln_1, block.attn.c_attn), (block.ln_2, block.mlp.c_fc)):
                for c in chans:
                    ln.weight[c] *= scale
                    if ln.bias is not None:
                        ln.bias[c] *= scale
                    lin.weight[:, c] /= scale
    return chans
