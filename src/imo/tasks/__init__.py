"""Generated tasks with exact checkers, in one registry shared by the reasoning search
(`imo.reason`) and the exams (`imo.exams`).

A task makes problems from a seeded `random.Random` at a difficulty (an integer knob) and checks an answer
exactly. Each module of this package registers its tasks on import; `get(name)` imports them all.

    task = get("add")
    p = task.generate(random.Random(0), difficulty=1)
    p.prompt, p.solution, p.answer       # what the model sees, a worked solution, the final answer
    task.check(p, p.answer)              # True
    train, test = split(task, difficulty=1, n_train=2000, n_test=200, seed=0)   # no problem shared
"""

import importlib
import pkgutil
import random
from dataclasses import dataclass, field
from typing import Any

from imo.errors import ConfigError
from imo.registry import Registry

TASKS: Registry = Registry("task")


@dataclass(frozen=True)
class Problem:
    """One generated problem. `prompt` is the text given to the model, `solution` a worked
    solution (steps, where the task has them) that ends with the final answer, `answer` the
    canonical final answer; `key` identifies the problem (train/test splits never share one)."""

    task: str
    difficulty: int
    prompt: str
    answer: str
    solution: str
    key: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


class Task:
    """Base class: subclasses set `name`, `difficulties` and `description` and implement `generate`
    and `check`. `check(problem, output)` judges a model's final answer (already extracted by
    `extract`, which by default takes the text up to the first newline)."""

    name: str = ""
    description: str = ""
    difficulties: tuple[int, ...] = (1,)
    held_out: tuple[int, ...] = ()  # harder difficulties kept for scoring only (no training on them)

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        raise NotImplementedError

    def check(self, problem: Problem, answer: str) -> bool:
        return answer.strip() == problem.answer

    def extract(self, output: str) -> str:
        """The final answer in a model's output (the first line, stripped)."""
        return output.split("\n", 1)[0].strip()

    def check_difficulty(self, difficulty: int) -> None:
        if difficulty not in self.difficulties:
            raise ConfigError(
                f"task {self.name!r} has no difficulty {difficulty}; choose one of: "
                + ", ".join(map(str, self.difficulties))
            )


def register(task_cls: type[Task]) -> type[Task]:
    """Class decorator: register one instance of the task under its `name`."""
    TASKS.register(task_cls.name)(task_cls())
    return task_cls


_loaded = False


def load_all() -> None:
    """Import every task module of this package (each registers its tasks)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__, __name__ + "."):
        if not mod.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(mod.name)


def get(name: str) -> Task:
    load_all()
    return TASKS.get(name)


def names() -> list[str]:
    load_all()
    return TASKS.names()


def split(task: Task, difficulty: int, n_train: int, n_test: int, seed: int,
          max_tries: int = 50) -> tuple[list[Problem], list[Problem]]:
    """`n_train` and `n_test` distinct problems with no key in both: the test set is drawn first
    from its own stream, then training problems that collide with a test key are skipped.
    Raises ConfigError when the difficulty has too few distinct problems for the sizes asked."""
    task.check_difficulty(difficulty)
    test_rng, train_rng = random.Random(f"{seed}/test"), random.Random(f"{seed}/train")
    test: dict[str, Problem] = {}
    for _ in range(max_tries * max(n_test, 1)):
        if len(test) >= n_test:
            break
        p = task.generate(test_rng, difficulty)
        test.setdefault(p.key, p)
    train: dict[str, Problem] = {}
    for _ in range(max_tries * max(n_train, 1)):
        if len(train) >= n_train:
            break
        p = task.generate(train_rng, difficulty)
        if p.key not in test:
            train.setdefault(p.key, p)
    if len(test) < n_test or len(train) < n_train:
        raise ConfigError(
            f"task {task.name!r} difficulty {difficulty} has too few distinct problems for "
            f"{n_train} training + {n_test} test problems; ask for fewer"
        )
    return list(train.values()), list(test.values())
