"""Claims about what lies inside a network: superposition and monosemantic SAE features.

* `superposition`: Elhage et al. 2022 ("Toy Models of Superposition") derive where a ReLU toy
  model with two features and one hidden dimension stores the second feature: not at all,
  alone (dedicated), or in superposition with the first (an antipodal pair), as a function of
  the features' density and relative importance. The claim trains every cell of a 20x20 grid
  (imo.inspect.tms, batched, the best of 3 initialisations per cell), classifies each trained
  cell automatically, and counts the share of cells whose class matches the exact-loss theory
  (`tms.theory_phases`, quadrature, no sampling). The theory is the same for every seed; the
  training data and initialisations are the seed's.

* `monosemantic-features`: a TopK sparse autoencoder trained on the middle residual stream of a
  byte-level GPT finds directions whose activating contexts are more alike than those of a
  random direction or an MLP neuron of the same block, at matched density (Bricken et al. 2023,
  "Towards Monosemanticity", compare features with neurons and random directions). For each
  judged SAE feature, firing on c held-out tokens, a random unit direction and a random neuron
  are each said to fire on their c largest values (the same density). From the top quarter of
  each unit's firing tokens (its c/4 largest values; neuronpedia's top quantile bin), `SAMPLE`
  tokens are drawn at random, and their alikeness is the share of pairs that are the same
  token (byte). The metric is the SAE's mean alikeness minus the larger of the two baselines'
  means. The same draws judged by their last two bytes are reported beside it.

  The rule's details (the token as the property, the top quarter, the effect 0.1) were fixed
  after one-seed pilots at the quick budget and before any full run.

    imo check superposition --quick
    imo check monosemantic-features --quick
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from imo.claims.plotting import plt, save_figure
from imo.claims.registry import Claim, Context, Rule, register
from imo.inspect import sae as S
from imo.inspect import tms

# --- superposition ---------------------------------------------------------------------------

PHASE: dict[str, dict[str, Any]] = {
    "smoke": dict(size=6, seeds=2, steps=300, batch=256),
    "quick": dict(size=10, seeds=3, steps=1000, batch=1024),
    "full": dict(size=20, seeds=3, steps=1500, batch=1024),
}


@functools.lru_cache(maxsize=4)
def _theory(size: int) -> torch.Tensor:
    return tms.theory_phases(tms.PhaseConfig(size=size))[0]


def measure_superposition(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    cfg = tms.PhaseConfig(**PHASE[budget], seed=seed)
    ctx.log(f"theory on a {cfg.size}x{cfg.size} grid")
    theory = _theory(cfg.size)
    ctx.log(f"training {cfg.size * cfg.size * cfg.seeds} toy models for {cfg.steps} steps")
    emp = tms.train_phase_diagram(cfg)
    trained = emp["phase"]
    agree = trained == theory
    counts = {name: int((theory == i).sum()) for i, name in enumerate(tms.PHASES)}
    return {
        "agreement": float(agree.float().mean()),
        # per-phase recall: of the cells the theory puts in a phase, the share trained into it
        **{f"recall_{name.replace(' ', '_')}": float(agree[theory == i].float().mean()) if counts[name] else math.nan
           for i, name in enumerate(tms.PHASES)},
        "theory_cells": counts,
        "trained": trained.tolist(),
        "theory": theory.tolist(),
        "density": emp["density"].tolist(),
        "importance": emp["importance"].tolist(),
        "grid": cfg.size, "steps": cfg.steps, "inits_per_cell": cfg.seeds,
        "_runs": [],
    }


def plot_superposition(per_seed: list[dict[str, Any]], path) -> None:
    f = per_seed[0]
    fig, axes = plt.subplots(1, 1 + len(per_seed), figsize=(3.6 * (1 + len(per_seed)), 3.6), dpi=100)
    panels = [("theory", f["theory"])] + [(f"trained, seed {i} ({g['agreement']:.0%} agree)", g["trained"])
                                          for i, g in enumerate(per_seed)]
    d, r = np.log10(f["density"]), np.log10(f["importance"])
    for ax, (title, grid) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(np.array(grid), origin="lower", cmap="viridis", vmin=0, vmax=2, aspect="auto",
                  extent=(r[0], r[-1], d[0], d[-1]))
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("log10 relative importance")
        ax.set_ylabel("log10 density")
    fig.suptitle("n=2, m=1: 0 not represented (dark), 1 dedicated, 2 superposed (yellow)", fontsize=9)
    save_figure(fig, path)


@register
def superposition() -> Claim:
    return Claim(
        id="superposition",
        statement="Features are stored in superposition when they are sparse: in the toy model "
                  "with two features and one hidden dimension, trained models store the second "
                  "feature not at all, alone or superposed exactly where the exact-loss theory says.",
        source="source-notes: Toy Models of Superposition (Anthropic)",
        experiment="The n=2, m=1 ReLU toy model x' = ReLU(WᵀW x + b) on a grid of density 0.01..1 x "
                   "relative importance 0.1..10 (log-spaced; 6x6/10x10/20x20 at smoke/quick/full), "
                   "every cell trained with AdamW (lr 1e-2, batch 256/1024/1024, 300/1000/1500 "
                   "steps), the lowest-loss of 2/3/3 initialisations kept, then classified "
                   "automatically (‖W_2‖ <= 0.5: not represented; else dedicated or superposed by "
                   "‖W_1‖), against the phase whose exact expected loss (Gauss-Legendre quadrature) "
                   "is lowest among the three candidate solutions.",
        rule=Rule(metric="agreement", op=">", threshold=0.9, effect=0.0, noise=0.03,
                  meaning="the trained and automatically classified phase diagram agrees with the "
                          "theory on more than 90% of the 20x20 grid's cells"),
        measure=measure_superposition,
        plot=plot_superposition,
        anchor="Elhage et al. 2022, Figure 'phase diagram' for n=2, m=1: the extra feature is not "
               "represented when it is unimportant, gets the dimension when it is important, and "
               "is superposed when it is sparse and of similar importance",
        tags=("inspect", "superposition", "reproduce"),
    )


# --- monosemantic-features -------------------------------------------------------------------

CORPUS = "python-docs"
SAMPLE = 16          # firing tokens drawn per unit
CONTEXT_BYTES = 1    # two contexts are alike when their last byte (the token itself) is equal
MAX_FEATURES = 200   # features judged per seed (drawn at random among the eligible ones)
MAX_DENSITY = 0.2    # features firing more often than this are not judged
TOP = 0.25           # contexts are drawn from the top quarter of a unit's firing tokens

LM: dict[str, dict[str, Any]] = {
    "smoke": dict(model=dict(n_layer=2, n_embd=32, n_head=2, context_length=32), steps=20, batch=8),
    "quick": dict(model=dict(n_layer=2, n_embd=64, n_head=4, context_length=64), steps=300, batch=16),
    "full": dict(model=dict(n_layer=3, n_embd=96, n_head=4, context_length=128), steps=600, batch=16),
}
SAE_SIZE: dict[str, dict[str, Any]] = {
    "smoke": dict(latents=64, k=4, steps=40, batch=256, tokens=4096, eval_tokens=4096),
    "quick": dict(latents=256, k=8, steps=500, batch=1024, tokens=40_960, eval_tokens=16_384),
    "full": dict(latents=512, k=8, steps=1500, batch=2048, tokens=102_400, eval_tokens=32_768),
}


def lm_config(budget: str, seed: int):
    from imo.train.config import RunConfig

    s = LM[budget]
    return RunConfig.build(preset=None, model=s["model"],
                           train={"corpus": CORPUS, "steps": s["steps"], "seed": seed, "batch_size": s["batch"],
                                  "warmup": min(50, s["steps"] // 4), "eval_every": s["steps"], "device": "cpu"})


@torch.no_grad()
def activations(model, ids: np.ndarray, hooks: list[str], n_tokens: int, context: int) -> dict[str, np.ndarray]:
    """`hooks`' activations over the first n_tokens of `ids` in non-overlapping windows."""
    from imo.model.hooks import run_with_cache

    n_win = n_tokens // context
    x = torch.as_tensor(np.asarray(ids[: n_win * context], dtype=np.int64)).view(n_win, context)
    out: dict[str, list[np.ndarray]] = {h: [] for h in hooks}
    for i in range(0, n_win, 16):
        _, cache = run_with_cache(model, x[i:i + 16], hooks)
        for h in hooks:
            out[h].append(cache[h].reshape(-1, cache[h].shape[-1]).float().numpy())
    return {h: np.concatenate(v) for h, v in out.items()}


def context_keys(windows: np.ndarray, width: int) -> np.ndarray:
    """One integer per position: its last `width` bytes (fewer at a window's start, padded with 256)."""
    w = np.asarray(windows, dtype=np.int64)
    key = np.zeros(w.shape, dtype=np.int64)
    for back in range(width):
        shifted = np.full(w.shape, 256, dtype=np.int64)
        shifted[:, back:] = w[:, : w.shape[1] - back]
        key = key * 257 + shifted
    return key.reshape(-1)


def alikeness(keys: np.ndarray) -> float:
    """The share of pairs among `keys` that are equal."""
    _, counts = np.unique(keys, return_counts=True)
    n = len(keys)
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def judge_units(codes: np.ndarray, resid: np.ndarray, neurons: np.ndarray, keys: np.ndarray,
                rng: np.random.Generator, top: float = TOP) -> dict[str, np.ndarray]:
    """Alikeness of SAMPLE contexts drawn from the top `top` share of each eligible SAE feature's
    firing tokens, and the same for a random direction and a random neuron that are given as
    many firing tokens as the feature (their largest values): matched density, and the same
    quantile of each unit's activations."""
    n = len(codes)
    counts = (codes > 0).sum(0)
    eligible = np.flatnonzero((counts * top >= SAMPLE) & (counts <= MAX_DENSITY * n))
    chosen = rng.permutation(eligible)[:MAX_FEATURES]
    centred = resid - resid.mean(0)
    out: dict[str, list[float]] = {"sae": [], "random": [], "neuron": [], "density": []}
    for j in chosen:
        c = int(counts[j])
        keep = max(SAMPLE, int(c * top))
        values = {
            "sae": codes[:, j],
            "random": centred @ rng.standard_normal(resid.shape[1]),
            "neuron": neurons[:, rng.integers(neurons.shape[1])],
        }
        for name, v in values.items():
            idx = np.argpartition(-v, keep - 1)[:keep]     # the unit's `keep` largest values
            out[name].append(alikeness(keys[rng.choice(idx, SAMPLE, replace=False)]))
        out["density"].append(c / n)
    return {k: np.array(v) for k, v in out.items()}


def summary(got: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean alikeness of each kind of unit, and the rule's metric: the SAE's minus the larger baseline."""
    means = {k: float(got[k].mean()) for k in ("sae", "random", "neuron")}
    return {"alikeness_gap": means["sae"] - max(means["random"], means["neuron"]),
            **{f"{k}_alikeness": v for k, v in means.items()}}


def measure_monosemantic(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.data.corpora import load_corpus
    from imo.train.checkpoint import load_model
    from imo.train.trainer import train_or_reuse

    torch.set_num_threads(1)
    cfg = lm_config(budget, seed)
    ctx.log(f"byte model ({budget}, seed {seed})")
    run_id = train_or_reuse(cfg, store=ctx.store, quiet=ctx.quiet, code_fingerprint=ctx.code_fingerprint)
    model, _ = load_model(ctx.store.run_dir(run_id))
    layer = cfg.model.n_layer // 2
    resid_hook, neuron_hook = f"blocks.{layer}.hook_resid_post", f"blocks.{layer}.mlp.hook_post"
    s, context = SAE_SIZE[budget], cfg.model.context_length
    corpus = load_corpus(CORPUS)
    ctx.log(f"caching {s['tokens']} activations of {resid_hook}")
    train_acts = activations(model, corpus.train, [resid_hook], s["tokens"], context)[resid_hook]
    sae_cfg = S.SAEConfig(arch="topk", latents=s["latents"], k=s["k"], steps=s["steps"], batch=s["batch"],
                          lr=1e-3, seed=seed, dead_after=min(50_000, s["steps"] * s["batch"] // 4))
    ctx.log(f"training a TopK SAE ({s['latents']} latents, k={s['k']}, {s['steps']} steps)")
    sae = S.train_sae(train_acts, sae_cfg)
    held = activations(model, corpus.val, [resid_hook, neuron_hook], s["eval_tokens"], context)
    metrics = S.evaluate(sae, held[resid_hook])
    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(held[resid_hook])).numpy()
    n_win = s["eval_tokens"] // context
    windows = np.asarray(corpus.val[: n_win * context]).reshape(n_win, context)
    got = judge_units(codes, held[resid_hook], held[neuron_hook], context_keys(windows, CONTEXT_BYTES),
                      np.random.default_rng(seed))
    if len(got["sae"]) == 0:
        raise RuntimeError("no SAE feature fires on enough held-out tokens to be judged")
    # outside the rule: the same draws judged by their last two bytes
    wide = judge_units(codes, held[resid_hook], held[neuron_hook], context_keys(windows, 2),
                       np.random.default_rng(seed))
    return {
        **summary(got),
        **{f"{k}_2bytes": v for k, v in summary(wide).items() if k.endswith("alikeness")},
        "features_judged": len(got["sae"]), "median_density": float(np.median(got["density"])),
        "sae_fvu": metrics["fvu"], "sae_l0": metrics["l0"], "sae_dead": metrics["dead"],
        "per_feature": {k: [round(float(x), 4) for x in v] for k, v in got.items()},
        "hook": resid_hook, "neurons": neuron_hook,
        "_runs": [run_id],
    }


def plot_monosemantic(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    bins = np.linspace(0, 1, 21)
    for i, name in enumerate(("sae", "random", "neuron")):
        vals = np.concatenate([f["per_feature"][name] for f in per_seed])
        ax.hist(vals, bins=bins, histtype="step", lw=1.6, color=f"C{i}",
                label=f"{name} (mean {vals.mean():.2f})")
    ax.set_xlabel(f"alikeness: share of pairs of {SAMPLE} top-quarter firing tokens that are the same byte")
    ax.set_ylabel("units")
    ax.legend(fontsize=8)
    ax.set_title("SAE features vs random directions and neurons at matched density", fontsize=10)
    save_figure(fig, path)


@register
def monosemantic_features() -> Claim:
    return Claim(
        id="monosemantic-features",
        statement="A sparse autoencoder finds features that are more monosemantic than the "
                  "network's own neurons or random directions: the contexts on which one fires "
                  "are more alike.",
        source="source-notes: Scaling Monosemanticity; inspect llm neuron meaning (neuronpedia)",
        experiment="A byte-level GPT on python-docs (layers x width 2x32/2x64/3x96, 20/300/600 "
                   "steps at smoke/quick/full); a TopK SAE (64/256/512 latents, k=4/8/8, AuxK) on its middle "
                   "block's resid_post from 4k/41k/102k training tokens; on 4k/16k/33k held-out "
                   "tokens, for up to 200 features firing on at most 20% of tokens and often enough, "
                   f"{SAMPLE} tokens are drawn from the top quarter of the firing tokens of each "
                   "feature, of a random direction and of a random MLP neuron of the same block "
                   "(the baselines fire on their largest values, as many tokens as the feature: "
                   "matched density); alikeness = the share of drawn pairs that are the same byte.",
        rule=Rule(metric="alikeness_gap", op=">", threshold=0.0, effect=0.1, noise=0.05,
                  meaning="the SAE features' mean alikeness exceeds both the random directions' and "
                          "the neurons' by more than 0.1 (of a pair-match share in [0, 1])"),
        measure=measure_monosemantic,
        plot=plot_monosemantic,
        anchor="Bricken et al. 2023, Towards Monosemanticity: SAE features on a one-layer model are "
               "rated far more interpretable than its neurons; random directions score like neurons",
        tags=("inspect", "sae"),
    )
