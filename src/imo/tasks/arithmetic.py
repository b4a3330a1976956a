"""Multi-digit arithmetic written as a scratchpad: one column per step, right to left, with the
carry (or borrow) written into the step, as children learn it on paper.

Problems mix + (two difficulty-digit numbers), - (the larger first, so answers stay natural numbers) and
x (a difficulty-digit number times one digit). Column k's step names the two digits, the carry in and
the column's value; the value's last digit goes into the answer and the rest is carried:

    347+285      7+5+0=12   4+8+1=13   3+2+1=6    =632
    502-178      2-8-0=-6   0-7-1=-8   5-1-1=3    =324      (a negative value borrows 1)
    347*5        7*5+0=35   4*5+3=23   3*5+2=17   =1735

The scratchpad is deterministic, so a step is correct exactly when it equals the canonical step at
its place; the final answer is checked on its own (a wrong step with a right answer is a correct
outcome and an incorrect process, the distinction outcome and process rewards are about).

    task = imo.tasks.get("arith"); p = task.generate(random.Random(0), difficulty=3)
"""

import random

from imo.reason.steps import StepTask, join, parse
from imo.tasks import Problem, register

OPS = ("+", "-", "*")


def columns(a: int, op: str, b: int) -> tuple[list[str], int]:
    """The canonical scratchpad steps of `a op b` and the answer."""
    da = [int(c) for c in reversed(str(a))]
    db = [int(c) for c in reversed(str(b))]
    steps, carry = [], 0
    for k, x in enumerate(da):
        if op == "*":
            v = x * b + carry
            steps.append(f"{x}*{b}+{carry}={v}")
            carry = v // 10
        else:
            y = db[k] if k < len(db) else 0
            if op == "+":
                v = x + y + carry
                steps.append(f"{x}+{y}+{carry}={v}")
                carry = v // 10
            else:
                v = x - y - carry
                steps.append(f"{x}-{y}-{carry}={v}")
                carry = 1 if v < 0 else 0
    answer = a + b if op == "+" else a - b if op == "-" else a * b
    return steps, answer


@register
class Arithmetic(StepTask):
    name = "arith"
    description = "a+b, a-b (a >= b) with difficulty-digit numbers, a*d with one digit d, as column steps"
    difficulties = (1, 2, 3, 4, 5, 6)

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        self.check_difficulty(difficulty)
        op = rng.choice(OPS)
        lo = 10 ** (difficulty - 1) if difficulty > 1 else 0
        a = rng.randint(lo, 10**difficulty - 1)
        b = rng.randint(2, 9) if op == "*" else rng.randint(lo, 10**difficulty - 1)
        if op == "-" and b > a:
            a, b = b, a
        steps, answer = columns(a, op, b)
        return Problem(self.name, difficulty, f"{a}{op}{b}\n", str(answer), join(steps, str(answer)),
                       key=f"{a}{op}{b}", meta={"a": a, "op": op, "b": b, "steps": steps})

    def max_steps(self, difficulty: int) -> int:
        return difficulty

    def max_line(self, difficulty: int) -> int:
        # a step is at most 10 bytes ("0-9-1=-10\n"); the answer line "=" + difficulty + 1 digits + "\n"
        return max(10, difficulty + 3)

    def step_labels(self, problem: Problem, text: str) -> list[bool]:
        p = parse(text)
        canon = problem.meta["steps"]
        labels, ok = [], True
        for k, s in enumerate(p.steps):
            ok = ok and k < len(canon) and s == canon[k]
            labels.append(ok)
        if p.complete:
            labels.append(ok and len(p.steps) == len(canon) and p.answer == problem.answer)
        return labels

    def solution_ok(self, problem: Problem, text: str) -> bool:
        p = parse(text)
        return p.complete and p.answer == problem.answer
