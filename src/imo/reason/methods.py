"""The search methods by name, registered explicitly in one Registry, and the loop that runs one
method over many problems (accuracy and the mean tokens spent).

search.py and revision.py define the methods and know nothing of this table, so neither imports
the other for it (the old `search -> revision -> search` cycle).

    fn = get_method("beam"); r = fn(policy, problem, verifier, TokenBudget(512))
    run_many(policy, problems, "best-of-n", verifier, budget=512)["accuracy"]
"""

from typing import Any

from imo.reason import revision, search
from imo.reason.core import NoVerifier, TokenBudget
from imo.registry import Registry
from imo.tasks import Problem

SEARCHES: Registry = Registry("search method")
SEARCHES.register("greedy")(search.greedy)
SEARCHES.register("best-of-n")(search.best_of_n)
SEARCHES.register("beam")(search.beam)
SEARCHES.register("mcts")(search.mcts)
SEARCHES.register("tot")(search.tot)
SEARCHES.register("revision")(revision.revision)


def get_method(name: str):
    """A registered search method; an unknown name lists the choices."""
    return SEARCHES.get(name)


def accuracy(policy, probs: list[Problem], method: str = "greedy", verifier=None, budget: int | None = None,
             seed: int = 0, **knobs: Any) -> float:
    """Share of problems solved (oracle-checked) by a method at a per-problem token budget."""
    return run_many(policy, probs, method, verifier, budget, seed, **knobs)["accuracy"]


def run_many(policy, probs: list[Problem], method: str = "greedy", verifier=None, budget: int | None = None,
             seed: int = 0, **knobs: Any) -> dict[str, Any]:
    """A method over many problems: accuracy and the mean tokens spent (policy, verifier)."""
    fn = get_method(method)
    verifier = verifier or NoVerifier()
    limit = budget if budget is not None else search.solution_cost(policy)
    right, pol, ver = 0, 0, 0
    for i, p in enumerate(probs):
        policy.reseed(seed * 1_000_003 + i)
        b = TokenBudget(limit)
        r = fn(policy, p, verifier, b, **knobs)
        right += r.correct
        pol, ver = pol + b.policy, ver + b.verifier
    n = max(1, len(probs))
    return {"accuracy": right / n, "policy_tokens": pol / n, "verifier_tokens": ver / n,
            "tokens": (pol + ver) / n, "n": len(probs)}
