"""The pieces every part of `imo.reason` shares, with no import of any other reason module but the
step format: the token budget of a search, a (partial) candidate solution, when a candidate is
finished, majority voting, the verifier that scores nothing, and the check that a stored run is
of the kind asked for.

policy, search, revision, verifiers, methods, curve and learn import from here; this module
imports none of them (the layers are core <- policy <- search <- revision <- methods).

    b = TokenBudget(512); b.charge(policy=12); b.left     # 500
    finished(policy, Candidate("3+7=10\\n=10\\n"))         # True
"""

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from imo.errors import ConfigError
from imo.reason.steps import parse

POLICY_KIND = "reason-policy"
VERIFIER_KINDS = {"orm": "reason-orm", "prm": "reason-prm"}


class TokenBudget:
    """Tokens a search may spend: `policy` generated plus `verifier` read, never above `limit`.
    (Named apart from the claims' budgets: this one counts tokens of one problem's search.)"""

    def __init__(self, limit: int):
        if limit < 1:
            raise ConfigError(f"token budget must be a positive number of tokens, got {limit}")
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
    budget: TokenBudget
    candidates: int = 0  # solutions or prefixes the method looked at
    trace: dict[str, Any] = field(default_factory=dict)


def finished(policy, c: Candidate) -> bool:
    """Complete, or out of lines or of a line's room (nothing more will be written)."""
    last_open = not c.text.endswith("\n") and c.text != ""
    return c.complete or c.lines() > policy.task.max_steps(policy.difficulty) or last_open


def vote(task, cands: list[Candidate]) -> list[float]:
    """Each candidate's share of the candidates whose final answer is the same as its own."""
    answers = [task.answer_of(c.text) for c in cands]
    counts = Counter(a for a in answers if a is not None)
    return [counts[a] / len(cands) if a is not None else 0.0 for a in answers]


class NoVerifier:
    """Used by greedy: scores nothing, costs nothing."""

    name, reads_tokens = "none", False

    def score(self, problem, cands: list[Candidate]) -> list[float]:
        return [0.0] * len(cands)


def check_kind(store, run_id: str, kind: str, what: str) -> dict:
    """The stored run `run_id`, refused with one line unless it is a finished run of `kind`."""
    run = store.get(run_id)
    if run["kind"] != kind:
        names = {POLICY_KIND: "a policy", "reason-orm": "an ORM verifier", "reason-prm": "a PRM verifier"}
        raise ConfigError(f"run {run_id} is {names.get(run['kind'], 'a ' + run['kind'] + ' run')}, "
                          f"not {what}; give a run made by "
                          + ("`imo reason train`" if kind == POLICY_KIND else "`imo reason train-verifier`"))
    if run["status"] != "finished":
        raise ConfigError(f"run {run_id} is {run['status']}, not finished")
    return run
