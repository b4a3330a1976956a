"""The skills battery: seven small generated skills, each with an exact checker.

Every skill writes its problem as one line `<skill> <input>=` and its answer as the rest of the
line, so a byte-level model trained on lines `prompt + answer` answers by continuing a prompt up
to the newline. Each skill can also *solve* a prompt from its text alone (`solve`), which is what
the checker and the trickability exam use: an edited prompt's true answer is recomputed, never
assumed.

  * `skill-count`    how many times a letter occurs:   `count a:abcab=` -> `2`
  * `skill-copy`     copy a string:                     `copy cab=` -> `cab`
  * `skill-reverse`  reverse a string:                  `reverse cab=` -> `bac`
  * `skill-sort`     sort the letters:                  `sort cab=` -> `abc`
  * `skill-add`      add two numbers:                   `add 17+5=` -> `22`
  * `skill-compare`  compare two numbers:               `compare 17?5=` -> `>`
  * `skill-grid`     walk a 2-D grid from (0,0), moves U/D/L/R inside a W x H grid, final x,y:
                     `grid 3x3 RRD=` -> `2,1`  (y grows downwards)

One more task is a *control*, outside the battery: `skill-order` is `sort` under another verb
(`order cab=` -> `abc`), the same map with a new name, so learning one must bring the other: the
positive control of the transfer exam (imo.exams.skills), which shows the exam can see transfer.

Difficulty 1 is short inputs, difficulty 2 longer ones.

    task = get("skill-sort"); p = task.generate(random.Random(0), 1); task.solve(p.prompt) == p.answer
"""

import random
import re

from imo.tasks import Problem, Task, register

SKILLS = ("count", "copy", "reverse", "sort", "add", "compare", "grid")
CONTROLS = ("order",)  # not skills of their own: a battery skill under another verb
LETTERS = "abcdef"  # a small alphabet: repeats make counting and sorting non-trivial


def skill_names(controls: bool = False) -> list[str]:
    """The battery's task names (with the control tasks after them if `controls`)."""
    return [f"skill-{s}" for s in SKILLS + (CONTROLS if controls else ())]


class SkillTask(Task):
    """A skill: `make(rng, difficulty)` draws the input text; `compute(input)` is the exact answer;
    `parse` recovers the input from a prompt (None when the prompt is not well formed)."""

    verb: str = ""
    pattern: str = ""  # regex of the input part of a prompt
    difficulties = (1, 2)

    def make(self, rng: random.Random, difficulty: int) -> str:
        raise NotImplementedError

    def compute(self, text: str) -> str:
        raise NotImplementedError

    def prompt_of(self, text: str) -> str:
        return f"{self.verb} {text}="

    def parse(self, prompt: str) -> str | None:
        m = re.fullmatch(rf"{self.verb} ({self.pattern})=", prompt)
        return m.group(1) if m else None

    def solve(self, prompt: str) -> str | None:
        """The exact answer of a prompt written in this skill's format, or None."""
        text = self.parse(prompt)
        return None if text is None else self.compute(text)

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        self.check_difficulty(difficulty)
        text = self.make(rng, difficulty)
        prompt = self.prompt_of(text)
        answer = self.compute(text)
        return Problem(self.name, difficulty, prompt, answer, answer, key=prompt)

    def check(self, problem: Problem, answer: str) -> bool:
        return answer.strip() == self.solve(problem.prompt)


def _letters(rng: random.Random, difficulty: int) -> str:
    lo, hi = (2, 5) if difficulty == 1 else (5, 9)
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def _number(rng: random.Random, difficulty: int) -> int:
    return rng.randrange(100 if difficulty == 1 else 10000)


@register
class Count(SkillTask):
    name, verb = "skill-count", "count"
    description = "how many times a letter occurs in a string"
    pattern = f"[{LETTERS}]:[{LETTERS}]+"

    def make(self, rng: random.Random, difficulty: int) -> str:
        return f"{rng.choice(LETTERS)}:{_letters(rng, difficulty)}"

    def compute(self, text: str) -> str:
        letter, s = text.split(":")
        return str(s.count(letter))


@register
class Copy(SkillTask):
    name, verb, pattern = "skill-copy", "copy", f"[{LETTERS}]+"
    description = "copy a string"

    def make(self, rng: random.Random, difficulty: int) -> str:
        return _letters(rng, difficulty)

    def compute(self, text: str) -> str:
        return text


@register
class Reverse(SkillTask):
    name, verb, pattern = "skill-reverse", "reverse", f"[{LETTERS}]+"
    description = "reverse a string"

    def make(self, rng: random.Random, difficulty: int) -> str:
        return _letters(rng, difficulty)

    def compute(self, text: str) -> str:
        return text[::-1]


@register
class Sort(SkillTask):
    name, verb, pattern = "skill-sort", "sort", f"[{LETTERS}]+"
    description = "sort the letters of a string"

    def make(self, rng: random.Random, difficulty: int) -> str:
        return _letters(rng, difficulty)

    def compute(self, text: str) -> str:
        return "".join(sorted(text))


@register
class Order(Sort):
    name, verb = "skill-order", "order"
    description = "sort the letters of a string, under another verb (the transfer exam's positive control)"


@register
class Add(SkillTask):
    name, verb, pattern = "skill-add", "add", r"\d+\+\d+"
    description = "add two numbers"

    def make(self, rng: random.Random, difficulty: int) -> str:
        return f"{_number(rng, difficulty)}+{_number(rng, difficulty)}"

    def compute(self, text: str) -> str:
        a, b = text.split("+")
        return str(int(a) + int(b))


@register
class Compare(SkillTask):
    name, verb, pattern = "skill-compare", "compare", r"\d+\?\d+"
    description = "compare two numbers: <, = or >"

    def make(self, rng: random.Random, difficulty: int) -> str:
        a = _number(rng, difficulty)
        b = a if rng.random() < 0.1 else _number(rng, difficulty)
        return f"{a}?{b}"

    def compute(self, text: str) -> str:
        a, b = (int(v) for v in text.split("?"))
        return "<" if a < b else ">" if a > b else "="


MOVES = {"U": (0, -1), "D": (0, 1), "L": (-1, 0), "R": (1, 0)}


@register
class Grid(SkillTask):
    name, verb, pattern = "skill-grid", "grid", r"[1-9]x[1-9] [UDLR]+"
    description = "walk a W x H grid from (0,0) by moves U/D/L/R; the final x,y"

    def make(self, rng: random.Random, difficulty: int) -> str:
        w, h = (rng.randint(2, 4), rng.randint(2, 4)) if difficulty == 1 else (rng.randint(3, 6), rng.randint(3, 6))
        n = rng.randint(3, 6) if difficulty == 1 else rng.randint(6, 9)
        x = y = 0
        moves = []
        while len(moves) < n:  # only moves that stay inside the grid
            m = rng.choice("UDLR")
            nx, ny = x + MOVES[m][0], y + MOVES[m][1]
            if 0 <= nx < w and 0 <= ny < h:
                moves.append(m)
                x, y = nx, ny
        return f"{w}x{h} {''.join(moves)}"

    def compute(self, text: str) -> str:
        size, moves = text.split(" ")
        w, h = (int(v) for v in size.split("x"))
        x = y = 0
        for m in moves:  # a move that would leave the grid is blocked by its wall
            x = min(max(x + MOVES[m][0], 0), w - 1)
            y = min(max(y + MOVES[m][1], 0), h - 1)
        return f"{x},{y}"
