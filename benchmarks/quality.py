"""Quality: what the tiny preset reaches in a few minutes on 2 CPU cores.

1. tinyshakespeare, `--preset tiny --minutes 5`: target validation <= 2.5 bits/byte
   (nanoGPT's CPU recipe, 4 layers x 128, context 64, 2000 iterations: ~1.88 nats/char = 2.71 bits).
2. python-docs (the built-in default corpus), the same budget, printed beside the fair classic
   baseline: xz -9e on the validation bytes given the training bytes as a prefix.

    python benchmarks/quality.py [--minutes 5] [--markdown]
"""

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from imo import paths
from imo.baselines import conditional_bpb
from imo.data.corpora import load_corpus
from imo.runs.store import RunStore, short_commit
from imo.train.config import RunConfig
from imo.train.trainer import train

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--pos", default=None, help="position encoding (default: the model default)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    paths.set_store(Path(tempfile.mkdtemp(prefix="imo-quality-")) / "store.sqlite")
    corpora = ["python-docs"]
    if SHAKESPEARE.exists():
        corpora.insert(0, f"file:{SHAKESPEARE}")
    else:
        print(f"note: {SHAKESPEARE} is absent; tinyshakespeare row skipped", file=sys.stderr)
    rows = []
    for corpus in corpora:
        cfg = RunConfig.build(preset="tiny", model={"pos": args.pos}, train={"corpus": corpus, "minutes": args.minutes})
        rid = train(cfg, quiet=True)
        fig = RunStore.open().get(rid)["figures"]
        c = load_corpus(corpus)
        train_b, val_b = bytes(c.train), bytes(c.val)
        xz = conditional_bpb("xz", train_b, val_b)
        bz = conditional_bpb("bzip2", train_b, val_b)
        rows.append((corpus.split("/")[-1], fig["steps"], fig["tokens_per_s"], fig["val_bpb"], xz, bz))
        print(f"{rows[-1][0]}: val {fig['val_bpb']:.3f} bits/byte after {fig['steps']} steps "
              f"({fig['tokens_per_s']:,.0f} tok/s); xz|train {xz:.3f}, bzip2|train {bz:.3f}", flush=True)
    commit = short_commit()
    machine = f"{platform.platform()}, {os.cpu_count()} cores, torch {torch.__version__}, commit {commit}"
    if args.markdown:
        print(f"\nMachine: {machine}. `tiny` preset, pos={cfg.model.pos}, lr={cfg.train.lr}, {args.minutes} min budget each, default settings otherwise.\n")
        print("| corpus | steps | tokens/s | model val bits/byte | xz -9e given train | bzip2 -9 given train |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, steps, tps, val, xz, bz in rows:
            print(f"| {name} | {steps} | {tps:,.0f} | {val:.3f} | {xz:.3f} | {bz:.3f} |")
    for name, _, _, val, _, _ in rows:
        if name.startswith("tinyshakespeare"):
            print(f"target tinyshakespeare <= 2.5 bits/byte: {'PASS' if val <= 2.5 else 'MISS'} ({val:.3f})")


if __name__ == "__main__":
    main()
