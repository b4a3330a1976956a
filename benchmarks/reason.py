"""`imo reason solve` through the engine vs the previous sampler (issue 12): the same policy, the
same problems, the same token budget, timed in one run.

The previous sampler (GPTPolicy(sampler="full")) re-runs the whole prefix for every token; the
engine sampler prefills each row once into a KV cache, keeps the problem prompt and every line
written before in a prefix tree (a search's next step computes only the new line) and prefills
identical rows once. Greedy must give the same solutions either way (checked, problem by problem);
sampled methods draw from the same distribution with a different stream of random numbers, so
their accuracies agree within noise, not exactly.

The policy is by default the claims' setting (arith difficulty 2, 2 x 64), trained once per
store (train_policy reuses a finished run of the same config); --task/--difficulty/--shape/--steps/
--context/--n-test pick another (issue 22's countdown policy: --task countdown --shape 2x96
--steps 2000 --context 160 --n-test 60, the one benchmarks/reason_targets.py --n 60 trains), and
--wide adds a 4 x 128 one, where a pass costs more and the cache saves more. Rounds alternate
between the two samplers and each reports its median, and tokens/s: the bytes the policy wrote
(verifier reading not counted) over those seconds. One torch thread. The machine is shared:
ratios are taken within the run.

    flock /tmp/imo-heavy.lock python benchmarks/reason.py             # 30 problems, 8x budget
    flock /tmp/imo-heavy.lock python benchmarks/reason.py --task countdown --shape 2x96,4x128 \
        --steps 2000 --context 160 --n-test 60 --markdown
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

from imo.errors import ConfigError
from imo.reason.methods import get_method
from imo.reason.policy import GPTPolicy, PolicyConfig, load_policy, problems, train_policy
from imo.reason.search import solution_cost
from imo.reason.verifiers import load_verifier
from imo.runs.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
METHODS = [("greedy", "self"), ("best-of-n", "vote"), ("beam", "self"), ("mcts", "self"), ("tot", "self")]


class Counting:
    """The policy with a count of the bytes (tokens) its step() wrote: what tokens/s divides."""

    def __init__(self, policy):
        self.policy, self.written = policy, 0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def step(self, items, temperature):
        out = self.policy.step(items, temperature)
        self.written += sum(len(t) for t, _ in out)
        return out


def solve_all(policy, probs, method: str, verifier, limit: int, seed: int):
    """`imo reason solve RUN --method M --n N`'s loop, keeping each solution's text; also the
    tokens the policy wrote in all."""
    from imo.reason.core import TokenBudget

    fn = get_method(method)
    pol = Counting(policy)
    texts, right, tokens = [], 0, 0
    for i, p in enumerate(probs):
        policy.reseed(seed * 1_000_003 + i)
        b = TokenBudget(limit)
        r = fn(pol, p, verifier, b)
        texts.append(r.text)
        right += r.correct
        tokens += b.spent
    return texts, right / len(probs), tokens / len(probs), pol.written


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
        written = outs["engine"][3]
        rows.append({"method": method, "verifier": vspec, "n": len(probs),
                     "budget": limit if method != "greedy" else solution_cost(base),
                     "full_s": tf, "engine_s": te, "speedup": tf / te, "same_text": same,
                     "written_full": outs["full"][3], "written_engine": written,
                     "tps_full": outs["full"][3] / tf, "tps_engine": written / te,
                     "acc_full": outs["full"][1], "acc_engine": outs["engine"][1],
                     "tokens_full": outs["full"][2], "tokens_engine": outs["engine"][2]})
        r = rows[-1]
        print(f"{method:10s} {vspec:5s} full {tf:7.2f}s ({r['tps_full']:.0f} tok/s)  engine {te:7.2f}s "
              f"({r['tps_engine']:.0f} tok/s)  x{r['speedup']:.2f}  "
              f"acc {r['acc_full']:.3f} / {r['acc_engine']:.3f}  tokens {r['tokens_full']:.0f} / "
              f"{r['tokens_engine']:.0f}  same text: {same}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30, help="test problems (default 30)")
    ap.add_argument("--multiple", type=int, default=8, help="search budget in greedy solutions (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per sampler (default 3)")
    ap.add_argument("--task", default="arith", help="step task of the policy (default arith)")
    ap.add_argument("--difficulty", type=int, default=2, help="its difficulty (default 2)")
    ap.add_argument("--shape", default="2x64", help="LAYERSxWIDTH policies, comma-separated (default 2x64)")
    ap.add_argument("--steps", type=int, default=1000, help="policy training steps (default 1000)")
    ap.add_argument("--context", type=int, default=128, help="policy context in bytes (default 128)")
    ap.add_argument("--n-test", type=int, default=200, help="the policy's test set size (part of its config)")
    ap.add_argument("--wide", action="store_true", help="also a 4 x 128 policy")
    ap.add_argument("--quick", action="store_true", help="5 problems, 1 round, a short-trained policy")
    ap.add_argument("--markdown", action="store_true", help="print the RESULTS.md rows")
    args = ap.parse_args()
    try:
        shapes = [tuple(int(x) for x in s.split("x")) for s in args.shape.split(",")]
        if any(len(t) != 2 or min(t) < 1 for t in shapes):
            raise ValueError
    except ValueError:
        ap.error(f"--shape must be LAYERSxWIDTH[,LAYERSxWIDTH...], e.g. 2x64, got {args.shape!r}")
    if args.n < 1 or args.rounds < 1 or args.multiple < 1:
        ap.error("--n, --rounds and --multiple must be >= 1")
    shapes += [(4, 128)] if args.wide else []
    try:  # every policy's config is checked before any work
        cfgs = [PolicyConfig(task=args.task, difficulty=args.difficulty, n_layer=layers, n_embd=width,
                             context_length=args.context, n_test=args.n_test, steps=100 if args.quick else args.steps)
                for layers, width in shapes]
    except ConfigError as e:
        ap.error(str(e))
    torch.set_num_threads(1)
    store = RunStore.open()
    n, rounds = (5, 1) if args.quick else (args.n, args.rounds)
    table = []
    for (layers, width), cfg in zip(shapes, cfgs, strict=True):
        run_id = train_policy(cfg, store, quiet=True)
        print(f"policy {run_id}: {args.task} difficulty {args.difficulty}, {layers} x {width}, {cfg.steps} steps",
              flush=True)
        for r in measure(run_id, store, n, args.multiple, rounds):
            table.append({"shape": f"{layers}x{width}", **r})
    if args.markdown:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
              f"commit {commit}, shared machine\n")
        print("| policy | method | verifier | budget | tokens written | previous s | engine s | previous tok/s | "
              "engine tok/s | speed-up | same solutions | accuracy prev / engine |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in table:
            print(f"| {r['shape']} | {r['method']} | {r['verifier']} | {r['budget']} | {r['written_engine']} | "
                  f"{r['full_s']:.2f} | {r['engine_s']:.2f} | {r['tps_full']:.0f} | {r['tps_engine']:.0f} | "
                  f"{r['speedup']:.2f}x | {'yes' if r['same_text'] else '-'} | "
                  f"{r['acc_full']:.3f} / {r['acc_engine']:.3f} |")
        tot_f = sum(r["written_full"] for r in table) / sum(r["full_s"] for r in table)
        tot_e = sum(r["written_engine"] for r in table) / sum(r["engine_s"] for r in table)
        print(f"\nall methods together: previous {tot_f:.0f} tok/s, engine {tot_e:.0f} tok/s, "
              f"x{tot_e / tot_f:.2f}")


if __name__ == "__main__":
    main()
