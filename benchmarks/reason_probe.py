"""Issue 22's bottleneck probe (a pilot, not a target): is it the policy or the verifier that keeps
search on countdown (four numbers) from paying?

Two questions, one larger model (by default 4 x 128 against the targets' 2 x 96), the rest of the
setting as benchmarks/reason_targets.py's:

  policy    the larger policy trained the same steps on the same worked solutions: its greedy
            accuracy and the oracle's bounds at 16x greedy's tokens (best-of-n, and ToT BFS / DFS
            guided by the exact step checker). If a stronger policy raised the bound, the policy
            would be the bottleneck.
  verifier  a larger judge of the *small* policy: a copy of the larger policy fine-tuned on exactly
            the judging rows the small judge learnt from (the small policy's own samples, exact
            labels, balanced; the same problems, steps and learning rate as
            imo.reason.selfeval.train_judge), against that small judge: calibration on the small
            policy's prefixes and ToT / best-of-n with each at 4x and 16x. If the larger judge
            searched much better, the verifier would be the bottleneck.

    flock /tmp/imo-heavy.lock python benchmarks/reason_probe.py --n 60 --markdown
    python benchmarks/reason_probe.py --quick            # a check of the script, not evidence
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from imo.errors import ConfigError
from imo.reason import thinking
from imo.reason.policy import PolicyConfig, load_policy, problems, train_policy
from imo.reason.selfeval import judge_rows, train_judge
from imo.runs.store import RunStore

ROOT = Path(__file__).resolve().parent.parent


def policy_config(a, layers: int, width: int) -> PolicyConfig:
    """benchmarks/reason_targets.py's countdown policy, in another shape."""
    return PolicyConfig(task="countdown", difficulty=2, n_train=3000, n_test=a.n, n_layer=layers, n_embd=width,
                        context_length=160, steps=a.steps)


def larger_judge(store, small: str, big: str, a) -> str:
    """A copy of the larger policy fine-tuned on the rows train_judge(small) learns from."""
    pol = load_policy(store, small, a.seed)
    train, _ = problems(pol.meta["config"])
    probs = random.Random(f"{a.seed}/judge-problems").sample(train, min(a.judge_problems, len(train)))
    rows = judge_rows(pol, probs, 4, a.seed)  # train_judge's rows, drawn the same way
    cfg = load_policy(store, big).meta["config"]
    child = replace(cfg, init_from=big, steps=a.judge_steps, lr=1e-3, warmup=max(1, a.judge_steps // 10),
                    seed=a.seed + 7, revision=0.0)
    return train_policy(child, store, quiet=True, examples=rows, eval_n=min(50, cfg.n_test))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60, help="held-out test problems (default 60)")
    ap.add_argument("--small", default="2x96", help="the targets' policy shape (default 2x96)")
    ap.add_argument("--big", default="4x128", help="the larger shape (default 4x128)")
    ap.add_argument("--steps", type=int, default=2000, help="policy training steps, both shapes (default 2000)")
    ap.add_argument("--judge-problems", type=int, default=500)
    ap.add_argument("--judge-steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a check of the script")
    ap.add_argument("--markdown", action="store_true", help="print the RESULTS.md rows")
    a = ap.parse_args()
    try:
        small_s, big_s = ([int(x) for x in s.split("x")] for s in (a.small, a.big))
        if len(small_s) != 2 or len(big_s) != 2 or min(small_s + big_s) < 1:
            raise ValueError
    except ValueError:
        ap.error("--small and --big must be LAYERSxWIDTH, e.g. 4x128")
    if min(a.n, a.steps, a.judge_problems, a.judge_steps) < 1:
        ap.error("--n, --steps, --judge-problems and --judge-steps must be >= 1")
    if a.json is not None and a.json.exists():
        ap.error(f"{a.json} exists; remove it or name another file")
    mults = [4, 16]
    if a.quick:
        a.n, a.steps, a.judge_problems, a.judge_steps, small_s, big_s, mults = 6, 20, 10, 5, [1, 32], [1, 48], [4]
    torch.set_num_threads(1)
    store = RunStore.open()
    log = lambda m: print(m, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    runs = {}
    for name, (layers, width) in (("small", small_s), ("big", big_s)):
        runs[name] = train_policy(policy_config(a, layers, width), store, quiet=True, eval_n=a.n)
        log(f"{name} policy {layers} x {width}: {runs[name]} ({time.perf_counter() - t0:.0f} s)")
    out: dict = {"runs": runs, "policy": {}, "judge": {}}
    # the policy question: greedy and the oracle's bounds, each policy on its own test set (the same problems)
    for name in ("small", "big"):
        pol = load_policy(store, runs[name], a.seed)
        probs = problems(pol.meta["config"])[1][: a.n]
        rows = thinking.curve(pol, probs, [("best-of-n", "oracle"), ("tot", "oracle"), ("tot-dfs", "oracle")],
                              [16], store, a.seed, log=lambda m, name=name: log(f"{name}: {m}"))
        out["policy"][name] = rows
    # the verifier question: two judges of the small policy, from the same rows
    small_j = train_judge(store, runs["small"], share=False, n_problems=a.judge_problems, steps=a.judge_steps,
                          seed=a.seed)
    big_j = larger_judge(store, runs["small"], runs["big"], a)
    log(f"judges of the small policy: {small_j} (its copy), {big_j} (a copy of the larger policy) "
        f"({time.perf_counter() - t0:.0f} s)")
    pol = load_policy(store, runs["small"], a.seed)
    probs = problems(pol.meta["config"])[1][: a.n]
    for name, run in (("small", small_j), ("big", big_j)):
        spec = f"judge:{run}"
        cal = thinking.reliability(thinking.load(spec, store, pol), pol, probs, samples=4, seed=a.seed)
        rows = thinking.curve(pol, probs, [("best-of-n", spec), ("tot", spec), ("tot-dfs", spec)], mults, store,
                              a.seed, log=lambda m, name=name: log(f"{name} judge: {m}"))
        out["judge"][name] = {"run": run, "calibration": {k: v for k, v in cal.items() if k != "bins"},
                              "rows": rows}
        log(f"{name} judge: right on {cal['accuracy']:.3f} of {cal['n']} prefixes ({cal['positive_share']:.2f} "
            f"right), ECE {cal['ece']:.3f}")
    out["seconds"] = time.perf_counter() - t0
    if a.json is not None:
        a.json.write_text(json.dumps(out, indent=1, default=str))
    if not a.markdown:
        return
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    shape = {"small": "x".join(map(str, small_s)), "big": "x".join(map(str, big_s))}
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, commit {commit}; "
          f"countdown difficulty 2, {a.steps} policy steps, {a.n} held-out problems, {out['seconds']:.0f} s\n")
    print("| policy | greedy | oracle best-of-n 16x | oracle tot 16x | oracle tot-dfs 16x |")
    print("|---|---|---|---|---|")
    for name in ("small", "big"):
        acc = {r["method"]: r["accuracy"] for r in out["policy"][name]}
        print(f"| {shape[name]} | {acc['greedy']:.3f} | {acc.get('best-of-n', float('nan')):.3f} | "
              f"{acc.get('tot', float('nan')):.3f} | {acc.get('tot-dfs', float('nan')):.3f} |")
    print(f"\n| judge of the {shape['small']} policy | prefixes right at 0.5 | ECE | Brier | "
          + " | ".join(f"{m} {x}x" for m in ("best-of-n", "tot", "tot-dfs") for x in mults) + " |")
    print("|---|---|---|---|" + "---|" * (3 * len(mults)))
    for name in ("small", "big"):
        j = out["judge"][name]
        c = j["calibration"]
        acc = {(r["method"], r["multiple"]): r["accuracy"] for r in j["rows"]}
        cells = " | ".join(f"{acc[(m, x)]:.3f}" if (m, x) in acc else "-" for m in ("best-of-n", "tot", "tot-dfs")
                           for x in mults)
        print(f"| {shape[name]} ({'copy of the policy' if name == 'small' else 'copy of the larger policy'}) | "
              f"{c['accuracy']:.3f} | {c['ece']:.3f} | {c['brier']:.3f} | {cells} |")


if __name__ == "__main__":
    try:
        main()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
