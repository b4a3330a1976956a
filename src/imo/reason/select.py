"""Compute-optimal selection (Snell et al. 2024): choose the search method per problem from an
estimate of its difficulty, fitted on a selection split and scored on fresh problems.

The estimate is the verifier's probability that the greedy solution is right (Snell et al. bin
questions by the verifier's predicted difficulty; here one greedy solution and its reading, which
are paid for out of every problem's tokens). The selection split's estimates are cut into `bins`
quantile bins; in each bin the arm (greedy, or a method at a multiple of greedy's budget) with the
best accuracy there is chosen, the cheaper on ties. On fresh problems each problem is binned by
its own estimate and solved by its bin's arm (greedy's answer is kept when greedy was chosen).
Beside it: the one arm best over the whole selection split, scored on the same fresh problems.

    policy_ = fit(policy, selection, verifier, arms=[("best-of-n", 4), ("tot-dfs", 16)])
    score(policy, fresh, verifier, policy_)   # {"accuracy": ..., "tokens": ...}
"""

import bisect
from typing import Any

from imo.reason.core import Candidate, TokenBudget
from imo.reason.methods import get_method
from imo.reason.search import solution_cost
from imo.tasks import Problem


def estimate(policy, problem: Problem, verifier, i: int, seed: int) -> tuple[float, Any, int]:
    """(the verifier's probability that greedy is right, greedy's result, tokens spent)."""
    policy.reseed(seed * 1_000_003 + i)
    b = TokenBudget(2 * solution_cost(policy))
    r = get_method("greedy")(policy, problem, verifier, b)
    c = Candidate(r.text)
    s = verifier.score(problem, [c])[0]
    spent = b.spent + (len(r.text.encode()) if verifier.reads_tokens else 0)
    return float(s), r, spent


def outcomes(policy, probs: list[Problem], method: str, verifier, multiple: int, seed: int,
             temperature: float) -> list[tuple[bool, int]]:
    """(correct, tokens) per problem for one arm, seeded per problem as run_many is."""
    fn, one, out = get_method(method), solution_cost(policy), []
    for i, p in enumerate(probs):
        policy.reseed(seed * 1_000_003 + i)
        b = TokenBudget(multiple * one)
        r = fn(policy, p, verifier, b, temperature=temperature)
        out.append((r.correct, b.spent))
    return out


def _pick(results: dict[str, list[tuple[bool, int]]], idx: list[int]) -> str:
    """The arm with the most problems right among idx, the fewest tokens on ties."""
    return max(results, key=lambda a: (sum(results[a][i][0] for i in idx), -sum(results[a][i][1] for i in idx)))


def fit(policy, probs: list[Problem], verifier, arms: list[tuple[str, int]], bins: int = 3, seed: int = 0,
        temperature: float = 1.0) -> dict[str, Any]:
    """The per-bin choice of arm on the selection split (and the single best arm beside it)."""
    est = [estimate(policy, p, verifier, i, seed) for i, p in enumerate(probs)]
    scores = sorted(s for s, _, _ in est)
    edges = [scores[min(len(scores) - 1, len(scores) * k // bins)] for k in range(1, bins)]
    results: dict[str, list[tuple[bool, int]]] = {"greedy@1": [(r.correct, t) for _, r, t in est]}
    for method, x in arms:
        extra = outcomes(policy, probs, method, verifier, x, seed, temperature)
        results[f"{method}@{x}"] = [(ok, t + e[2]) for (ok, t), e in zip(extra, est, strict=True)]
    which = [bisect.bisect_right(edges, s) for s, _, _ in est]
    choice = [_pick(results, [i for i, w in enumerate(which) if w == b] or list(range(len(probs))))
              for b in range(bins)]
    single = _pick(results, list(range(len(probs))))
    n = max(1, len(probs))
    fitted = sum(results[choice[w]][i][0] for i, w in enumerate(which)) / n
    return {"edges": edges, "choice": choice, "single": single, "selection_accuracy": fitted,
            "selection_by_arm": {a: sum(ok for ok, _ in v) / n for a, v in results.items()},
            "bin_counts": [which.count(b) for b in range(bins)]}


def score(policy, probs: list[Problem], verifier, fitted: dict[str, Any], seed: int = 0,
          temperature: float = 1.0) -> dict[str, Any]:
    """The fitted per-bin choice and the single best arm on fresh problems: accuracy and mean tokens
    (the greedy estimate's tokens counted in both, as both read it)."""
    adaptive, single = [0, 0], [0, 0]
    for i, p in enumerate(probs):
        s, r, spent = estimate(policy, p, verifier, i, seed)
        arm = fitted["choice"][bisect.bisect_right(fitted["edges"], s)]
        for acc, name in ((adaptive, arm), (single, fitted["single"])):
            if name == "greedy@1":
                acc[0] += r.correct
                acc[1] += spent
                continue
            method, x = name.rsplit("@", 1)
            ok, t = outcomes(policy, [p], method, verifier, int(x), seed * 1_000_003 + i, temperature)[0]
            acc[0] += ok
            acc[1] += t + spent
    n = max(1, len(probs))
    return {"accuracy": adaptive[0] / n, "tokens": adaptive[1] / n, "single_accuracy": single[0] / n,
            "single_tokens": single[1] / n, "n": len(probs)}
