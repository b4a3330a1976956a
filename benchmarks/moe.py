"""Mixture of experts against dense byte LMs at equal active and at equal total parameters (issue 19).

Every arm is the tiny preset's GPT (4 blocks, n_embd 128, 4 heads, context 256, RoPE) trained
from the same seed on the same seeded batches of python-docs for the same steps (so the same
tokens), with the same AdamW, warmup + cosine and clipping (imo.learn.moe.train_moe through
imo.train.loop.fit); only the MLPs differ (imo.model.moe):

  * moe8x2       8 experts of the GPT's MLP shape (128 -> 512 -> 128), top-2, capacity 1.25,
                 load-balancing coefficient 0.01;
  * moe8x2-aux0  the same with the coefficient 0 (how balanced is the load without the loss);
  * dense-active one dense MLP of width 1024 = 2 x 512: the matrices of the 2 experts a token
                 passes (equal active parameters and, up to the router's 128 x 8, equal FLOPs);
  * dense-total  one dense MLP of width 4096 = 8 x 512: all 8 experts' matrices (equal total
                 parameters, 4x the MoE's MLP FLOPs per token).

Training FLOPs are counted per token (imo.model.moe.training_flops_per_token: 6 x active
weights + attention). Validation bits/byte is measured on fixed validation windows during
training (the curve) and on the first --eval-bytes bytes of the validation split at the end
(the figure). Expert load: the per-layer coefficient of variation of the assignments on that
final pass (eval routing, no capacity). Prints Markdown rows per arm and seed, then means.

    OMP_NUM_THREADS=1 flock /tmp/imo-heavy-A.lock python benchmarks/moe.py [--steps 90] [--seeds 0,1,2] \
        [--json out.json] [--plot docs/figures/learning_moe.png]
"""

import argparse
import json
import os
import statistics

import torch

from imo.learn.moe import train_moe
from imo.model.moe import MoEConfig
from imo.train.config import RunConfig

ARMS = {
    "moe8x2": MoEConfig(experts=8, top_k=2, aux_coef=0.01),
    "moe8x2-aux0": MoEConfig(experts=8, top_k=2, aux_coef=0.0),
    "dense-active": MoEConfig(experts=1, top_k=1, hidden=2 * 512),
    "dense-total": MoEConfig(experts=1, top_k=1, hidden=8 * 512),
}


def run_arms(arms: list[str], seeds: list[int], steps: int, batch: int, eval_bytes: int, corpus: str,
             log=print) -> list[dict]:
    records = []
    for seed in seeds:
        for arm in arms:
            cfg = RunConfig.build(preset="tiny", train={
                "corpus": corpus, "steps": steps, "batch_size": batch, "lr": 3e-3, "warmup": max(1, steps // 10),
                "seed": seed, "device": "cpu", "eval_every": max(1, steps // 6), "eval_batches": 2,
                "log_every": max(1, steps // 6)})
            _, f = train_moe(cfg, ARMS[arm], record=False, quiet=True, eval_bytes=eval_bytes)
            f = {k: v for k, v in f.items() if k != "losses"}
            records.append({"arm": arm, "seed": seed, **f})
            cv = f"{max(f['load_cv']):.3f} (max) / {statistics.mean(f['load_cv']):.3f} (mean)" if f["experts"] > 1 else "-"
            log(f"| {arm} | {seed} | {f['val_bpb']:.4f} | {f['train_flops']:.3e} | {f['params']:,} | "
                f"{f['active_params']:,} | {cv} | {f['seconds']:.0f} |")
    return records


def plot(records: list[dict], arms: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in arms:
        rs = [r for r in records if r["arm"] == arm]
        steps = [p["step"] for p in rs[0]["curve"]]
        flops = [p["train_flops"] for p in rs[0]["curve"]]
        mean = [statistics.mean(r["curve"][i]["val_bpb"] for r in rs) for i in range(len(steps))]
        ax.plot(flops, mean, marker="o", label=f"{arm} ({len(rs)} seeds)")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("validation bits/byte (fixed windows)")
    ax.set_title("MoE 8 experts top-2 vs dense, tiny on python-docs")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=90)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--eval-bytes", type=int, default=65536)
    ap.add_argument("--corpus", default="python-docs")
    ap.add_argument("--json", default=None, help="also write every record here")
    ap.add_argument("--plot", default=None, help="bits/byte against training FLOPs, one line per arm (PNG)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [a for a in args.arms.split(",") if a]
    if bad := [a for a in arms if a not in ARMS]:
        raise SystemExit(f"unknown arm {bad[0]!r}; choose from {', '.join(ARMS)}")
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[:3]}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("| arm | seed | val bits/byte | training FLOPs | parameters | active | load CV | seconds |")
    print("|---|---|--:|--:|--:|--:|--:|--:|", flush=True)
    records = run_arms(arms, seeds, args.steps, args.batch, args.eval_bytes, args.corpus,
                       log=lambda m: print(m, flush=True))
    print("\n| arm | mean val bits/byte | sd | vs dense-active | mean load CV (max layer) | mean seconds |")
    print("|---|--:|--:|--:|--:|--:|")
    mean = {a: statistics.mean(r["val_bpb"] for r in records if r["arm"] == a) for a in arms}
    for a in arms:
        rs = [r for r in records if r["arm"] == a]
        vals = [r["val_bpb"] for r in rs]
        sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        vs = f"{mean[a] - mean['dense-active']:+.4f}" if "dense-active" in mean else "-"
        cv = f"{statistics.mean(max(r['load_cv']) for r in rs):.3f}" if rs[0]["experts"] > 1 else "-"
        print(f"| {a} | {mean[a]:.4f} | {sd:.4f} | {vs} | {cv} | {statistics.mean(r['seconds'] for r in rs):.0f} |")
    with open("/proc/loadavg") as f:
        print(f"load average at end: {f.read().split()[:3]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    if args.plot:
        plot(records, arms, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
