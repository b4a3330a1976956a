"""Sequential revision: the policy reads its previous attempt and the verifier's feedback and writes
a new solution ("inference more likely sequential revision", source notes; Snell et al. 2024).

The revision prompt is the problem, the previous attempt, then one feedback line "!k": line k
(1-based) is the first the verifier doubts, 0 when it only says the outcome is wrong:

    3 7 8:29\\n  3+7=10\\n10+8=18\\n=29\\n  !1\\n   ->   3*7=21\\n21+8=29\\n=29\\n

To teach it, the policy's training rows include revision examples (PolicyConfig.revision is their
share): a wrong attempt made by corrupting the worked solution (arithmetic: a column's value or the
answer off by a little; countdown: a random legal play-out that misses the target), the feedback
the exact labels give (or 0 for a third of them, as an outcome-only verifier would say), and the
worked solution.

    rows = revision_rows(task, train_problems, share=0.3, seed=0)
"""

import math
import random

from imo.errors import ConfigError
from imo.reason.core import Candidate, Result, TokenBudget
from imo.reason.search import require, result, rollout, score, solution_cost
from imo.reason.steps import join, parse
from imo.tasks import Problem

FEEDBACK = "!"


def revision_prompt(problem: Problem, attempt: str, flagged: int) -> str:
    return problem.prompt + attempt + f"{FEEDBACK}{flagged}\n"


def corrupt(task, problem: Problem, rng: random.Random) -> str:
    """A wrong worked solution that looks like the task's own."""
    for _ in range(100):
        if task.name == "arith":
            steps = list(parse(problem.solution).steps)
            answer = problem.answer
            j = rng.randrange(len(steps) + 1)
            if j == len(steps):
                answer = str(max(0, int(answer) + rng.choice([-10, -1, 1, 10])))
            else:
                head, value = steps[j].split("=")
                steps[j] = f"{head}={int(value) + rng.choice([-1, 1])}"
            text = join(steps, answer)
        else:
            from imo.tasks.countdown import moves

            left, steps = tuple(sorted(problem.meta["nums"])), []
            while len(left) > 1:
                a, op, b, r, left = rng.choice(list(moves(left)))
                steps.append(f"{a}{op}{b}={r}")
            text = join(steps, problem.answer)
        if not task.solution_ok(problem, text):
            return text
    raise RuntimeError(f"could not corrupt {problem.prompt!r}")


def first_wrong(labels: list[bool]) -> int:
    return next((k + 1 for k, ok in enumerate(labels) if not ok), 0)


def revision_rows(task, probs: list[Problem], share: float, seed: int) -> list[tuple[str, str]]:
    """(revision prompt, worked solution) rows: share / (1 - share) of the plain rows' count."""
    rng = random.Random(f"{seed}/revision")
    n = round(len(probs) * share / (1 - share))
    rows = []
    for p in rng.choices(probs, k=n):
        bad = corrupt(task, p, rng)
        flagged = 0 if rng.random() < 1 / 3 else first_wrong(task.step_labels(p, bad))
        rows.append((revision_prompt(p, bad, flagged), p.solution))
    return rows


def flag(verifier, problem: Problem, cand: Candidate) -> int:
    """The feedback line: the first line a process verifier doubts, else 0."""
    if verifier.name == "oracle":
        return first_wrong(verifier.task.step_labels(problem, cand.text))
    if verifier.name.startswith("prm"):
        lines = verifier.line_scores([problem.prompt], [cand.text])[0]
        return next((k + 1 for k, s in enumerate(lines) if s < 0.5), 0)
    return 0


def revision(policy, problem: Problem, verifier, budget: TokenBudget, threshold: float = 0.5,
             temperature: float = 1.0, **_: object) -> Result:
    """Attempt greedily; while the verifier scores the attempt below `threshold` and the budget
    pays for another, revise with the feedback. The answer is the best-scored attempt."""
    cfg = getattr(policy, "meta", {}).get("config")
    if cfg is not None and not cfg.revision:
        raise ConfigError(f"policy {policy.meta.get('run', '')} was not trained to revise; train one "
                          "with `imo reason train --revision 0.3`")
    if verifier.name in ("self", "vote", "none"):
        raise ConfigError("revision needs a verifier that judges one attempt: oracle, orm:RUN or prm:RUN")
    per = solution_cost(policy, verifier)
    require(budget, per, "one attempt and its score")
    attempts: list[Candidate] = []
    prompt, temp = problem.prompt, 0.0
    while budget.left >= per:
        c = rollout(policy, problem, [Candidate()], budget, temp, prompt=prompt)[0]
        score(verifier, problem, [c], budget)
        attempts.append(c)
        if c.score >= threshold:
            break
        prompt, temp = revision_prompt(problem, c.text, flag(verifier, problem, c)), temperature
    best = max(attempts, key=lambda c: (c.score if not math.isnan(c.score) else -math.inf, -attempts.index(c)))
    return result(policy, problem, best, budget, len(attempts), attempts=len(attempts))

