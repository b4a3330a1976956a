"""Budget sweep: which model shape and learning rate reach the lowest validation bits/byte in a
fixed wall-clock budget, run the way `imo train --minutes M` runs them (same loop, same
--minutes-to-steps conversion, same default threads and dtype). It is the measurement behind the
budget table in imo.train.budget (`imo train --minutes M` without --preset).

Each candidate is a preset plus overrides (model fields and lr/batch); every run starts from the
same seed on the same corpus, in its own scratch store, one after the other (run it under
`flock /tmp/imo-heavy.lock` on a shared machine: a neighbour shortens every run's step count).

    python benchmarks/budget.py --minutes 1.25 --markdown
    python benchmarks/budget.py --minutes 5 --only tiny budget-5
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from imo import paths
from imo.doctor import default_threads, machine
from imo.runs.store import RunStore, short_commit
from imo.train.cli import warm_up
from imo.train.config import RunConfig
from imo.train.trainer import train

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

# name -> (preset, model overrides, train overrides). "tiny" is today's default.
CANDIDATES: dict[str, tuple[str, dict, dict]] = {
    "tiny": ("tiny", {}, {}),
    "tiny lr 6e-3": ("tiny", {}, {"lr": 6e-3}),
    "tiny ctx 128 x 32": ("tiny", {"context_length": 128}, {"batch_size": 32}),
    "tiny ctx 128 x 32 lr 6e-3": ("tiny", {"context_length": 128}, {"batch_size": 32, "lr": 6e-3}),
    "tiny ctx 128 x 16 lr 6e-3": ("tiny", {"context_length": 128}, {"batch_size": 16, "lr": 6e-3}),
    "tiny ctx 64 x 64 lr 6e-3": ("tiny", {"context_length": 64}, {"batch_size": 64, "lr": 6e-3}),
    "4 x 96 ctx 128 x 32 lr 6e-3": ("tiny", {"n_embd": 96, "n_head": 3, "context_length": 128},
                                    {"batch_size": 32, "lr": 6e-3}),
    "4 x 96 ctx 128 x 16 lr 6e-3": ("tiny", {"n_embd": 96, "n_head": 3, "context_length": 128},
                                    {"batch_size": 16, "lr": 6e-3}),
    "4 x 96 ctx 128 x 32 lr 1e-2": ("tiny", {"n_embd": 96, "n_head": 3, "context_length": 128},
                                    {"batch_size": 32, "lr": 1e-2}),
    "6 x 128 ctx 128 x 32 lr 6e-3": ("tiny", {"n_layer": 6, "context_length": 128}, {"batch_size": 32, "lr": 6e-3}),
    "4 x 192 ctx 128 x 32 lr 4e-3": ("tiny", {"n_embd": 192, "n_head": 6, "context_length": 128},
                                     {"batch_size": 32, "lr": 4e-3}),
}


def run_one(name: str, corpus: str, minutes: float, seed: int, warm: bool) -> dict:
    preset, model, tr = CANDIDATES[name]
    paths.set_store(Path(tempfile.mkdtemp(prefix="imo-budget-")) / "store.sqlite")
    cfg = RunConfig.build(preset=preset, model=model, train={"corpus": corpus, "minutes": minutes, "seed": seed, **tr})
    if warm:
        warm_up(cfg)  # as `imo train --minutes` does since the budget table
    t0 = time.perf_counter()
    rid = train(cfg, quiet=True)
    wall = time.perf_counter() - t0
    fig = RunStore.open().get(rid)["figures"]
    m = cfg.model
    return {"name": name, "shape": f"{m.n_layer} x {m.n_embd}", "ctx": m.context_length,
            "batch": cfg.train.batch_size, "lr": cfg.train.lr, "params": fig.get("params"),
            "steps": fig["steps"], "tps": fig.get("train_tokens_per_s") or fig["tokens_per_s"],
            "val": fig["val_bpb"], "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.25)
    ap.add_argument("--corpus", default=f"file:{SHAKESPEARE}")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--only", nargs="+", choices=sorted(CANDIDATES), help="run these candidates only")
    ap.add_argument("--no-warm-up", action="store_true",
                    help="skip imo.train.cli.warm_up's throwaway steps (the sweep before the budget table)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(default_threads())  # what `imo train` does without --threads
    mach = machine()
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, flags {' '.join(mach['flags'])}; "
          f"{platform.platform()}; torch {torch.__version__}; {torch.get_num_threads()} thread(s); "
          f"git {short_commit()}; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    rows = []
    for name in args.only or list(CANDIDATES):
        r = run_one(name, args.corpus, args.minutes, args.seed, not args.no_warm_up)
        rows.append(r)
        print(f"{name}: {r['steps']} steps, {r['tps']:,.0f} tok/s, val {r['val']:.3f} bits/byte, "
              f"{r['wall']:.0f}s wall; load {os.getloadavg()[0]:.2f}", flush=True)
    if args.markdown:
        print(f"\n{args.minutes} min each, corpus {args.corpus.split('/')[-1]}, seed {args.seed}, "
              f"warm-up {'off' if args.no_warm_up else 'on'}\n")
        print("| candidate | layers x width | context x batch | lr | steps | tokens/s | val bits/byte |")
        print("|:--|:--|:--|--:|--:|--:|--:|")
        for r in sorted(rows, key=lambda r: r["val"]):
            print(f"| {r['name']} | {r['shape']} | {r['ctx']} x {r['batch']} | {r['lr']:g} | {r['steps']} | "
                  f"{r['tps']:,.0f} | {r['val']:.3f} |")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
