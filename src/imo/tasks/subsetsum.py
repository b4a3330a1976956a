"""Subset sum: pick some of the given numbers so that they add up to the target. A constraint-
satisfaction task where checking is cheap (add the picks) and solving is a search over 2^n subsets
(issue 22: "tasks where checking is easy and solving is hard").

    prompt "14 3 9 20 7:30\\n"     solution "+14=14\\n+9=23\\n+7=30\\n=30\\n"

Each step adds one unused number and writes the running total. A step is legal when the number
is still unused (a multiset: a number given twice may be picked twice) and the total is right; it
is correct (the process oracle) when it is legal and the numbers left can still make up the rest
of the target, which a subset-sum table over the numbers left decides exactly. A solution is
correct when every step is legal, the last total is the target and the answer line names it.

The difficulty sets how many numbers there are and how large: 1: five from 1-20, 2: seven from
1-30, 3: nine from 1-40, 4: eleven from 1-40. Difficulties 3 and 4 are held out
(`held_out`): a policy is not trained on them; they are kept to score generalisation to harder
problems. The target is the sum of a random subset of at least two of the numbers, so every
problem has a solution; the worked solution picks that subset in prompt order.

    task = imo.tasks.get("subsetsum"); p = task.generate(random.Random(0), difficulty=1)
"""

import random
import re
from collections import Counter

from imo.errors import ConfigError
from imo.reason.steps import StepTask, join, parse
from imo.tasks import Problem, register

STEP = re.compile(r"^\+(\d{1,3})=(\d{1,4})$")
SIZES = {1: (5, 20), 2: (7, 30), 3: (9, 40), 4: (11, 40)}  # difficulty -> (numbers, largest)


def reachable(nums: list[int], target: int) -> bool:
    """Whether some sub-multiset of `nums` sums to `target` (>= 0): a bitset table, exact."""
    if target < 0:
        return False
    bits = 1  # bit s set: sum s is reachable
    mask = (1 << (target + 1)) - 1
    for x in nums:
        bits = (bits | (bits << x)) & mask
    return bool(bits >> target & 1)


@register
class SubsetSum(StepTask):
    name = "subsetsum"
    description = "pick numbers that add up to the target; steps +a=running total"
    difficulties = (1, 2, 3, 4)
    held_out = (3, 4)

    def numbers(self, difficulty: int) -> int:
        return SIZES[difficulty][0]

    def max_steps(self, difficulty: int) -> int:
        return self.numbers(difficulty)

    def max_line(self, difficulty: int) -> int:
        n, top = SIZES[difficulty]
        return 1 + len(str(top)) + 1 + len(str(n * top)) + 1  # "+40=440\n"

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        self.check_difficulty(difficulty)
        n, top = SIZES[difficulty]
        nums = [rng.randint(1, top) for _ in range(n)]
        k = rng.randint(2, max(2, n // 2 + 1))
        picked = sorted(rng.sample(range(n), k))
        return self._problem(difficulty, nums, [nums[i] for i in picked])

    def _problem(self, difficulty: int, nums: list[int], picks: list[int]) -> Problem:
        target = sum(picks)
        steps, total = [], 0
        for x in picks:
            total += x
            steps.append(f"+{x}={total}")
        key = " ".join(map(str, sorted(nums))) + f":{target}"
        return Problem(self.name, difficulty, " ".join(map(str, nums)) + f":{target}\n", str(target),
                       join(steps, str(target)), key=key, meta={"nums": tuple(nums), "target": target})

    def from_text(self, text: str, difficulty: int) -> Problem:
        """A problem typed by a user, "14 3 9 20 7:30"; refused when no subset makes the target."""
        try:
            nums_s, target_s = text.split(":")
            nums, target = [int(x) for x in nums_s.split()], int(target_s)
            if len(nums) < 2 or min(nums) < 1 or target < 1:
                raise ValueError
        except ValueError:
            raise ConfigError(f"cannot read problem {text!r} for subsetsum; write numbers then ':' and the "
                              "target, e.g. '14 3 9 20 7:30'") from None
        picks, left = [], target
        for i, x in enumerate(nums):  # a solution in prompt order, greedy with an exact lookahead
            if x <= left and reachable(nums[i + 1:], left - x):
                picks.append(x)
                left -= x
            if left == 0:
                break
        if left:
            raise ConfigError(f"no subset of {nums_s.strip()} adds up to {target}")
        return self._problem(difficulty, nums, picks)

    def _walk(self, problem: Problem, text: str) -> tuple[list[bool], bool]:
        """Labels of the written lines, and whether the whole solution is correct."""
        p = parse(text)
        target = problem.meta["target"]
        left: Counter | None = Counter(problem.meta["nums"])
        total, labels = 0, []
        for s in p.steps:
            m = STEP.match(s)
            if left is not None and m and left[int(m[1])] > 0 and int(m[2]) == total + int(m[1]):
                left[int(m[1])] -= 1
                total = int(m[2])
            else:
                left = None
            labels.append(left is not None and reachable(list(left.elements()), target - total))
        ok = p.complete and left is not None and bool(p.steps) and total == target and p.answer == str(target)
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
        """The steps and answer on one line ("+14=14;+9=23;+7=30;=30"): the answer is the work."""
        p = parse(output)
        return ";".join([*p.steps, f"={p.answer}" if p.answer is not None else ""])

    def check(self, problem: Problem, answer: str) -> bool:
        return self.solution_ok(problem, answer.replace(";", "\n") + "\n")

    def answer_of(self, text: str) -> str | None:
        """The chosen numbers, sorted (what a vote counts; the answer line always says the target)."""
        p = parse(text)
        if not p.complete:
            return None
        picks = [m[1] for m in map(STEP.match, p.steps) if m]
        return " ".join(sorted(picks, key=int)) or None
