"""SET and RigL on a byte LM's MLP layers beside a static sparse mask and dense (issue 19).

Every arm trains the same GPT (imo.model) from the same seed on the same seeded batches for the
same number of steps, with the same AdamW and schedule; only the MLP matrices are masked
(imo.learn.sparse_lm). Prints one Markdown row per arm and seed, then the mean of the seeds.

    flock /tmp/imo-heavy.lock python benchmarks/sparse_lm.py [--steps 1500] [--seeds 0,1,2] [--sparsity 0.9]
"""

import argparse
import json
import os
import statistics

import torch

from imo.learn.sparse_lm import ARMS, SparseLMConfig, train_sparse_lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--corpus", default="python-docs")
    ap.add_argument("--json", default=None, help="also write every record here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [a for a in args.arms.split(",") if a]
    cfg = SparseLMConfig(corpus=args.corpus, steps=args.steps, sparsity=args.sparsity)
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[:3]}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    records = []
    print("| arm | seed | val bits/byte | MLP density | topology updates | MLP nonzeros moved | seconds |")
    print("|---|---|---|---|---|---|---|")
    for seed in seeds:
        for arm in arms:
            r = train_sparse_lm(arm, cfg, seed=seed)
            records.append(r)
            print(f"| {arm} | {seed} | {r['val_bpb']:.4f} | {r['mlp_density']:.4f} | {r['topology_updates']} | "
                  f"{100 * r['moved_fraction']:.1f}% | {r['seconds']:.0f} |", flush=True)
    print("\n| arm | mean val bits/byte | sd | vs static |")
    print("|---|---|---|---|")
    mean = {a: statistics.mean(r["val_bpb"] for r in records if r["arm"] == a) for a in arms}
    for a in arms:
        vals = [r["val_bpb"] for r in records if r["arm"] == a]
        sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        vs = f"{mean[a] - mean['static']:+.4f}" if "static" in mean else "-"
        print(f"| {a} | {mean[a]:.4f} | {sd:.4f} | {vs} |")
    with open("/proc/loadavg") as f:
        print(f"load average at end: {f.read().split()[:3]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
