"""Claims about the inference engine.

* `store-layer-state`: the notes say "store the key layers' state and carry it forward; when two
  words are about equally likely, compute both; when the user rejects the first answer, serve the
  next". The engine (imo.engine.branches) keeps a fork of the KV cache at every step whose two
  most likely bytes are within a margin, and `reject` serves the next answer from the unused
  branch point with the smallest margin. The claim measures, on briefly trained byte models and
  validation-text prompts, the forward passes and the latency of serving each next answer against
  generating that same answer from scratch (prefill + a pass per token, taking the runner-up at
  the branch; imo.engine.measure), checking the two outputs equal token for token. Passes spent
  speculatively on a branch (eager mode) count as its cost, so the passes are those of the lazy
  mode; latency is reported for both.

    imo check store-layer-state --quick
"""

from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.data.batches import random_batch  # noqa: E402
from imo.data.corpora import load_corpus  # noqa: E402
from imo.engine.decode import Engine  # noqa: E402
from imo.engine.measure import measure_alternatives, summarize  # noqa: E402
from imo.train.checkpoint import load_model  # noqa: E402
from imo.train.config import RunConfig  # noqa: E402
from imo.train.trainer import train_or_reuse  # noqa: E402

# smoke: seconds, never evidence. quick: a 2-layer model trained for a few seconds of one core, prompts
# and answers a quarter of the benchmark's (256 + 128). full: the `tiny` preset's shape.
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(model=dict(n_layer=1, n_embd=32, n_head=4, context_length=32), steps=3, batch=4,
                  prompts=1, prompt=12, answer=8, rejections=2, speculate=16),
    "quick": dict(model=dict(n_layer=2, n_embd=64, n_head=4, context_length=128), steps=100, batch=8,
                  prompts=2, prompt=64, answer=32, rejections=3, speculate=64),
    "full": dict(model=dict(n_layer=4, n_embd=128, n_head=4, context_length=256), steps=600, batch=16,
                 prompts=4, prompt=128, answer=96, rejections=4, speculate=192),
}


MAX_PROMPTS = 4  # prompts drawn at most: this many times the budget's count


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    s = SIZES[budget]
    cfg = RunConfig.build(preset=None, model={**s["model"], "pos": "rope"},
                          train={"corpus": "python-docs", "steps": s["steps"], "seed": seed,
                                 "batch_size": s["batch"], "warmup": min(20, s["steps"]),
                                 "eval_every": s["steps"]})
    ctx.log(f"model ({budget}, seed {seed})")
    run_id = train_or_reuse(cfg, store=ctx.store, quiet=ctx.quiet,
                            code_fingerprint=ctx.code_fingerprint)
    model, _ = load_model(ctx.store.run_dir(run_id))
    import torch

    gen = torch.Generator().manual_seed(2000 + seed)
    x, _ = random_batch(load_corpus("python-docs").val, s["prompt"], MAX_PROMPTS * s["prompts"], gen)
    want = s["prompts"] * s["rejections"]
    ctx.log(f"prompts until {want} rejections are measured (at most {len(x)} prompts), lazy and eager")
    # a confident model may have no close call on some prompts: draw prompts until enough
    # rejections are measured (the same prompts for both modes)
    rows: dict[str, list] = {"lazy": [], "eager": []}
    used = 0
    for prompt in x.tolist():
        if len(rows["lazy"]) >= want:
            break
        used += 1
        for mode, spec in (("lazy", 0), ("eager", s["speculate"])):
            rows[mode] += measure_alternatives(Engine(model), [prompt], s["answer"], s["rejections"],
                                               speculate=spec)["rows"]
    lazy = summarize(rows["lazy"], s["answer"], s["prompt"], 0)
    eager = summarize(rows["eager"], s["answer"], s["prompt"], s["speculate"])
    if not lazy["rejections"]:
        raise RuntimeError(f"no branch point within the margin on {used} prompts: nothing was measured")
    return {
        "_runs": [run_id],
        "answer_len": s["answer"],
        "prompt_len": s["prompt"],
        "rejections": lazy["rejections"],
        "prompts_used": used,
        "pass_ratio": float(lazy["pass_ratio"]),
        "position_ratio": float(lazy["position_ratio"]),
        "latency_ratio_lazy": float(lazy["latency_ratio"]),
        "latency_ratio_eager": float(eager["latency_ratio"]),
        "eager_pass_ratio": float(eager["pass_ratio"]),
        "outputs_equal": min(lazy["outputs_equal"], eager["outputs_equal"]),
        "mean_branch_position": float(lazy["mean_branch_position"]),
        "branch_positions": [r["position"] for r in lazy["rows"]],
        "per_rejection_pass_ratio": [r["scratch_passes"] / max(r["reject_passes"], 1) for r in lazy["rows"]],
    }


def plot(per_seed: list[dict[str, Any]], path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    for i, f in enumerate(per_seed):
        a.plot(f["branch_positions"], f["per_rejection_pass_ratio"], "o", color=f"C{i}", alpha=0.8,
               label=f"seed {i}")
    if per_seed:
        n = per_seed[0]["answer_len"]
        xs = list(range(n))
        a.plot(xs, [n / max(n - 1 - p, 1) for p in xs], color="C7", lw=1, ls=":",
               label="answer length / passes left")
    a.axhline(10, color="k", lw=1, ls="--", label="rule: 10x")
    a.set_yscale("log")
    a.set_xlabel("branch position in the answer (byte)")
    a.set_ylabel("passes from scratch / passes to serve")
    a.legend(fontsize=8)
    a.grid(True, alpha=0.3)
    names = ["pass_ratio", "latency_ratio_lazy", "latency_ratio_eager"]
    labels = ["passes", "latency\n(lazy)", "latency\n(eager)"]
    for j, name in enumerate(names):
        vals = [max(f[name], 1e-3) for f in per_seed]
        b.bar(j, sum(vals) / max(len(vals), 1), color=f"C{j}", alpha=0.7)
        b.plot([j] * len(vals), vals, "k.")
    b.axhline(10, color="k", lw=1, ls="--")
    b.set_yscale("log")
    b.set_xticks(range(len(names)), labels)
    b.set_ylabel("from scratch / next answer (higher: more saved)")
    b.grid(True, axis="y", alpha=0.3)
    save_figure(fig, path)


@register
def store_layer_state() -> Claim:
    return Claim(
        id="store-layer-state",
        statement="Keeping the layers' state where two next bytes are about equally likely makes "
                  "serving the next answer after a rejection far cheaper than generating it again.",
        source="source-notes: store the key layers' state and carry it forward; when two words are "
               "about equally likely, compute both; when the user rejects the first answer, serve the next",
        experiment="Briefly trained byte models (RoPE); greedy answers to validation-text prompts with "
                   "branch points where p2/p1 >= 0.5. Reject several times per prompt (prompts drawn until "
                   "the budget's count of rejections is measured); each next answer "
                   "(runner-up at the unused branch point of smallest margin, then greedy) is compared with "
                   "generating that same answer from scratch (prefill + a pass per token). Metric: total "
                   "forward passes from scratch / total passes to serve (speculative passes counted, so "
                   "lazy and eager spend the same); latency lazy and eager beside it; outputs checked equal.",
        rule=Rule(metric="pass_ratio", op=">", threshold=10.0, noise=2.0,
                  meaning="serving the next answer takes at least 10 times fewer forward passes than "
                          "generating the same answer again (CLAIMS.md: >= 10x fewer passes at equal "
                          "output); the margin covers where one seed's branch points happen to fall"),
        measure=measure,
        plot=plot,
        anchor=None,
        version=2,  # v2: prompts are drawn until enough rejections are measured
        tags=("engine",),
    )
