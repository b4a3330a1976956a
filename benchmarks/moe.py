"""Mixture of experts against dense byte LMs at equal active and at equal total parameters (issue 19).

The arms and the budget are the experts-scale claim's (imo.claims.library.experts, --full): the
tiny preset's GPT (4 blocks, n_embd 128, 4 heads, context 256, RoPE) trained from the same seed
on the same seeded batches of python-docs for the same steps (so the same tokens), with the same
AdamW, warmup + cosine and clipping (imo.learn.moe.train_moe through imo.train.loop.fit); only
the MLPs differ (imo.model.moe):

  * moe8x2       8 experts of the GPT's MLP shape (128 -> 512 -> 128), top-2, capacity 1.25,
                 load-balancing coefficient 0.01;
  * moe8x2-aux0  the same with the coefficient 0 (how balanced the load is without the loss);
  * dense-active one dense MLP of width 1024 = 2 x 512: the matrices of the 2 experts a token
                 passes (equal active parameters and, up to the router's 128 x 8, equal FLOPs);
  * dense-total  one dense MLP of width 4096 = 8 x 512: all 8 experts' matrices (equal total
                 parameters, 4x the MoE's MLP FLOPs per token).

Training FLOPs are counted per token (imo.model.moe.training_flops_per_token: 6 x the weights a
token passes through, plus attention). Validation bits/byte: on 2 fixed validation batches during
training (the curve) and on the first 64 KiB of the validation split at the end (the figure).
Expert load: the per-layer coefficient of variation of the assignments on that final pass (eval
routing, no capacity). Either measures the seeds itself, or reads a recorded claim's evidence
(--from-evidence evidence/experts-scale.json, the same measurement); prints Markdown tables and
draws bits/byte against training FLOPs, one line per arm (mean of the seeds).

    OMP_NUM_THREADS=1 flock /tmp/imo-heavy-A.lock python benchmarks/moe.py [--seeds 0,1,2] [--plot PNG]
    python benchmarks/moe.py --from-evidence evidence/experts-scale.json --plot docs/figures/learning_moe.png
"""

import argparse
import json
import statistics

import torch

ARMS = ("moe8x2", "moe8x2-aux0", "dense-active", "dense-total")


def records_of(per_seed: list[dict], seeds: list[int]) -> list[dict]:
    return [{"arm": arm, "seed": seed, **f["arms"][arm]} for seed, f in zip(seeds, per_seed, strict=True)
            for arm in ARMS]


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in ARMS:
        rs = [r for r in records if r["arm"] == arm]
        n = min(len(r["curve"]) for r in rs)
        flops = [rs[0]["curve"][i]["train_flops"] for i in range(n)]
        mean = [statistics.mean(r["curve"][i]["val_bpb"] for r in rs) for i in range(n)]
        ax.plot(flops, mean, marker="o", ms=3, label=f"{arm} (mean of {len(rs)} seeds)")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("validation bits/byte (2 fixed batches)")
    ax.set_title("8 experts top-2 vs dense, tiny GPT on python-docs, equal steps and tokens", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", default="full", help="the claim's size: smoke, quick or full")
    ap.add_argument("--from-evidence", default=None, help="read the seeds of a recorded experts-scale claim")
    ap.add_argument("--json", default=None, help="also write every record here")
    ap.add_argument("--plot", default=None, help="bits/byte against training FLOPs, one line per arm (PNG)")
    args = ap.parse_args()
    if args.from_evidence:
        ev = json.load(open(args.from_evidence))
        seeds = list(range(len(ev["figures"])))
        per_seed = ev["figures"]
        prov = ev["provenance"]
        print(f"from {args.from_evidence}: commit {prov['commit']}, {prov['date']}, {prov['minutes']:.1f} min, "
              f"verdict {ev['verdict']} ({ev['reason']})")
    else:
        from imo.claims.library.experts import measure_experts
        from imo.claims.registry import Context

        torch.set_num_threads(1)
        seeds = [int(s) for s in args.seeds.split(",")]
        per_seed = [measure_experts(args.budget, s, Context(store=None, log=print)) for s in seeds]
    records = records_of(per_seed, seeds)
    print("| arm | seed | val bits/byte | training FLOPs | parameters | active | load CV max / mean layer | seconds |")
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for r in records:
        moe = r["arm"].startswith("moe")
        cv = f"{max(r['load_cv']):.3f} / {statistics.mean(r['load_cv']):.3f}" if moe else "-"
        print(f"| {r['arm']} | {r['seed']} | {r['val_bpb']:.4f} | {r['train_flops']:.3e} | {r['params']:,} | "
              f"{r['active_params']:,} | {cv} | {r['seconds']:.0f} |")
    print("\n| arm | mean val bits/byte | sd | vs dense-active | vs dense-total | mean load CV (max layer) | mean seconds |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    mean = {a: statistics.mean(r["val_bpb"] for r in records if r["arm"] == a) for a in ARMS}
    for a in ARMS:
        rs = [r for r in records if r["arm"] == a]
        vals = [r["val_bpb"] for r in rs]
        sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        cv = f"{statistics.mean(max(r['load_cv']) for r in rs):.3f}" if a.startswith("moe") else "-"
        print(f"| {a} | {mean[a]:.4f} | {sd:.4f} | {mean[a] - mean['dense-active']:+.4f} | "
              f"{mean[a] - mean['dense-total']:+.4f} | {cv} | {statistics.mean(r['seconds'] for r in rs):.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    if args.plot:
        plot(records, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
