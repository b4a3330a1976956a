"""Search over a policy's steps under one token budget, and the methods registered for it.

The budget counts every token the policy generates and every token a verifier reads (a verifier
that only re-uses numbers it already has, such as `self` or `vote`, reads none). A method never
starts work it might not be able to pay for: before each batch of steps it reserves the worst case
(the longest line a difficulty allows, per row, for the policy and for the verifier), so the tokens
spent never exceed the budget, and the count is the exact number generated and read.

Methods (each takes the policy, the problem, a verifier and a TokenBudget, returns a Result;
imo.reason.methods registers them by name):
  greedy     one solution at temperature 0 (the "instinct" answer)
  best-of-n  as many sampled solutions as the budget pays for; the verifier picks one
  beam       step-difficulty beam search: each kept prefix is extended by `expand` sampled steps,
             the verifier scores every new prefix and the best `width` are kept
  mcts       UCT over steps (llm-reasoners' split: state = prefix, action = next step); a leaf's
             value is the verifier's score of the prefix, or of a rollout from it
  tot        Tree of Thoughts (Yao et al. 2023) breadth-first: distinct proposals per state,
             evaluated by the policy itself by default, the best `breadth` kept
  revision   sequential revision: the policy sees its last attempt and the verifier's feedback
             and writes a new solution (it must have been trained to, see revision.py)

    result = beam(policy, problem, verifier, TokenBudget(512))   # or imo.reason.methods.get_method("beam")
    result.text, result.correct, result.budget.spent
"""

import math
from typing import Any

from imo.errors import ConfigError
from imo.reason.core import Candidate, Result, TokenBudget, finished
from imo.tasks import Problem


def step_cost(policy) -> int:
    """The most tokens one step (one line) may take."""
    return policy.task.max_line(policy.difficulty)


def solution_cost(policy, verifier=None) -> int:
    """The most tokens one whole solution, read once by the verifier, may take."""
    n = policy.task.max_tokens(policy.difficulty)
    return n * (2 if verifier is not None and verifier.reads_tokens else 1)


def require(budget: TokenBudget, need: int, what: str) -> None:
    if budget.limit < need:
        raise ConfigError(f"a budget of {budget.limit} tokens is too small for {what}; "
                          f"give at least {need}")


def extend(policy, problem: Problem, cands: list[Candidate], budget: TokenBudget, temperature: float,
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


def rollout(policy, problem: Problem, cands: list[Candidate], budget: TokenBudget, temperature: float,
            prompt: str | None = None) -> list[Candidate]:
    """Write every candidate to its end. The caller reserved the remaining lines' cost."""
    while True:
        todo = [c for c in cands if not finished(policy, c)]
        if not todo:
            return cands
        cands = extend(policy, problem, cands, budget, temperature, prompt)


def remaining_cost(policy, c: Candidate) -> int:
    """The most tokens a rollout from this candidate can still take."""
    lines_left = policy.task.max_steps(policy.difficulty) + 1 - c.lines()
    return max(0, lines_left) * step_cost(policy)


def score(verifier, problem: Problem, cands: list[Candidate], budget: TokenBudget) -> None:
    """Score candidates in place, charging the verifier for the bytes it has not read yet."""
    if not cands:
        return
    fresh = [len(c.text.encode()) - c.scored for c in cands]
    if verifier.reads_tokens:
        budget.charge(verifier=sum(fresh))
    for c, s in zip(cands, verifier.score(problem, cands), strict=True):
        c.score, c.scored = s, len(c.text.encode())


def result(policy, problem: Problem, best: Candidate | None, budget: TokenBudget, seen: int, **trace) -> Result:
    text = best.text if best is not None else ""
    return Result(text, policy.task.solution_ok(problem, text), budget, seen, trace)


def best_of(cands: list[Candidate]) -> Candidate | None:
    """The highest score; ties go to the policy's likelier candidate, then the first."""
    done = [c for c in cands if c.complete] or cands
    return max(done, key=lambda c: (c.score if not math.isnan(c.score) else -math.inf, c.logprob),
               default=None)


def greedy(policy, problem: Problem, verifier, budget: TokenBudget, **_: Any) -> Result:
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


def best_of_n(policy, problem: Problem, verifier, budget: TokenBudget, temperature: float = 1.0,
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


def _width(policy, verifier, budget: TokenBudget, expand: int) -> int:
    """The widest beam whose every round the budget pays for."""
    vf = 2 if verifier.reads_tokens else 1
    rounds = policy.task.max_steps(policy.difficulty) + 1
    return max(1, budget.limit // (rounds * expand * step_cost(policy) * vf))


def beam(policy, problem: Problem, verifier, budget: TokenBudget, width: int | None = None, expand: int = 4,
         temperature: float = 1.0, **_: Any) -> Result:
    vf = 2 if verifier.reads_tokens else 1
    require(budget, (policy.task.max_steps(policy.difficulty) + 1) * step_cost(policy) * vf,
            "one step-difficulty beam of width 1")
    expand = max(1, min(expand, budget.limit // ((policy.task.max_steps(policy.difficulty) + 1) * step_cost(policy) * vf)))
    width = width or _width(policy, verifier, budget, expand)
    return _frontier_search(policy, problem, verifier, budget, width, expand, temperature, distinct=False)


def tot(policy, problem: Problem, verifier, budget: TokenBudget, breadth: int | None = None, proposals: int = 5,
        temperature: float = 1.0, **_: Any) -> Result:
    vf = 2 if verifier.reads_tokens else 1
    require(budget, (policy.task.max_steps(policy.difficulty) + 1) * step_cost(policy) * vf,
            "one tree-of-thoughts path")
    proposals = max(1, min(proposals, budget.limit // ((policy.task.max_steps(policy.difficulty) + 1) * step_cost(policy) * vf)))
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


def mcts(policy, problem: Problem, verifier, budget: TokenBudget, c_uct: float = 1.0, expand: int = 3,
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
    while iters < 100_000 and not finished(policy, root.cand):
        # Selection goes down through unfinished children only, so it always ends at a node that
        # can be expanded and every iteration spends tokens. (Selecting a finished leaf cost
        # nothing: a tree whose frontier was all finished looped, free, to the iteration cap.) A
        # node whose children are all finished is widened, whatever its visit count.
        node = root
        while node.tried >= expand * max(1, node.visits) ** widen:
            open_kids = [n for n in node.children if not finished(policy, n.cand)]
            if not open_kids:
                break
            node = max(open_kids, key=lambda n: n.uct(c_uct))  # selection
        # expansion (of a leaf, or a widening of an inner node)
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
