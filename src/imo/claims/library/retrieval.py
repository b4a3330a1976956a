"""Claims about retrieval (issue 18, docs/memory.md "RETRO-lite").

* `retrieval-helps`: RETRO-lite (imo.retrieve.retro: 32-byte chunks, k = 2 neighbours with their
  continuations from the training split, BM25 over byte 4-grams, a small encoder, chunked
  cross-attention after the third of four blocks) against a plain GPT of equal parameters (the
  same depth, widened until the counts match within 2%) trained for equal steps on the very same
  rows (same seed: same chunk-aligned windows of python-docs' training split).

Both are scored on the same whole windows of python-docs' held-out split. Neighbours are never
from the query's document, and at evaluation they are allowed only up to an overlap alpha with
the chunk they help predict (the share of its 8-grams found in the neighbour or its
continuation). The metric is the gain at alpha <= 0.2: retrieval that only helps by copying
text the datastore holds verbatim (alpha near 1) does not count.

The guard: the comparison needs neighbours to be there. If fewer than half of the held-out
chunks' neighbour slots survive the filters at alpha <= 0.2, or the parameter counts differ by
more than 2%, the metric is NaN (inconclusive), not a refutation.

BM25 was chosen before running, not the better of dense and BM25 (Doostmohammadi et al. 2023
found BM25 the better retriever for RETRO); the dense arm is in benchmarks/memory.py retrieval.

    imo check retrieval-helps --quick
"""

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.retrieve.retro import OVERLAPS, RetroConfig, count_params, matched_width, train_retro  # noqa: E402
from imo.runs.store import RunStore  # noqa: E402
from imo.train.config import RunConfig  # noqa: E402

GAIN = 0.03  # bits/byte at alpha <= 0.2 (the figure)
LOW = 0.2  # the overlap up to which a gain counts
MIN_FILLED = 0.5  # of the held-out neighbour slots at alpha <= LOW, else untestable
PARAM_TOLERANCE = 0.02
CORPUS = "python-docs"

# full: 3 seeds x 2 arms of 150 steps of 16 rows of 256 bytes (614k training bytes an arm, about
# 1.5 passes over python-docs' 420 KB training split): ~15 CPU-minutes at one thread on machine C
# (RETRO-lite ~1 s a step, the base ~0.7 s; datastore and neighbour tables ~10 s, built once), or
# ~35 minutes of wall clock when four other jobs share its two cores, as when it was recorded.
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(model=dict(n_layer=2, n_embd=32, n_head=2, context_length=64), enc_width=8, enc_layers=1,
                  steps=2, batch=2, eval_windows=8),
    "quick": dict(model=dict(n_layer=2, n_embd=64, n_head=2, context_length=128), enc_width=32, enc_layers=1,
                  steps=40, batch=8, eval_windows=48),
    "full": dict(model=dict(n_layer=4, n_embd=128, n_head=4, context_length=256), enc_width=64, enc_layers=2,
                 steps=150, batch=16, eval_windows=None),
}


def retro_config(budget: str, retrieval: str = "bm25") -> RetroConfig:
    s = SIZES[budget]
    return RetroConfig(retrieval=retrieval, enc_width=s["enc_width"], enc_layers=s["enc_layers"],
                       enc_heads=min(2, s["enc_width"] // 8))


def run_config(budget: str, seed: int, width: int | None = None) -> RunConfig:
    s = SIZES[budget]
    model = dict(s["model"], pos="rope", **({} if width is None else {"n_embd": width}))
    return RunConfig.build(preset=None, model=model,
                           train={"corpus": CORPUS, "steps": s["steps"], "seed": seed, "batch_size": s["batch"],
                                  "warmup": max(1, s["steps"] // 10), "lr": 3e-3, "eval_every": 10**6,
                                  "ckpt_every": 10**6, "eval_batches": 2, "device": "cpu"})


def gain(base_bpb: float, retro_bpb: float, filled: float, params_gap: float) -> float:
    """base minus RETRO-lite bits/byte at alpha <= LOW; NaN where the comparison is untestable."""
    if filled < MIN_FILLED or params_gap > PARAM_TOLERANCE:
        return math.nan
    return base_bpb - retro_bpb


def measure_retrieval_helps(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    s = SIZES[budget]
    store = ctx.store or RunStore.open()
    rc = retro_config(budget)
    cfg = run_config(budget, seed)
    width = matched_width(cfg.model, rc)
    base_rc = RetroConfig(retrieval="none", chunk=rc.chunk)
    p_retro, p_base = count_params(cfg.model, rc), count_params(cfg.model.replace(n_embd=width), base_rc)
    figures: dict[str, Any] = {"_runs": [], "params_retro": p_retro, "params_base": p_base, "base_width": width,
                               "overlaps": list(OVERLAPS)}
    arms = {"base": (run_config(budget, seed, width), base_rc), "retro": (cfg, rc)}
    for name, (c, r) in arms.items():
        ctx.log(f"{name} ({budget}, seed {seed}): {s['steps']} steps of {s['batch']} x {c.model.context_length} bytes")
        run_id, stopped = train_retro(c, r, store=store, quiet=ctx.quiet, name=f"retrieval-helps-{name}",
                                      tags=("claim:retrieval-helps",), eval_windows=s["eval_windows"])
        if stopped:
            raise KeyboardInterrupt(f"training of run {run_id} was interrupted")
        figures["_runs"].append(run_id)
        f = store.get(run_id)["figures"]
        figures[f"{name}_bpb_by_overlap"] = [f["val_bpb_by_overlap"][f"{a:g}"] for a in OVERLAPS]
        figures[f"{name}_positions"] = f["positions"]
    from imo.data.corpora import load_corpus
    from imo.retrieve.retro import datastore_for

    _, tables = datastore_for(load_corpus(CORPUS), rc, store)  # built once per process (cached)
    filled = float((tables["val"].index[LOW] >= 0).mean())
    figures["filled_at_0.2"] = filled
    base = figures["base_bpb_by_overlap"][0]
    for a, r in zip(OVERLAPS, figures["retro_bpb_by_overlap"], strict=True):
        figures[f"gain_at_{a:g}"] = base - r
    gap = abs(p_base - p_retro) / p_retro
    figures["testable"] = "yes" if filled >= MIN_FILLED and gap <= PARAM_TOLERANCE else (
        f"no (neighbour slots filled {filled:.0%}, parameter gap {gap:.1%})")
    figures["gain_low_overlap"] = gain(base, figures["retro_bpb_by_overlap"][OVERLAPS.index(LOW)], filled, gap)
    return figures


def plot_retrieval_helps(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for j, f in enumerate(per_seed):
        ax.plot(f["overlaps"], [f[f"gain_at_{a:g}"] for a in f["overlaps"]], "o-", color="C0", alpha=0.8,
                label="RETRO-lite (BM25) gain over the base, per seed" if j == 0 else None)
    ax.axhline(GAIN, color="C3", ls="--", label=f"the claim: {GAIN} bits/byte at alpha <= {LOW}")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.axvline(LOW, color="0.6", ls=":")
    ax.set(xlabel="neighbours allowed up to overlap alpha with the predicted chunk",
           ylabel="base minus RETRO-lite, bits/byte (held-out python-docs)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


@register
def retrieval_helps() -> Claim:
    return Claim(
        id="retrieval-helps",
        statement="Retrieving text from a datastore and reading it with chunked cross-attention makes a "
                  "small language model better on held-out text than a model of the same size trained as "
                  "long, even when the retrieved text does not overlap what is predicted.",
        source="source-notes: retrieve, then generate (RETRO)",
        experiment="RETRO-lite (4 x 128, a 2 x 64 neighbour encoder, chunked cross-attention after block 2; "
                   "32-byte chunks, 2 BM25 neighbours with continuations from python-docs' training split, never "
                   "from the query's document, overlap <= 0.2 while training) against a plain GPT of the same "
                   "depth widened to equal parameters (4 x 144), both 150 steps of 16 x 256 bytes on the same "
                   "rows. Metric: the base's held-out bits/byte minus RETRO-lite's with neighbours allowed only "
                   "up to overlap 0.2 with the predicted chunk; undefined (inconclusive) where fewer than half "
                   "the neighbour slots are filled or the parameter counts differ by more than 2%.",
        rule=Rule(metric="gain_low_overlap", op=">", threshold=GAIN, noise=0.02,
                  meaning=f"with neighbours that share at most {LOW:.0%} of the predicted chunk's 8-grams, "
                          f"RETRO-lite beats the equal-parameter, equal-step base by more than {GAIN} bits/byte "
                          "on held-out text; the band 0.02 is one seed's spread of held-out bits/byte at these "
                          "sizes"),
        measure=measure_retrieval_helps,
        plot=plot_retrieval_helps,
        anchor="Borgeaud et al. 2022 (RETRO): gains persist at low neighbour overlap, most of them at high "
               "overlap; issue 18's target: >= 0.03 bits/byte at overlap <= 0.2 against equal parameters and steps",
        tags=("memory", "retrieval"),
    )
