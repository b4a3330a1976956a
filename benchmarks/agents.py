"""Single-task DQN recipes against CleanRL's published classic-control scores (issue 21).

Each env trains its default recipe (`imo agent envs`; the same as `imo agent train --env E`) on
seeds 1, 2, 3. The greedy policy then plays 20 evaluation episodes on seeds 10000-10019. CleanRL's
figures (docs/rl-algorithms/dqn.md, 3 seeds): CartPole-v1 488.69 +- 16.11, Acrobot-v1
-91.54 +- 7.20, MountainCar-v0 -194.95 +- 8.48. For MountainCar the target is the goal rate
(>= 90% of evaluation episodes), because a return alone does not tell solving from not.

    flock /tmp/imo-heavy.lock python benchmarks/agents.py [--envs CartPole-v1] [--seeds 1,2,3]
        [--json out.json] [--figures docs/figures]
"""

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from imo.agents import dqn, envs, render, runs
from imo.agents.dqn import DQNConfig

CLEANRL = {"CartPole-v1": (488.69, 16.11), "Acrobot-v1": (-91.54, 7.20),
           "MountainCar-v0": (-194.95, 8.48)}
EVAL_SEEDS = range(10_000, 10_020)


def run_env(name: str, seeds: list[int], figures: Path | None) -> dict:
    spec = envs.spec(name)
    per_seed = []
    for seed in seeds:
        cfg = DQNConfig(**{**spec.recipe, "seed": seed})
        load = os.getloadavg()[0]
        result = dqn.train(envs.make(name), cfg, goal_on_terminate=spec.goal_on_terminate)
        eps = dqn.evaluate(result.q, envs.make(name), EVAL_SEEDS, spec.goal_on_terminate)
        row = {"seed": seed, "seconds": round(result.seconds, 1),
               "steps_per_s": round(result.steps_per_s), "load": round(load, 2),
               "mean_return": float(np.mean([e["return"] for e in eps])),
               "goal_rate": float(np.mean([e["goal"] for e in eps])),
               "selected": result.selected}
        per_seed.append(row)
        print(f"{name} seed {seed}: mean return {row['mean_return']:.2f}, goal rate "
              f"{100 * row['goal_rate']:.0f}%, {row['seconds']} s, {row['steps_per_s']} steps/s, "
              f"load {load:.2f}, selected {result.selected}", flush=True)
        if figures is not None and seed == seeds[0]:
            short = name.split("-")[0].lower()
            runs.plot_curve(result, [name], figures / f"agents_{short}_curve.png")
            try:
                render.episode_strip(result.q, name, EVAL_SEEDS[0], 8,
                                     figures / f"agents_{short}_strip.png")
            except Exception as e:  # noqa: BLE001 - the strip is optional (needs pygame)
                print(f"no strip for {name}: {e}")
    means = [r["mean_return"] for r in per_seed]
    ref, band = CLEANRL[name]
    return {"env": name, "recipe": {**DQNConfig(**spec.recipe).to_dict(), "seed": None},
            "seeds": per_seed, "mean_return": float(np.mean(means)),
            "std_return": float(np.std(means)), "goal_rate": float(np.mean([r["goal_rate"] for r in per_seed])),
            "cleanrl": [ref, band], "within_band": bool(abs(np.mean(means) - ref) <= band),
            "max_seconds": max(r["seconds"] for r in per_seed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--envs", default="CartPole-v1,Acrobot-v1,MountainCar-v0")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--figures", type=Path, help="write seed 1's curve and episode strip here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, 1 thread, commit {commit}, {time.strftime('%Y-%m-%d %H:%M')}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = [run_env(n, seeds, args.figures) for n in args.envs.split(",")]
    print("\n| env | recipe | steps | CleanRL (3 seeds) | imo greedy eval, mean over seeds | per seed | "
          "goal rate | within CleanRL's ± | slowest run | steps/s | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = ", ".join(f"{s['mean_return']:.1f}" for s in r["seeds"])
        sps = "-".join(str(v) for v in sorted({min(s["steps_per_s"] for s in r["seeds"]),
                                              max(s["steps_per_s"] for s in r["seeds"])}))
        loads = "-".join(f"{v:.1f}" for v in sorted({min(s["load"] for s in r["seeds"]),
                                                    max(s["load"] for s in r["seeds"])}))
        ref, band = r["cleanrl"]
        goal = f"{100 * r['goal_rate']:.0f}%" if envs.spec(r["env"]).goal_on_terminate else "-"
        print(f"| {r['env']} | {envs.spec(r['env']).recipe_name} | {r['recipe']['steps']:,} | "
              f"{ref} ± {band} | {r['mean_return']:.2f} ± {r['std_return']:.2f} | {per} | {goal} | "
              f"{'yes' if r['within_band'] else 'no'} | {r['max_seconds']} s | {sps} | {loads} |")
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
