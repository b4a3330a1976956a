"""Learning rules against backprop at equal budget on the MNIST split (issue 19).

The budget is equal epochs: every arm sees the same training digits in the same seeded batch
order (batch 100) for the same number of epochs; wall seconds are reported beside it.
Sections:
- rules: backprop, feedback alignment, direct feedback alignment, voltage, MeZO and
  Forward-Forward (both read-outs) on one MLP;
- memory: tensor bytes (parameters, gradients, optimiser state) and peak RSS of inference and of
  training, one fresh child process per rule (imo.learn.memory);
- sparse: dense, static, SET and RigL at one sparsity (ERK), plus dense-masked vs torch CSR
  inference at batch 1 (samples per second, best of 3 timed runs);
- csr: batch-1 inference speed of dense masked vs torch CSR weights at 0-99% sparsity;
- capsules: the slim CapsNet with 1 and 3 routing iterations and a CNN of equal parameters, on
  the validation digits and on the same digits under random affine maps (affNIST-lite).

    flock /tmp/imo-heavy.lock python benchmarks/learning.py [--quick] [--sections rules,sparse] [--rules ff,mezo]
"""

import argparse
import os
import platform
import subprocess
import time

import torch

from imo.learn.capsules import fit_capsules
from imo.learn.data import load
from imo.learn.loop import fit, make_rule
from imo.learn.memory import MiB, measure
from imo.learn.rules import RuleConfig


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def batch1_rate(fn, x: torch.Tensor, reps: int = 3) -> float:
    """Samples per second of fn on single rows, best of `reps` passes over x."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for i in range(len(x)):
            fn(x[i:i + 1])
        best = min(best, time.perf_counter() - t0)
    return len(x) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not a result")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sections", default="rules,memory,sparse,csr,capsules")
    ap.add_argument("--rules", default="backprop,fa,dfa,voltage,mezo,ff", help="rules section: which rules")
    args = ap.parse_args()
    torch.set_num_threads(1)
    q = args.quick
    data = load(args.data, seed=args.seed, max_train=500 if q else None)
    sections = set(args.sections.split(","))
    commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, commit {commit}, "
          f"data {data.source}: {len(data.x_train)} train / {len(data.x_val)} validation, seed {args.seed}")
    log = lambda s: print("  " + s, flush=True)  # noqa: E731

    if "rules" in sections:
        hidden, epochs = ((64, 64, 64), 1) if q else ((1000, 1000, 1000), 15)
        print(f"\n## rules: MLP {'x'.join(map(str, hidden))}, {epochs} epochs, batch 100 (equal epochs)\n")
        rows = []
        for rule in args.rules.split(","):
            rec, _ = fit(rule, data, RuleConfig(hidden=hidden, seed=args.seed), epochs, 100, log=log)
            f = rec["final"]
            rows.append(f"| {rule} | {rec['rule']['lr']:g} | {pct(f['error'])} | "
                        f"{pct(f['goodness_error']) if 'goodness_error' in f else '—'} | {f['steps']} | {f['seconds']:.0f} |")
        print("| rule | lr | val error % | goodness read-out % | steps | wall s |\n|:--|--:|--:|--:|--:|--:|")
        print("\n".join(rows))

    if "memory" in sections:
        hidden = (64, 64, 64) if q else (1000, 1000, 1000)
        print(f"\n## memory: MLP {'x'.join(map(str, hidden))}, batch 100, one fresh process per rule (VmHWM)\n")
        print("| rule | params MiB | grads MiB | optimiser state MiB | peak inference MiB | peak training MiB |")
        print("|:--|--:|--:|--:|--:|--:|")
        for rule in args.rules.split(","):
            m = measure(rule, hidden, 100, seed=args.seed)
            tb = {k: v / MiB for k, v in m["tensor_bytes"].items()}
            print(f"| {rule} | {tb['params']:.1f} | {tb['grads']:.1f} | {tb['optimizer']:.1f} | "
                  f"{m['inference_peak_mib']:.1f} | {m['training_peak_mib']:.1f} |", flush=True)

    if "sparse" in sections:
        (hidden, epochs), sparsity = ((64, 64), 2) if q else ((1000, 1000, 1000), 10), 0.97
        print(f"\n## sparse: MLP {'x'.join(map(str, hidden))}, {epochs} epochs, sparsity {sparsity} (ERK), "
              f"update every 100 steps, drop 0.3 cosine, until 75%\n")
        rows, probe = [], data.x_val[:300]
        for rule in ("backprop", "static", "set", "rigl"):
            cfg = RuleConfig(hidden=hidden, seed=args.seed, sparsity=sparsity)
            rec, model = fit(rule, data, cfg, epochs, 100, log=log)
            f = rec["final"]
            rate = batch1_rate(model.logits, probe)
            csr = ""
            if rule != "backprop":
                dens = rec["rule"]["weight_nonzeros"] / rec["rule"]["weight_entries"]
                sparse_fn = model.csr_forward()
                assert torch.allclose(sparse_fn(probe), model.logits(probe), atol=1e-4)
                csr = f"{batch1_rate(sparse_fn, probe):.0f}"
            else:
                dens = 1.0
            moved = rec["rule"].get("moved_fraction")
            rows.append(f"| {rule if rule != 'backprop' else 'dense'} | {dens:.4f} | "
                        f"{'—' if moved is None else f'{moved:.3f}'} | {pct(f['error'])} | "
                        f"{rate:.0f} | {csr or '—'} | {f['seconds']:.0f} |")
        print("| arm | weight density | share of weights moved | val error % | batch-1 samples/s (dense) | "
              "batch-1 samples/s (CSR) | train wall s |")
        print("|:--|--:|--:|--:|--:|--:|--:|")
        print("\n".join(rows))

    if "csr" in sections:
        hidden = (64, 64) if q else (1000, 1000, 1000)
        print(f"\n## csr: batch-1 inference of the MLP {'x'.join(map(str, hidden))} at several sparsities "
              f"(ERK masks at initialisation, no training: speed depends on the nonzeros, not on their values)\n")
        print("| sparsity | weight density | dense masked samples/s | CSR samples/s | CSR / dense |\n|--:|--:|--:|--:|--:|")
        probe = data.x_val[:300]
        for sparsity in (0.0, 0.5, 0.9, 0.95, 0.97, 0.99):
            rule = make_rule("static", RuleConfig(hidden=hidden, seed=args.seed, sparsity=sparsity), data)
            sparse_fn = rule.csr_forward()
            assert torch.allclose(sparse_fn(probe), rule.logits(probe), atol=1e-4)
            dense_rate, csr_rate = batch1_rate(rule.logits, probe), batch1_rate(sparse_fn, probe)
            dens = sum(int(m.sum()) for m in rule.masks) / sum(m.numel() for m in rule.masks)
            print(f"| {sparsity:.2f} | {dens:.4f} | {dense_rate:.0f} | {csr_rate:.0f} | {csr_rate / dense_rate:.2f} |",
                  flush=True)

    if "capsules" in sections:
        epochs = 1 if q else 2
        print(f"\n## capsules: slim CapsNet vs CNN of equal classifier parameters, {epochs} epochs, Adam 1e-3\n")
        rows = []
        for arch, routing in (("capsnet", 1), ("capsnet", 3), ("cnn", 1)):
            rec, _ = fit_capsules(arch, data, epochs, routing=routing, seed=args.seed, log=log, affine=True)
            name = f"capsnet, routing {routing}" if arch == "capsnet" else "cnn"
            rows.append(f"| {name} | {rec['params']:,} | {pct(rec['final']['error'])} | "
                        f"{pct(rec['final']['affine_error'])} | {rec['final']['seconds']:.0f} |")
        print("| arm | classifier params | val error % | affine val error % | wall s |\n|:--|--:|--:|--:|--:|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
