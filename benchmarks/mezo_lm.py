"""MeZO vs backprop (AdamW) fine-tuning a trained imo LM on a new corpus (issue 19's target).

The issue: MeZO fine-tuning a python-docs `tiny` model on Shakespeare recovers >= 50% of AdamW's
bits/byte gain at <= 1.1x the memory of inference (AdamW >= 3x), compared at matched wall-clock and
matched forward passes. Steps:
1. tuning, equal for both: each method's learning rate from a grid of three, each tried for
   --tune-seconds from the same start on the same batches; the best final validation bits/byte wins;
2. AdamW and MeZO at the tuned rates for --seconds each (matched wall-clock, evaluation excluded),
   then MeZO again for as many forward passes as AdamW made (matched forward passes);
3. memory: inference, AdamW and MeZO footprints (parameter bytes + peak RSS growth), each in a fresh
   child process (imo.learn.mezo_lm, the imo.exams.memory method), exact live tensor bytes beside it.

    flock /tmp/imo-heavy.lock python benchmarks/mezo_lm.py RUN --seconds 240 [--corpus file:PATH]
"""

import argparse
import json
import os
from pathlib import Path

import torch

from imo.data.corpora import load_corpus
from imo.learn.mezo_lm import Budget, finetune, memory_footprints
from imo.runs.store import RunStore
from imo.train.checkpoint import load_model
from imo.train.evaluate import fixed_eval_set

GRIDS = {"adam": (1e-4, 3e-4, 1e-3), "mezo": (1e-5, 3e-5, 1e-4)}


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _lrs(text: str, ap: argparse.ArgumentParser) -> tuple[float, ...]:
    try:
        lrs = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        ap.error(f"a learning-rate grid is comma-separated numbers, got {text!r}")
    if not lrs or any(not lr > 0 for lr in lrs):
        ap.error(f"learning rates must be > 0, got {text!r}")
    return lrs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run id of the trained model (e.g. a python-docs tiny run)")
    ap.add_argument("--corpus", default=f"file:{Path(__file__).resolve().parents[2] / 'shared/data/tinyshakespeare.txt'}")
    ap.add_argument("--seconds", type=float, default=240)
    ap.add_argument("--tune-seconds", type=float, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--json", default=None)
    ap.add_argument("--adam-lrs", default=",".join(f"{x:g}" for x in GRIDS["adam"]),
                    help="AdamW's learning-rate grid, comma-separated (three values keeps the tuning equal)")
    ap.add_argument("--mezo-lrs", default=",".join(f"{x:g}" for x in GRIDS["mezo"]),
                    help="MeZO's learning-rate grid, comma-separated (as many values as AdamW's)")
    args = ap.parse_args()
    grids = {"adam": _lrs(args.adam_lrs, ap), "mezo": _lrs(args.mezo_lrs, ap)}
    if len(grids["adam"]) != len(grids["mezo"]):
        ap.error("--adam-lrs and --mezo-lrs must have as many values: the tuning budget is equal for both")
    torch.set_num_threads(1)
    store = RunStore.open()
    run_id = store.resolve(args.run)
    run_dir = store.run_dir(run_id)
    base, _ = load_model(run_dir)
    ctx = base.cfg.context_length
    corpus = load_corpus(args.corpus)
    evals = fixed_eval_set(corpus.val, ctx, args.batch, args.eval_batches)
    print(f"run {run_id}: {base.num_params():,} parameters, context {ctx}; target {args.corpus}; "
          f"load average {loadavg()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")

    def run(method, lr, budget):
        model, _ = load_model(run_dir)
        return finetune(model, method, corpus.train, evals, budget, lr=lr, eps=args.eps, batch_size=args.batch,
                        context_length=ctx, eval_every=10**9)

    best, tuning = {}, []
    for method, grid in grids.items():
        for lr in grid:
            r = run(method, lr, Budget(seconds=args.tune_seconds))
            tuning.append({k: r[k] for k in ("method", "lr", "steps", "forwards", "start_bpb", "end_bpb")})
            print(f"tune {method} lr {lr:g}: {r['start_bpb']:.4f} -> {r['end_bpb']:.4f} in {r['steps']} steps")
            if method not in best or r["end_bpb"] < best[method][1]:
                best[method] = (lr, r["end_bpb"])
    adam = run("adam", best["adam"][0], Budget(seconds=args.seconds))
    print(f"adam (lr {adam['lr']:g}): {adam['start_bpb']:.4f} -> {adam['end_bpb']:.4f}, {adam['steps']} steps, "
          f"{adam['forwards']} forwards, {adam['seconds']:.0f} s; load {loadavg()}")
    mezo_t = run("mezo", best["mezo"][0], Budget(seconds=args.seconds))
    print(f"mezo, matched seconds (lr {mezo_t['lr']:g}): {mezo_t['start_bpb']:.4f} -> {mezo_t['end_bpb']:.4f}, "
          f"{mezo_t['steps']} steps, {mezo_t['forwards']} forwards; load {loadavg()}")
    mezo_f = run("mezo", best["mezo"][0], Budget(forwards=adam["forwards"]))
    print(f"mezo, matched forwards: {mezo_f['end_bpb']:.4f}, {mezo_f['steps']} steps, {mezo_f['seconds']:.0f} s; "
          f"load {loadavg()}")
    mem = memory_footprints(run_dir, args.batch, ctx)
    print("\n| arm | steps | forward passes | seconds | val bits/byte | gain | share of AdamW's gain |")
    print("|---|---|---|---|---|---|---|")
    for name, r in (("AdamW", adam), ("MeZO, matched wall-clock", mezo_t), ("MeZO, matched forward passes", mezo_f)):
        share = r["gain_bpb"] / adam["gain_bpb"] if adam["gain_bpb"] > 0 else float("nan")
        print(f"| {name} (lr {r['lr']:g}) | {r['steps']} | {r['forwards']} | {r['seconds']:.0f} | "
              f"{r['start_bpb']:.4f} -> {r['end_bpb']:.4f} | {r['gain_bpb']:.4f} | {100 * share:.1f}% |")
    print("\n| method | peak RSS growth MiB | footprint MiB (params + growth) | x inference | exact live tensor MiB | exact x inference |")
    print("|---|---|---|---|---|---|")
    for m in ("inference", "adam", "mezo"):
        r = mem[m]
        print(f"| {m} | {r['peak_growth_mib']:.1f} | {r['footprint_mib']:.1f} | {r.get('ratio_to_inference', 1.0):.2f} | "
              f"{r['exact_footprint_mib']:.1f} | {r.get('exact_ratio_to_inference', 1.0):.2f} |")
    print(f"\nload average at end: {loadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"run": run_id, "tuning": tuning, "adam": adam, "mezo_seconds": mezo_t, "mezo_forwards": mezo_f,
                       "memory": mem}, f, indent=1)


if __name__ == "__main__":
    main()
