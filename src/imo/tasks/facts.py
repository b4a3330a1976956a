"""A generated fact base: entities with attributes, written as text, and questions about facts
that exist and facts that do not, whose right answer is the stated default `unknown`.

Every entity (a made-up four-letter name) has each attribute with probability `p_present`.
The pairs are split three ways, by a seeded shuffle:

  * present:        stated as `<entity> <attribute>: <value>`  (true-positive questions);
  * absent, taught: stated as `<entity> <attribute>: unknown`  (so the default is learned);
  * absent, held:   never written anywhere in the training text (true-negative questions).

A question is the line without its answer: `bora color:` -> `red` or `unknown`.

    base = FactBase.generate(seed=0, n_entities=40)
    text = base.training_text()           # the present and taught-absent lines, shuffled
    positives, negatives = base.questions()

The registered task `facts` asks the same question in context: the prompt holds a small fact
base, then the question.
"""

import random
from dataclasses import dataclass

from imo.errors import ConfigError
from imo.tasks import Problem, Task, register

UNKNOWN = "unknown"
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "black", "white", "gold", "pink", "gray"),
    "city": ("oslo", "lima", "rome", "kyiv", "baku", "doha", "riga", "nice"),
    "pet": ("cat", "dog", "owl", "fox", "eel", "yak", "bat", "ant"),
    "food": ("rice", "soup", "figs", "corn", "eggs", "plum", "tofu", "kale"),
    "sport": ("golf", "judo", "polo", "ski", "swim", "row", "box", "run"),
}
CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"


def entity_names(rng: random.Random, n: int) -> list[str]:
    """n distinct four-letter names (consonant-vowel twice), so none is a prefix of another."""
    if n > (len(CONSONANTS) * len(VOWELS)) ** 2:
        raise ConfigError(f"at most {(len(CONSONANTS) * len(VOWELS)) ** 2} entities, got {n}")
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(2)))
    return sorted(names)


def question(entity: str, attribute: str) -> str:
    return f"{entity} {attribute}:"


def statement(entity: str, attribute: str, value: str) -> str:
    return f"{question(entity, attribute)} {value}"


@dataclass(frozen=True)
class FactBase:
    present: dict[tuple[str, str], str]  # (entity, attribute) -> value
    taught_absent: frozenset[tuple[str, str]]  # absent, stated as "unknown" in training
    held_absent: frozenset[tuple[str, str]]  # absent, never written in training
    seed: int

    @classmethod
    def generate(cls, seed: int, n_entities: int = 40, p_present: float = 0.5,
                 taught_fraction: float = 0.5) -> "FactBase":
        if n_entities < 2:
            raise ConfigError(f"a fact base needs at least 2 entities, got {n_entities}")
        if not (0 < p_present < 1 and 0 < taught_fraction < 1):
            raise ConfigError("p_present and taught_fraction must be in (0, 1)")
        rng = random.Random(f"facts/{seed}")
        present, absent = {}, []
        for e in entity_names(rng, n_entities):
            for a, values in ATTRIBUTES.items():
                if rng.random() < p_present:
                    present[(e, a)] = rng.choice(values)
                else:
                    absent.append((e, a))
        rng.shuffle(absent)
        n_taught = round(len(absent) * taught_fraction)
        return cls(present, frozenset(absent[:n_taught]), frozenset(absent[n_taught:]), seed)

    def training_lines(self) -> list[str]:
        # sorted before the seeded shuffle: a frozenset's order changes with PYTHONHASHSEED
        lines = [statement(e, a, v) for (e, a), v in sorted(self.present.items())]
        lines += [statement(e, a, UNKNOWN) for e, a in sorted(self.taught_absent)]
        random.Random(f"facts/{self.seed}/order").shuffle(lines)
        return lines

    def training_text(self) -> str:
        return "\n".join(self.training_lines()) + "\n"

    def questions(self) -> tuple[list[Problem], list[Problem]]:
        """(questions about present facts, questions about held-out absent facts), sorted."""
        pos = [Problem("facts", 1, question(e, a), v, v, key=question(e, a), meta={"present": True})
               for (e, a), v in sorted(self.present.items())]
        neg = [Problem("facts", 1, question(e, a), UNKNOWN, UNKNOWN, key=question(e, a),
                       meta={"present": False}) for e, a in sorted(self.held_absent)]
        return pos, neg


@register
class Facts(Task):
    """In-context version: a few stated facts, then a question about one of them or a missing one."""

    name = "facts"
    description = "answer from a stated fact base; missing facts are 'unknown'"
    difficulties = (1, 2)

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        self.check_difficulty(difficulty)
        base = FactBase.generate(rng.randrange(10**9), n_entities=2 * difficulty)
        lines = base.training_lines()
        pairs = sorted(base.present) + sorted(base.held_absent)
        e, a = rng.choice(pairs)
        ans = base.present.get((e, a), UNKNOWN)
        prompt = "; ".join(lines) + f"; {question(e, a)}"
        return Problem(self.name, difficulty, prompt, ans, ans, key=prompt, meta={"present": ans != UNKNOWN})
