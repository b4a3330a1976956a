"""Toy models of superposition at the paper's sizes: the n=20, m=5 sparsity sweep (target < 1 min)
and the n=2, m=1 phase diagram on a 20x20 grid (target < 10 min, agreement with the exact-loss
theory >= 90%). Reports wall and CPU seconds (the machine may be shared), D* per sparsity and the
phase agreement; figures go to --out.

    flock /tmp/imo-heavy.lock python benchmarks/superposition.py --out /tmp/tms [--markdown]
"""

import argparse
import platform
import time
from pathlib import Path

import torch

from imo.inspect import figures, tms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("tms-bench"))
    ap.add_argument("--grid", type=int, default=20)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = tms.TMSConfig()
    w0, c0 = time.perf_counter(), time.process_time()
    res = tms.train_tms(cfg)
    figures.tms_figures(res, args.out)
    sweep = (time.perf_counter() - w0, time.process_time() - c0)
    Dstar = tms.dimensions_per_represented_feature(res.W)
    kept = (tms.feature_norms(res.W) > tms.REPRESENTED).sum(-1)
    pcfg = tms.PhaseConfig(size=args.grid)
    w0, c0 = time.perf_counter(), time.process_time()
    theory, _ = tms.theory_phases(pcfg)
    emp = tms.train_phase_diagram(pcfg)
    figures.phase_figure(emp["phase"], theory, emp["density"], emp["importance"], args.out / "tms_phase.png")
    phase = (time.perf_counter() - w0, time.process_time() - c0)
    agree = (emp["phase"] == theory).float().mean().item()
    cpu = platform.processor() or platform.machine()
    rows = [f"| n=20 m=5 sweep ({len(cfg.sparsities)} S, {cfg.steps} steps) | {sweep[0]:.1f} | {sweep[1]:.1f} | "
            + ", ".join(f"S={s:g}: {d:.3f} ({k})" for s, d, k in zip(cfg.sparsities, Dstar.tolist(), kept.tolist(), strict=True))
            + " |",
            f"| phase {args.grid}x{args.grid}x{pcfg.seeds} seeds, {pcfg.steps} steps | {phase[0]:.1f} | {phase[1]:.1f} | "
            f"agreement with theory {agree:.1%} |"]
    if args.markdown:
        print(f"CPU: {cpu}, torch {torch.__version__}, 1 thread")
        print("| run | wall s | CPU s | result (D* (represented) / agreement) |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
