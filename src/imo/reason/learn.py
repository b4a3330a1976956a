"""Learning from search: expert iteration (Anthony et al. 2017; STaR, Zelikman et al. 2022).

Each round searches for solutions to training problems the policy was never shown a worked
solution for, keeps only the solutions the oracle accepts, and fine-tunes the policy on them; the
next round searches with the improved policy. Greedy accuracy on the (unchanged) test set is
measured after every round. The search is best-of-n by default ("training more likely beam
search": any method works; the oracle is the filter either way).

    rounds = expert_iteration(store, policy_run, rounds=2)   # [{"round": 0, "greedy_test_acc": ...}, ...]
"""

import math
import time
from dataclasses import replace
from typing import Any

from imo.errors import ConfigError
from imo.reason.core import TokenBudget
from imo.reason.methods import get_method
from imo.reason.policy import greedy_accuracy, load_policy, problems, train_policy
from imo.reason.search import solution_cost
from imo.reason.verifiers import load_verifier
from imo.runs.store import RunStore
from imo.tasks import Problem, split


def warmup(steps: int) -> int:
    """A tenth of a fine-tuning run warms up (a fixed count would be all of a short run)."""
    return max(1, steps // 10)


def collect(policy, probs: list[Problem], method: str, verifier, budget: int, seed: int
            ) -> list[tuple[str, str]]:
    """(prompt, solution) for every problem whose search result the oracle accepts."""
    fn = get_method(method)
    kept = []
    for i, p in enumerate(probs):
        policy.reseed(seed * 1_000_003 + i)
        r = fn(policy, p, verifier, TokenBudget(budget))
        if policy.task.solution_ok(p, r.text):  # the oracle is the only judge of what is kept
            kept.append((p.prompt, r.text))
    return kept


def fresh_problems(cfg, n: int) -> list[Problem]:
    """Training-distribution problems past the policy's own training set (never in the test set,
    never given with a worked solution)."""
    from imo.reason.policy import step_task

    train, _ = split(step_task(cfg.task), cfg.difficulty, cfg.n_train + n, cfg.n_test, cfg.data_seed)
    return train[cfg.n_train:]


def expert_iteration(store: RunStore, run: str, rounds: int = 2, n_problems: int = 500,
                     method: str = "best-of-n", verifier: str = "oracle", budget_x: int = 8,
                     epochs: float = 2.0, lr: float = 3e-4, seed: int = 0, eval_n: int | None = None,
                     quiet: bool = True, log=lambda msg: None, code_fingerprint: str | None = None) -> list[dict[str, Any]]:
    """Rounds of search + fine-tuning; each round fine-tunes the current policy for `epochs`
    passes over the solutions it kept (a few, at a low rate: many passes over a few hundred of its
    own solutions memorise them and cost accuracy)."""
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    if not epochs > 0:
        raise ConfigError(f"epochs must be > 0, got {epochs}")
    if budget_x < 1:
        raise ConfigError(f"budget must be >= 1 times one greedy solution, got {budget_x}")
    policy = load_policy(store, run, seed)
    cfg = policy.meta["config"]
    pool = fresh_problems(cfg, n_problems)
    _, test = problems(cfg)
    test = test[:eval_n] if eval_n is not None else test
    out = [{"round": 0, "run": policy.meta["run"], "kept": None, "greedy_test_acc": greedy_accuracy(policy, test)}]
    current = policy.meta["run"]
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        policy = load_policy(store, current, seed + r)
        ver = load_verifier(verifier, store, policy)
        limit = budget_x * solution_cost(policy)
        log(f"round {r}: {method} with {verifier} on {len(pool)} problems at {limit} tokens each")
        kept = collect(policy, pool, method, ver, limit, seed + r)
        log(f"round {r}: kept {len(kept)} oracle-accepted solutions; fine-tuning")
        if not kept:  # nothing to learn from: the policy stays as it is this round
            out.append({**out[-1], "round": r, "kept": 0, "pool": len(pool), "steps": 0,
                        "seconds": time.perf_counter() - t0})
            continue
        steps = max(1, math.ceil(epochs * len(kept) / cfg.batch_size))
        child = replace(cfg, init_from=current, steps=steps, lr=lr, warmup=warmup(steps), seed=seed + r,
                        revision=0.0)
        current = train_policy(child, store, quiet=quiet, examples=kept, eval_n=eval_n,
                               code_fingerprint=code_fingerprint)
        out.append({"round": r, "run": current, "kept": len(kept), "pool": len(pool), "steps": steps,
                    "greedy_test_acc": greedy_accuracy(load_policy(store, current), test),
                    "seconds": time.perf_counter() - t0})
    return out


def control(store: RunStore, run: str, steps: int, lr: float = 3e-4, seed: int = 0,
            eval_n: int | None = None, quiet: bool = True,
            code_fingerprint: str | None = None) -> tuple[str, float]:
    """The same number of fine-tuning steps on the policy's own worked solutions instead of
    search-found ones: what more training alone would have done."""
    policy = load_policy(store, run, seed)
    cfg = policy.meta["config"]
    _, test = problems(cfg)
    test = test[:eval_n] if eval_n is not None else test
    child = replace(cfg, init_from=policy.meta["run"], steps=max(1, steps), lr=lr, warmup=warmup(steps),
                    seed=seed + 100, revision=0.0)
    run_id = train_policy(child, store, quiet=quiet, eval_n=eval_n, code_fingerprint=code_fingerprint)
    return run_id, greedy_accuracy(load_policy(store, run_id), test)
