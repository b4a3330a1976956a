"""Countdown: combine the given numbers with + - * / into the target, two at a time, until one
number is left; every intermediate result must be a positive integer (so / must divide exactly).
Game of 24 is the setting with four numbers from 1 to 13 and the target 24 (Yao et al. 2023 use
it for Tree of Thoughts).

    prompt "3 7 8 2:24\\n"     steps "7-3=4\\n4*8=32\\n32-2=30\\n" ... then "=24\\n"

A step is legal when both operands are among the numbers left and its arithmetic is right; it is
correct (the process oracle) when it is legal and the numbers left after it can still make the
target, which a brute-force solver decides. A solution is correct when all n-1 steps are legal, the
last number is the target and the answer line names it.

    task = imo.tasks.get("countdown"); p = task.generate(random.Random(0), difficulty=1)   # 3 numbers
"""

import random
import re
from collections import Counter
from functools import lru_cache

from imo.reason.steps import StepTask, join, parse
from imo.tasks import Problem, register

STEP = re.compile(r"^(\d{1,6})([-+*/])(\d{1,6})=(\d{1,7})$")


def apply(a: int, op: str, b: int) -> int | None:
    """a op b when it is a positive integer, else None."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a > b else None
    if op == "*":
        return a * b
    return a // b if b and a % b == 0 else None


def moves(nums: tuple[int, ...]):
    """Every legal step from a multiset: (a, op, b, result, numbers left after it)."""
    n = len(nums)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            a, b = nums[i], nums[j]
            rest = [nums[k] for k in range(n) if k not in (i, j)]
            for op in "+-*/":
                if op in "+*" and i > j:  # commutative: one order is enough
                    continue
                r = apply(a, op, b)
                if r is not None:
                    yield a, op, b, r, tuple(sorted([*rest, r]))


@lru_cache(maxsize=200_000)
def solve(nums: tuple[int, ...], target: int) -> tuple[str, ...] | None:
    """A list of steps that turns the (sorted) multiset into the target, or None."""
    if len(nums) == 1:
        return () if nums[0] == target else None
    for a, op, b, r, left in moves(nums):
        rest = solve(left, target)
        if rest is not None:
            return (f"{a}{op}{b}={r}", *rest)
    return None


def play(nums: tuple[int, ...], step: str) -> tuple[int, ...] | None:
    """The numbers left after a step, or None when the step is not legal here."""
    m = STEP.match(step)
    if not m:
        return None
    a, op, b, r = int(m[1]), m[2], int(m[3]), int(m[4])
    if apply(a, op, b) != r:
        return None
    left = Counter(nums)
    left[a] -= 1
    left[b] -= 1
    if left[a] < 0 or left[b] < 0:
        return None
    return tuple(sorted([*left.elements(), r]))


class _Combine(StepTask):
    """Shared checks of countdown and game24: the prompt names the numbers and the target."""

    def numbers(self, difficulty: int) -> int:
        raise NotImplementedError

    def max_steps(self, difficulty: int) -> int:
        return self.numbers(difficulty) - 1

    def max_line(self, difficulty: int) -> int:
        return 16  # "20736*12=248832\n" is the longest step five numbers from 1 to 12 can need

    def _problem(self, difficulty: int, nums: list[int], target: int, steps: list[str]) -> Problem:
        key = " ".join(map(str, sorted(nums))) + f":{target}"
        return Problem(self.name, difficulty, " ".join(map(str, nums)) + f":{target}\n", str(target),
                       join(steps, str(target)), key=key, meta={"nums": tuple(nums), "target": target})

    def _walk(self, problem: Problem, text: str) -> tuple[list[bool], bool]:
        """Labels of the written lines, and whether the whole solution is correct."""
        p = parse(text)
        target = problem.meta["target"]
        left: tuple[int, ...] | None = tuple(sorted(problem.meta["nums"]))
        labels = []
        for s in p.steps:
            left = play(left, s) if left is not None else None
            labels.append(left is not None and solve(left, target) is not None)
        ok = (p.complete and left is not None and len(left) == 1 and left[0] == target
              and p.answer == str(target))
        if p.complete:
            labels.append(ok)
        return labels, ok

    def step_labels(self, problem: Problem, text: str) -> list[bool]:
        labels = self._walk(problem, text)[0]
        for k in range(1, len(labels)):  # once wrong, every later line is wrong too
            labels[k] = labels[k] and labels[k - 1]
        return labels

    def solution_ok(self, problem: Problem, text: str) -> bool:
        return self._walk(problem, text)[1]

    def extract(self, output: str) -> str:
        """The steps and answer on one line ("7-3=4;4*8=32;=32"): countdown's answer is the work."""
        p = parse(output)
        return ";".join([*p.steps, f"={p.answer}" if p.answer is not None else ""])

    def check(self, problem: Problem, answer: str) -> bool:
        return self.solution_ok(problem, answer.replace(";", "\n") + "\n")

    def answer_of(self, text: str) -> str | None:
        """The last number the steps make (what a vote counts; the answer line always says the
        target, so voting on it would say nothing)."""
        p = parse(text)
        m = STEP.match(p.steps[-1]) if p.steps else None
        return m[4] if m and p.complete else None


@register
class Countdown(_Combine):
    name = "countdown"
    description = "reach the target from difficulty+2 numbers (1-12) with + - * /, positive integers only"
    difficulties = (1, 2, 3)

    def numbers(self, difficulty: int) -> int:
        return difficulty + 2

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        """Random numbers combined by random legal steps; the last number is the target."""
        self.check_difficulty(difficulty)
        while True:
            nums = [rng.randint(1, 12) for _ in range(self.numbers(difficulty))]
            left, steps = list(nums), []
            while len(left) > 1:
                i, j = rng.sample(range(len(left)), 2)
                a, b = left[i], left[j]
                ops = [op for op in "+-*/" if apply(a, op, b) is not None]
                op = rng.choice(ops) if ops else None
                if op is None:
                    break
                r = apply(a, op, b)
                steps.append(f"{a}{op}{b}={r}")
                left = [x for k, x in enumerate(left) if k not in (i, j)] + [r]
            if len(left) == 1 and 2 <= left[0] <= 999:
                return self._problem(difficulty, nums, left[0], steps)


@register
class Game24(_Combine):
    name = "game24"
    description = "Game of 24: four numbers from 1 to 13, make 24 (integer steps only)"
    difficulties = (1,)

    def numbers(self, difficulty: int) -> int:
        return 4

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        self.check_difficulty(difficulty)
        while True:
            nums = [rng.randint(1, 13) for _ in range(4)]
            steps = solve(tuple(sorted(nums)), 24)
            if steps is not None:
                return self._problem(difficulty, nums, 24, list(steps))
