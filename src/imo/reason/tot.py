"""Tree of Thoughts (Yao et al. 2023) for the byte policy: a thought is one step line, *propose*
samples distinct next thoughts from the policy, *evaluate* scores each new state with a verifier
(by default the policy judging its own step, `selfeval`, the paper's value prompt reduced).

  tot       breadth-first (imo.reason.search.tot): at every depth the `breadth` best states
  tot-dfs   depth-first: expand the best-valued child first, prune children valued below
            `threshold`, backtrack when a subtree is exhausted, stop at the first finished
            solution valued at or above `threshold` (the paper's DFS on crosswords)

Both spend the same TokenBudget as every other method (policy tokens generated plus verifier
tokens read), reserving the worst case before each expansion. This module registers `tot-dfs`
in imo.reason.methods.SEARCHES on import (imo.reason.thinking imports it).

    r = tot_dfs(policy, problem, verifier, TokenBudget(768), proposals=5)
"""

import math
from typing import Any

from imo.reason.core import Candidate, Result, TokenBudget, finished
from imo.reason.methods import SEARCHES
from imo.reason.search import (
    best_of,
    extend,
    remaining_cost,
    require,
    result,
    rollout,
    score,
    step_cost,
)
from imo.tasks import Problem


def _value(c: Candidate) -> float:
    return c.score if not math.isnan(c.score) else -math.inf


def propose(policy, problem: Problem, state: Candidate, k: int, budget: TokenBudget,
            temperature: float) -> list[Candidate]:
    """Up to k distinct next thoughts from one state (k samples, repeats dropped)."""
    kids = extend(policy, problem, [Candidate(state.text, state.logprob, state.tokens, scored=state.scored)
                                    for _ in range(k)], budget, temperature)
    uniq: dict[str, Candidate] = {}
    for c in kids:
        uniq.setdefault(c.text, c)
    return list(uniq.values())


def tot_dfs(policy, problem: Problem, verifier, budget: TokenBudget, proposals: int = 5, threshold: float = 0.5,
            temperature: float = 1.0, **_: Any) -> Result:
    """Depth-first Tree of Thoughts. The answer: the first finished solution valued at or above
    `threshold`; when the budget ends first, the best-valued finished solution seen, else the
    best-valued open state finished greedily (when the budget still pays for that)."""
    vf = 2 if verifier.reads_tokens else 1
    require(budget, (policy.task.max_steps(policy.difficulty) + 1) * step_cost(policy) * vf,
            "one tree-of-thoughts path")
    proposals = max(1, min(proposals, budget.limit // (step_cost(policy) * vf)))
    stack, done, seen_open, expansions = [Candidate()], [], [], 0
    while stack:
        state = stack.pop()
        if budget.left < proposals * step_cost(policy) * vf:
            break
        kids = propose(policy, problem, state, proposals, budget, temperature)
        score(verifier, problem, kids, budget)  # evaluate
        expansions += 1
        ends = [k for k in kids if finished(policy, k)]
        done += ends
        good = [k for k in ends if k.complete and _value(k) >= threshold]
        if good:
            best = max(good, key=lambda c: (_value(c), c.logprob))
            return result(policy, problem, best, budget, expansions, expansions=expansions, accepted=True)
        keep = [k for k in kids if not finished(policy, k) and _value(k) >= threshold]
        seen_open += [k for k in kids if not finished(policy, k)]
        stack += sorted(keep, key=lambda c: (_value(c), c.logprob))  # the best on top
    best = best_of([c for c in done if c.complete]) if any(c.complete for c in done) else None
    if best is None:
        top = max(seen_open, key=lambda c: (_value(c), c.logprob), default=Candidate())
        if budget.left >= remaining_cost(policy, top):
            top = rollout(policy, problem, [top], budget, 0.0)[0]
        best = top
    return result(policy, problem, best, budget, expansions, expansions=expansions, accepted=False)


SEARCHES.register("tot-dfs")(tot_dfs)
