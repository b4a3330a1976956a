"""Search over a policy's steps under one token budget, and the methods registered for it.

The budget counts every token the policy generates and every token a verifier reads (a verifier
that only re-uses numbers it already has, such as `self` or `vote`, reads none). A method never
starts work it might not be able to pay for: before each batch of steps it reserves the worst case
(the longest line a level allows, per row, for the policy and for the verifier), so the tokens
spent never exceed the budget, and the count is the exact number generated and read.

Methods (each takes the policy, the problem, a verifier and a Budget, returns a Result):
  greedy     one solution at temperature 0 (the "instinct" answer)
  best-of-n  as many sampled solutions as the budget pays for; the verifier picks one
  beam       step-level beam search: each kept prefix is extended by `expand` sampled steps,
             the verifier scores every new prefix and the best `width` are kept
  mcts       UCT over steps (llm-reasoners' split: state = prefix, action = next step); a leaf's
             value is the verifier's score of the prefix, or of a rollout from it
  tot        Tree of Thoughts (Yao et al. 2023) breadth-first: distinct proposals per state,
             evaluated by the policy itself by default, the best `breadth` kept
  revision   sequential revision: the policy sees its last attempt and the verifier's feedback
             and writes a new solution (it must have been trained to, see revision.py)

    result = SEARCHES.get("beam")(policy, problem, verifier, Budget(512))
    result.text, result.correct, result.budget.spent
"""

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from imo.errors import ConfigError
from imo.reason.steps import parse
from imo.registry import Registry
from imo.tasks import Problem

SEARCHES: Registry = Registry("search method")


class Budget:
    """Tokens a search may spend: `policy` generated plus `verifier` read, never above `limit`."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ConfigError(f"budget must be a positive number of tokens, got {limit}")
        self.limit, self.policy, self.verifier = int(limit), 0, 0

    @property
    def spent(self) -> int:
        return self.policy + self.verifier

    @property
    def left(self) -> int:
        return self.limit - self.spent

    def charge(self, policy: int = 0, verifier: int = 0) -> None:
        self.policy += policy
        self.verifier += verifier
        if self.spent > self.limit:  # a method reserved too little: a bug, not bad input
            raise RuntimeError(f"search spent {self.spent} tokens of a budget of {self.limit}")


@dataclass
class Candidate:
    """A (partial) solution: its text after the prompt, the policy's log-probability of it, and the
    number of tokens the policy generated for it."""

    text: str = ""
    logprob: float = 0.0
    tokens: int = 0
    score: float = math.nan  # the verifier's latest score
    scored: int = 0  # bytes of text the verifier has already read

    @property
    def complete(self) -> bool:
        return parse(self.text).complete

    def lines(self) -> int:
        return self.text.count("\n")


@dataclass
class Result:
    text: str
    correct: bool
    budget: Budget
    candidates: int = 0  # solutions or prefixes the method looked at
    trace: dict[str, Any] = field(default_factory=dict)


def step_cost(policy) -> int:
    """The most tokens one step (one line) may take."""
    return policy.task.max_line(policy.level)


def solution_cost(policy, verifier=None) -> int:
    """The most tokens one whole solution, read once by the verifier, may take."""
    n = policy.task.max_tokens(policy.level)
    return n * (2 if verifier is not None and verifier.reads_tokens else 1)


def require(budget: Budget, need: int, what: str) -> None:
    if budget.limit < need:
        raise ConfigError(f"a budget of {budget.limit} tokens is too small for {what}; "
                          f"give at least {need}")


def extend(policy, problem: Problem, cands: list[Candidate], budget: Budget, temperature: float,
           prompt: str | None = None) -> list[Candidate]:
    """One more line for every unfinished candidate (finished ones come back as they are); the
    caller has reserved step_cost per unfinished row. Rows past the line limit are closed."""
    open_ = [c for c in cands if not finished(policy, c)]
    if not open_:
        return cands
    outs = policy.step([(prompt or problem.prompt, c.text) for c in open_], temperature)
    budget.charge(policy=sum(len(t.encode()) for t, _ in outs))
    new = {id(c): Candidate(c.text + t, c.logprob + lp, c.tokens + len(t.encode()), scored=c.scored)
           for c, (t, lp) in zip(open_, outs, strict=True)}
    return [new.get(id(c), c) for c in cands]


def finished(policy, c: Candidate) -> bool:
    """Complete, or out of lines or of a line's room (nothing more will be written)."""
    last_open = not c.text.endswith("\n") and c.text != ""
    return c.complete or c.lines() > policy.task.max_steps(policy.level) or last_open


def rollout(policy, problem: Problem, cands: list[Candidate], budget: Budget, temperature: float,
            prompt: str | None = None) -> list[Candidate]:
    """Write every candidate to its end. The caller reserved the remaining lines' cost."""
    while True:
        todo = [c for c in cands if not finished(policy, c)]
        if not todo:
            return cands
        cands = extend(policy, problem, cands, budget, temperature, prompt)


def remaining_cost(policy, c: Candidate) -> int:
    """The most tokens a rollout from this candidate can still take."""
    lines_left = policy.task.max_steps(policy.level) + 1 - c.lines()
    return max(0, lines_left) * step_cost(policy)


def score(verifier, problem: Problem, cands: list[Candidate], budget: Budget) -> None:
    """Score candidates in place, charging the verifier for the bytes it has not read yet."""
    if not cands:
        return
    fresh = [len(c.text.encode()) - c.scored for c in cands]
    if verifier.reads_tokens:
        budget.charge(verifier=sum(fresh))
    for c, s in zip(cands, verifier.score(problem, cands), strict=True):
        c.score, c.scored = s, len(c.text.encode())


def result(policy, problem: Problem, best: Candidate | None, budget: Budget, seen: int, **trace) -> Result:
    text = best.text if best is not None else ""
    return Result(text, policy.task.solution_ok(problem, text), budget, seen, trace)


def best_of(cands: list[Candidate]) -> Candidate | None:
    """The highest score; ties go to the policy's likelier candidate, then the first."""
    done = [c for c in cands if c.complete] or cands
    return max(done, key=lambda c: (c.score if not math.isnan(c.score) else -math.inf, c.logprob),
               default=None)


@SEARCHES.register("greedy")
def greedy(policy, problem: Problem, verifier, budget: Budget, **_: Any) -> Result:
    require(budget, solution_cost(policy), "one greedy solution")
    c = rollout(policy, problem, [Candidate()], budget, 0.0)[0]
    return result(policy, problem, c, budget, 1)


def weighted_best(task, cands: list[Candidate]) -> Candidate | None:
    """Weighted voting (Li et al. 2023; Snell et al. 2024's "best-of-N weighted"): the final
    answer whose candidates' scores sum highest, represented by its best-scored candidate. A few
    false positives of a verifier then cannot outvote many candidates that agree."""
    groups: dict[str, list[Candidate]] = {}
    for c in cands:
        a = task.answer_of(c.text)
        if a is not None and not math.isnan(c.score):
            groups.setdefault(a, []).append(c)
    if not groups:
        return best_of(cands)
    top = max(groups.values(), key=lambda g: sum(c.score for c in g))
    return best_of(top)


@SEARCHES.register("best-of-n")
def best_of_n(policy, problem: Problem, verifier, budget: Budget, temperature: float = 1.0,
              weighted: bool = True, **_: Any) -> Result:
    """n = budget // (one solution's worst-case cost, verifier included), sampled in one batch.
    With a verifier whose scores are probabilities (oracle, orm, prm) the pick is by weighted
    voting unless `weighted` is off; `self` and `vote` pick the top score."""
    per = solution_cost(policy, verifier)
    require(budget, per, "one sampled solution and its score")
    n = budget.limit // per
    cands = rollout(policy, problem, [Candidate() for _ in range(n)], budget, temperature)
    score(verifier, problem, cands, budget)
    probabilities = verifier.name.split(":")[0] in ("oracle", "orm", "prm")
    best = weighted_best(policy.task, cands) if weighted and probabilities else best_of(cands)
    return result(policy, problem, best, budget, n, n=n)


def _frontier_search(policy, problem, verifier, budget, width: int, expand: int, temperature: float,
                     distinct: bool) -> Result:
    """Shared by beam and tot: keep `width` prefixes; give each `expand` next steps; score the new
    prefixes; keep the best. Stops when every kept prefix is finished or the budget cannot pay
    for another round."""
    vf = 2 if verifier.reads_tokens else 1
    beams, seen, rounds = [Candidate() for _ in range(width)], 0, 0  # the root, `width` times
    while not all(finished(policy, b) for b in beams):
        live = [b for b in beams if not finished(policy, b)]
        if budget.left < len(live) * expand * step_cost(policy) * vf:
            break
        kids = extend(policy, problem, [Candidate(b.text, b.logprob, b.tokens, scored=b.scored)
                                        for b in live for _ in range(expand)], budget, temperature)
        if distinct or rounds == 0:  # tot proposes distinct thoughts; the root's copies repeat
            uniq: dict[str, Candidate] = {}
            for k in kids:
                uniq.setdefault(k.text, k)
            kids = list(uniq.values())
        score(verifier, problem, kids, budget)
        seen += len(kids)
        rounds += 1
        pool = [b for b in beams if finished(policy, b)] + kids
        pool.sort(key=lambda c: (c.score if not math.isnan(c.score) else -math.inf, c.logprob), reverse=True)
        beams = pool[:width]
    # unfinished beams are worth finishing greedily when the budget allows (they are the best guesses)
    best = best_of([b for b in beams if b.complete]) if any(b.complete for b in beams) else None
    if best is None and beams:
        top = beams[0]
        if budget.left >= remaining_cost(policy, top):
            top = rollout(policy, problem, [top], budget, 0.0)[0]
        best = top
    return result(policy, problem, best, budget, seen, rounds=rounds, width=width, expand=expand)


def _width(policy, verifier, budget: Budget, expand: int) -> int:
    """The widest beam whose every round the budget pays for."""
    vf = 2 if verifier.reads_tokens else 1
    rounds = policy.task.max_steps(policy.level) + 1
    return max(1, budget.limit // (rounds * expand * step_cost(policy) * vf))


@SEARCHES.register("beam")
def beam(policy, problem: Problem, verifier, budget: Budget, width: int | None = None, expand: int = 4,
         temperature: float = 1.0, **_: Any) -> Result:
    vf = 2 if verifier.reads_tokens else 1
    require(budget, (policy.task.max_steps(policy.level) + 1) * step_cost(policy) * vf,
            "one step-level beam of width 1")
    expand = max(1, min(expand, budget.limit // ((policy.task.max_steps(policy.level) + 1) * step_cost(policy) * vf)))
    width = width or _width(policy, verifier, budget, expand)
    return _frontier_search(policy, problem, verifier, budget, width, expand, temperature, distinct=False)


@SEARCHES.register("tot")
def tot(policy, problem: Problem, verifier, budget: Budget, breadth: int | None = None, proposals: int = 5,
        temperature: float = 1.0, **_: Any) -> Result:
    vf = 2 if verifier.reads_tokens else 1
    require(budget, (policy.task.max_steps(policy.level) + 1) * step_cost(policy) * vf,
            "one tree-of-thoughts path")
    proposals = max(1, min(proposals, budget.limit // ((policy.task.max_steps(policy.level) + 1) * step_cost(policy) * vf)))
    breadth = breadth or _width(policy, verifier, budget, proposals)
    return _frontier_search(policy, problem, verifier, budget, breadth, proposals, temperature, distinct=True)


class Node:
    """A node of the MCTS tree: a prefix, its visit count and the sum of the values backed up."""

    def __init__(self, cand: Candidate, parent: "Node | None" = None):
        self.cand, self.parent = cand, parent
        self.children: list[Node] = []
        self.visits, self.value = 0, 0.0
        self.tried = 0  # steps sampled here (repeats of a child included)

    def uct(self, c: float) -> float:
        if self.visits == 0:
            return math.inf
        return self.value / self.visits + c * math.sqrt(math.log(max(2, self.parent.visits)) / self.visits)


@SEARCHES.register("mcts")
def mcts(policy, problem: Problem, verifier, budget: Budget, c_uct: float = 1.0, expand: int = 3,
         widen: float = 0.5, rollouts: bool = False, temperature: float = 1.0, **_: Any) -> Result:
    """UCT: select by upper confidence down to a node, expand it with `expand` sampled steps, value
    each child by the verifier (of the prefix, or of a rollout from it when `rollouts`), back the
    values up. Steps are sampled, so a node's first children may all be poor: progressive
    widening lets a node with N visits sample expand * N^widen steps in all (distinct children kept).
    Repeats while the budget pays for one more expansion. The answer is the best-scored finished
    solution the tree reached (a rollout's solution counts), else the most visited path, finished
    greedily."""
    vf = 2 if verifier.reads_tokens else 1
    per_child = (remaining_cost(policy, Candidate()) if rollouts else step_cost(policy)) * vf
    require(budget, per_child, "one MCTS expansion")
    expand = max(1, min(expand, budget.limit // per_child))
    root, done, iters = Node(Candidate()), [], 0
    while iters < 100_000:
        node = root
        while node.children and (finished(policy, node.cand)
                                 or node.tried >= expand * max(1, node.visits) ** widen):
            node = max(node.children, key=lambda n: n.uct(c_uct))  # selection
        if finished(policy, node.cand):  # a finished leaf: back its value up again
            value = node.cand.score
        else:  # expansion (of a leaf, or a widening of an inner node)
            if budget.left < expand * per_child:
                break
            kids = extend(policy, problem, [Candidate(node.cand.text, node.cand.logprob, node.cand.tokens,
                                                      scored=node.cand.scored) for _ in range(expand)],
                          budget, temperature)
            if rollouts:
                ends = rollout(policy, problem, [Candidate(k.text, k.logprob, k.tokens) for k in kids],
                               budget, temperature)
                score(verifier, problem, ends, budget)
                for k, e in zip(kids, ends, strict=True):
                    k.score = e.score
                done += [e for e in ends if e.complete]
            else:
                score(verifier, problem, kids, budget)
            node.tried += len(kids)
            have = {c.cand.text for c in node.children}
            for k in kids:
                if k.text not in have:
                    have.add(k.text)
                    child = Node(k, node)
                    child.visits, child.value = 1, k.score  # each new child is visited once
                    node.children.append(child)
            done += [k for k in kids if k.complete]
            value = max(k.score for k in kids)
        iters += 1
        while node is not None:  # backup
            node.visits += 1
            node.value += value
            node = node.parent
    best = best_of(done) if done else None
    if best is None:
        node = root
        while node.children:
            node = max(node.children, key=lambda n: n.visits)
        best = node.cand
        if budget.left >= remaining_cost(policy, best):
            best = rollout(policy, problem, [best], budget, 0.0)[0]
    return result(policy, problem, best, budget, iters, iterations=iters)


def vote(task, cands: list[Candidate]) -> list[float]:
    """Each candidate's share of the candidates whose final answer is the same as its own."""
    answers = [task.answer_of(c.text) for c in cands]
    counts = Counter(a for a in answers if a is not None)
    return [counts[a] / len(cands) if a is not None else 0.0 for a in answers]


def get_method(name: str):
    """A registered search method (importing the modules that register more of them)."""
    import imo.reason.revision  # noqa: F401  (registers "revision")

    return SEARCHES.get(name)


def accuracy(policy, probs: list[Problem], method: str = "greedy", verifier=None, budget: int | None = None,
             seed: int = 0, **knobs: Any) -> float:
    """Share of problems solved (oracle-checked) by a method at a per-problem budget."""
    return run_many(policy, probs, method, verifier, budget, seed, **knobs)["accuracy"]


def run_many(policy, probs: list[Problem], method: str = "greedy", verifier=None, budget: int | None = None,
             seed: int = 0, **knobs: Any) -> dict[str, Any]:
    """A method over many problems: accuracy and the mean tokens spent (policy, verifier)."""
    from imo.reason.verifiers import NoVerifier

    fn = get_method(method)
    verifier = verifier or NoVerifier()
    limit = budget if budget is not None else solution_cost(policy)
    right, pol, ver = 0, 0, 0
    for i, p in enumerate(probs):
        policy.reseed(seed * 1_000_003 + i)
        b = Budget(limit)
        r = fn(policy, p, verifier, b, **knobs)
        right += r.correct
        pol, ver = pol + b.policy, ver + b.verifier
    n = max(1, len(probs))
    return {"accuracy": right / n, "policy_tokens": pol / n, "verifier_tokens": ver / n,
            "tokens": (pol + ver) / n, "n": len(probs)}
