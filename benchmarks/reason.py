"""`imo reason solve` through the engine vs the previous sampler (issue 12): the same policy, the
same problems, the same token budget, timed in one run.

The previous sampler (GPTPolicy(sampler="full")) re-runs the whole prefix for every token; the
engine sampler prefills each row once into a KV cache, keeps the problem prompt and every line
written before in a prefix tree (a search's next step computes only the new line) and prefills
identical rows once. Greedy must give the same solutions either way (checked, problem by problem);
sampled methods draw from the same distribution with a different stream of random numbers, so
their accuracies agree within noise, not exactly.

The policy is the claims' setting (arith difficulty 2, 2 x 64), trained once per store
(train_policy reuses a finished run of the same config), and optionally a wider one (--wide,
4 x 128), where a pass costs more and the cache saves more. Rounds alternate between the two
samplers and each reports its median. One torch thread. The machine is shared: ratios are taken
within the run.

    flock /tmp/imo-heavy.lock python benchmarks/reason.py             # 30 problems, 8x budget
    python benchmarks/reason.py --quick                              # a check, not evidence
    python benchmarks/reason.py --markdown                           # also the RESULTS.md rows
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from imo.reason.methods import get_method
from imo.reason.policy import GPTPolicy, PolicyConfig, load_policy, problems, train_policy
from imo.reason.search import solution_cost
from imo.reason.verifiers import load_verifier
from imo.runs.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
METHODS = [("greedy", "self"), ("best-of-n", "vote"), ("beam", "self"), ("mcts", "self"), ("tot", "self")]


def solve_all(policy, probs, method: str, verifier, limit: int, seed: int):
    """`imo reason solve RUN --method M --n N`'s loop, keeping each solution's text."""
    from imo.reason.core import TokenBudget

    fn = get_method(method)
    texts, right, tokens = [], 0, 0
    for i, p in enumerate(probs):
        policy.reseed(seed * 1_000_003 + i)
        b = TokenBudget(limit)
        r = fn(policy, p, verifier, b)
        texts.append(r.text)
        right += r.correct
        tokens += b.spent
    return texts, right / len(probs), tokens / len(probs)


def measure(run_id: str, store: RunStore, n: int, multiple: int, rounds: int, seed: int = 0) -> list[dict]:
    base = load_policy(store, run_id, seed)
    probs = problems(base.meta["config"])[1][:n]
    pols = {s: GPTPolicy(base.model, base.task, base.difficulty, seed, base.meta, sampler=s)
            for s in ("full", "engine")}
    limit = multiple * solution_cost(base)
    rows = []
    for method, vspec in METHODS:
        times: dict[str, list[float]] = {"full": [], "engine": []}
        outs: dict[str, tuple] = {}
        for _ in range(rounds):
            for s in ("full", "engine"):
                pol = pols[s]
                ver = load_verifier(vspec, store, pol)
                t0 = time.perf_counter()
                outs[s] = solve_all(pol, probs, method, ver, limit if method != "greedy" else solution_cost(base),
                                    seed)
                times[s].append(time.perf_counter() - t0)
        same = outs["full"][0] == outs["engine"][0]
        if method == "greedy" and not same:
            raise SystemExit("greedy solutions differ between the samplers: the engine sampler is wrong")
        tf, te = statistics.median(times["full"]), statistics.median(times["engine"])
        rows.append({"method": method, "verifier": vspec, "n": len(probs),
                     "budget": limit if method != "greedy" else solution_cost(base),
                     "full_s": tf, "engine_s": te, "speedup": tf / te, "same_text": same,
                     "acc_full": outs["full"][1], "acc_engine": outs["engine"][1],
                     "tokens_full": outs["full"][2], "tokens_engine": outs["engine"][2]})
        r = rows[-1]
        print(f"{method:10s} {vspec:5s} full {tf:7.2f}s  engine {te:7.2f}s  x{r['speedup']:.2f}  "
              f"acc {r['acc_full']:.3f} / {r['acc_engine']:.3f}  tokens {r['tokens_full']:.0f} / "
              f"{r['tokens_engine']:.0f}  same text: {same}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30, help="test problems (default 30)")
    ap.add_argument("--multiple", type=int, default=8, help="search budget in greedy solutions (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per sampler (default 3)")
    ap.add_argument("--wide", action="store_true", help="also a 4 x 128 policy")
    ap.add_argument("--quick", action="store_true", help="5 problems, 1 round, a short-trained policy")
    ap.add_argument("--markdown", action="store_true", help="print the RESULTS.md rows")
    args = ap.parse_args()
    torch.set_num_threads(1)
    store = RunStore.open()
    n, rounds = (5, 1) if args.quick else (args.n, args.rounds)
    shapes = [(2, 64)] + ([(4, 128)] if args.wide else [])
    table = []
    for layers, width in shapes:
        cfg = PolicyConfig(task="arith", difficulty=2, n_layer=layers, n_embd=width, steps=100 if args.quick else 1000)
        run_id = train_policy(cfg, store, quiet=True)
        print(f"policy {run_id}: arith difficulty 2, {layers} x {width}, {cfg.steps} steps", flush=True)
        for r in measure(run_id, store, n, args.multiple, rounds):
            table.append({"shape": f"{layers}x{width}", **r})
    if args.markdown:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
              f"commit {commit}, shared machine\n")
        print("| policy | method | verifier | budget | previous s | engine s | speed-up | greedy same | "
              "accuracy prev / engine |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in table:
            print(f"| {r['shape']} | {r['method']} | {r['verifier']} | {r['budget']} | {r['full_s']:.2f} | "
                  f"{r['engine_s']:.2f} | {r['speedup']:.2f}x | {'yes' if r['same_text'] else '-'} | "
                  f"{r['acc_full']:.3f} / {r['acc_engine']:.3f} |")


if __name__ == "__main__":
    main()
