"""Sparse-autoencoder targets of issue 17 (named sae.py, not inspect.py: a script named inspect.py
in benchmarks/ shadows the standard library's inspect for every script run from this folder).

1. default: `imo inspect sae RUN --hook blocks.2.hook_resid_post` at its defaults (TopK, k=16,
   AuxK, 1024 latents), timed end to end as a subprocess (target <= 3 min on the tiny preset);
   FVU, L0, dead and loss recovered from the SAE run it makes.
2. frontier: TopK at k in {4, 8, 16, 32} against ReLU-L1 over a grid of L1 coefficients, all on
   the same cached activations with the same steps, batch and learning rate; ReLU-L1's FVU is
   interpolated (linear in log L0) at each TopK's measured L0, per seed.
3. synthetic: 512 unit-norm features in 256 dimensions, each active with probability 5/512
   (uniform magnitude in [0.5, 1.5]); a TopK SAE with 512 latents; the mean over true features
   of the max cosine to a decoder row (target >= 0.99).

    flock /tmp/imo-heavy.lock python benchmarks/sae.py --lm RUN [--parts default,frontier,synthetic]
        [--seeds 3 --steps 1000 --batch 2048] [--markdown]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from imo import paths
from imo.inspect import sae as S
from imo.inspect.activations import open_activations
from imo.runs.store import RunStore

HOOK = "blocks.2.hook_resid_post"
TOKENS = 200_000  # the CLI's default, so the frontier reuses the cache the default run wrote
KS = (4, 8, 16, 32)
L1S = (2, 4, 8, 16, 32, 64)


def run_default(lm: str) -> dict:
    cmd = [sys.executable, "-m", "imo", "inspect", "sae", lm, "--hook", HOOK, "-q"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(res.stderr[-2000:])
    store = RunStore.open()
    run = store.list(kind="sae")[0]  # the newest
    return {"wall_s": wall, "line": res.stdout.strip(), "sae": run["id"], **(store.get(run["id"])["figures"] or {})}


def interpolate(l0s: np.ndarray, fvus: np.ndarray, at: float) -> float:
    """FVU at L0 `at`, linear in log L0 between the two nearest measured points; NaN outside."""
    order = np.argsort(l0s)
    x, y = np.log(l0s[order]), fvus[order]
    if not x[0] <= np.log(at) <= x[-1]:
        return float("nan")
    return float(np.interp(np.log(at), x, y))


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and its two-sided 95% Student-t interval over seeds (ddof=1), as the claims report it."""
    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def run_frontier(lm: str, seeds: int, steps: int, batch: int, out: Path | None = None) -> list[dict]:
    """Every seed's rows; with `out`, each finished seed is appended there as one JSON line and
    seeds already in it (with the same steps and batch) are not trained again."""
    done: list[dict] = []
    if out is not None and out.exists():
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            if rec["lm"] == lm and rec["steps"] == steps and rec["batch"] == batch and rec["seed"] < seeds:
                done.append(rec)
    have = {r["seed"] for r in done}
    rows = [row for r in sorted(done, key=lambda r: r["seed"]) for row in r["rows"]]
    if len(have) == seeds:
        return rows
    store = RunStore.open()
    rid = store.resolve(lm)
    data = np.asarray(open_activations(paths.store_dir() / "acts" / f"{rid}-{HOOK}-{TOKENS}"))
    n_eval = len(data) // 10
    train, held = data[:-n_eval], data[-n_eval:]
    for seed in range(seeds):
        if seed in have:
            continue
        topk = []
        for k in KS:
            t0 = time.perf_counter()
            sae = S.train_sae(train, S.SAEConfig(arch="topk", k=k, steps=steps, batch=batch, seed=seed))
            topk.append({**S.evaluate(sae, held), "k": k, "s": time.perf_counter() - t0})
        relu = []
        for l1 in L1S:
            t0 = time.perf_counter()
            sae = S.train_sae(train, S.SAEConfig(arch="relu-l1", l1=l1, steps=steps, batch=batch, seed=seed))
            relu.append({**S.evaluate(sae, held), "l1": l1, "s": time.perf_counter() - t0})
        l0s, fvus = np.array([r["l0"] for r in relu]), np.array([r["fvu"] for r in relu])
        for t in topk:
            rows.append({"seed": seed, "k": t["k"], "topk_l0": t["l0"], "topk_fvu": t["fvu"], "topk_dead": t["dead"],
                         "relu_fvu_at_l0": interpolate(l0s, fvus, t["l0"]), "topk_s": t["s"]})
        rows.append({"seed": seed, "relu": relu})
        print(json.dumps(rows[-len(KS) - 1:]), file=sys.stderr, flush=True)
        if out is not None:
            with out.open("a") as f:
                f.write(json.dumps({"lm": lm, "steps": steps, "batch": batch, "seed": seed,
                                    "rows": rows[-len(KS) - 1:]}) + "\n")
    rows.sort(key=lambda r: r["seed"])  # resumed seeds may come after new ones
    return rows


def synthetic(n=200_000, d=256, feats=512, active=5, seed=0, chunk=20_000):
    g = np.random.default_rng(seed)
    F = g.normal(size=(feats, d)).astype(np.float32)
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    x, count = np.empty((n, d), dtype=np.float32), 0
    for i in range(0, n, chunk):  # in chunks: the dense codes of all rows would take 400 MB
        on = g.random((min(chunk, n - i), feats), dtype=np.float32) < active / feats
        x[i:i + len(on)] = (on * g.uniform(0.5, 1.5, size=on.shape).astype(np.float32)) @ F
        count += int(on.sum())
    return x, F, count / n


def run_synthetic(steps: int, batch: int, k: int = 5) -> dict:
    x, F, mean_active = synthetic()
    t0 = time.perf_counter()
    sae = S.train_sae(x[:180_000], S.SAEConfig(arch="topk", latents=512, k=k, steps=steps, batch=batch, lr=1e-3,
                                               dead_after=20_000))
    m = S.evaluate(sae, x[180_000:])
    W = torch.nn.functional.normalize(sae.W_dec.detach(), dim=1).numpy()
    cos = np.abs(F @ W.T).max(1)
    return {**m, "mean_max_cos": float(cos.mean()), "min_max_cos": float(cos.min()),
            "share_above_0.99": float((cos > 0.99).mean()), "mean_active": mean_active,
            "k": k, "steps": steps, "batch": batch, "s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm", help="the language model run (tiny preset trained 5 min on python-docs)")
    ap.add_argument("--parts", default="default,frontier,synthetic")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--synthetic-steps", type=int, default=3000)
    ap.add_argument("--frontier-out", type=Path,
                    help="append each finished frontier seed here (JSON lines); seeds already there are reused")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    if parts & {"default", "frontier"} and not args.lm:
        raise SystemExit("--lm RUN is needed for the default and frontier parts")
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
          f"load {os.getloadavg()[0]:.2f}")
    if "default" in parts:
        r = run_default(args.lm)
        print(f"default SAE run {r['sae']}: {r['wall_s']:.1f} s wall | {r['line']}")
    if "frontier" in parts:
        rows = run_frontier(args.lm, args.seeds, args.steps, args.batch, args.frontier_out)
        print(f"\nfrontier ({args.seeds} seeds, {args.steps} steps, batch {args.batch}, 1024 latents); "
              "mean [95% t interval over seeds]")
        print("| k | TopK L0 | TopK FVU | ReLU-L1 FVU at that L0 | ReLU-L1 / TopK FVU | TopK dead | TopK better in |\n"
              "|--:|--:|--:|--:|--:|--:|--:|")

        def fmt(x: np.ndarray, digits: int = 4) -> str:
            m, lo, hi = t_interval(x)
            return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

        for k in KS:
            rs = [r for r in rows if r.get("k") == k]
            t = np.array([r["topk_fvu"] for r in rs])
            rl = np.array([r["relu_fvu_at_l0"] for r in rs])
            wins = int(np.sum(t < rl))  # NaN (TopK's L0 outside ReLU-L1's measured range) is no win
            dead = np.array([r["topk_dead"] for r in rs]) * 100
            print(f"| {k} | {np.mean([r['topk_l0'] for r in rs]):.2f} | {fmt(t)} | {fmt(rl)} | {fmt(rl / t, 2)} | "
                  f"{fmt(dead, 1)}% | {wins}/{len(rs)} seeds |")
        for r in rows:
            if "relu" in r:
                print(f"ReLU-L1 seed {r['seed']}: " + ", ".join(f"l1={x['l1']:g}: L0 {x['l0']:.1f} FVU {x['fvu']:.4f}"
                                                            for x in r["relu"]))
    if "synthetic" in parts:
        r = run_synthetic(args.synthetic_steps, 4096)
        print(f"\nsynthetic: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})}")


if __name__ == "__main__":
    main()
