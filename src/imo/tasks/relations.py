"""A relational layer over the true-negatives fact base, and altered queries about it.

`imo.tasks.facts.FactBase` gives each entity some attributes (`bora color: red`). This module adds
one relation, `friend`, a seeded derangement of the entities (every entity has exactly one friend,
nobody is their own, and nobody is the friend of two), so that the relation can be read both ways:

    bora friend: kemi                 (stated in training, for every entity)

and asks three kinds of *altered* question, each needing a stored fact plus an operation on it:

  * negation       `not blue? bora color:` -> `red yes` (its color is red, so "not blue" holds),
                   `not red? bora color:` -> `red no`: one true and one false premise per present fact;
  * swapped roles  `kemi friend of:` -> `bora` (the relation read backwards);
  * two hops       `pet of friend? bora friend:` -> `kemi pet: owl` (the friend, then the friend's
                   pet; only where the friend has one).

Negations and two hops are answered with their worked step written out, the recalled value or the
intermediate entity, and the whole answer must be right. The prompt of each ends the way a stored
line begins (`bora color:`, `bora friend:`, `kemi pet:` inside the answer), so that the model can
read the fact where it stored it and spend its work on the operation: a small model asked
`bora color not blue?` in one go has to find the fact at a position where it never stored it,
and does not generalise (a 2 x 64 pilot stayed at chance on the held entities).

The entities are split in two by a seeded shuffle. For the `shown` half, the altered questions and
their answers are part of the training text, so that the model can learn what each operation
means; for the `held` half, only the plain facts are. The exam asks the held half's altered
questions (never seen in any form) beside plain recall of the same entities' facts.

    rel = Relations.generate(FactBase.generate(seed=0, n_entities=40))
    lines = rel.training_lines()        # facts, friend lines, the shown half's altered questions
    tests = rel.tests()                 # {"recall": [...], "negation": [...], "swapped": [...], "two-hop": [...]}
"""

import random
from dataclasses import dataclass

from imo.errors import ConfigError
from imo.tasks import Problem
from imo.tasks.facts import ATTRIBUTES, FactBase, question, statement

FORMS = ("negation", "swapped", "two-hop")  # the altered questions
CHANCE = {"recall": 0.0, "negation": 0.0, "swapped": 0.0, "two-hop": 0.0}  # whole answers: no guessing
RELATION, INVERSE = "friend", "friend of"
YES, NO = "yes", "no"


def negation_question(entity: str, attribute: str, value: str) -> str:
    return f"not {value}? {question(entity, attribute)}"


def two_hop_question(entity: str, attribute: str) -> str:
    return f"{attribute} of {RELATION}? {question(entity, RELATION)}"


def derangement(rng: random.Random, items: list[str]) -> dict[str, str]:
    """A random permutation of `items` with no fixed point, as a dict item -> image."""
    if len(items) < 2:
        raise ConfigError(f"a relation needs at least 2 entities, got {len(items)}")
    while True:
        image = items[:]
        rng.shuffle(image)
        if all(a != b for a, b in zip(items, image, strict=True)):
            return dict(zip(items, image, strict=True))


@dataclass(frozen=True)
class Relations:
    base: FactBase
    friend: dict[str, str]  # entity -> its friend (a derangement)
    shown: frozenset[str]  # entities whose altered questions are in the training text
    held: frozenset[str]  # entities asked altered questions at test time only
    seed: int

    @classmethod
    def generate(cls, base: FactBase, shown_fraction: float = 0.5) -> "Relations":
        if not 0 < shown_fraction < 1:
            raise ConfigError(f"shown_fraction must be in (0, 1), got {shown_fraction}")
        entities = sorted({e for e, _ in base.present} | {e for e, _ in base.taught_absent}
                          | {e for e, _ in base.held_absent})
        rng = random.Random(f"relations/{base.seed}")
        friend = derangement(rng, entities)
        order = entities[:]
        rng.shuffle(order)
        n_shown = max(1, min(len(order) - 1, round(len(order) * shown_fraction)))
        return cls(base, friend, frozenset(order[:n_shown]), frozenset(order[n_shown:]), base.seed)

    def _wrong_value(self, entity: str, attribute: str, value: str) -> str:
        """A seeded value of `attribute` other than `value` (the false premise of a `yes` question)."""
        rng = random.Random(f"relations/{self.seed}/{entity}/{attribute}")
        return rng.choice([v for v in ATTRIBUTES[attribute] if v != value])

    def altered(self, entities: frozenset[str]) -> dict[str, list[Problem]]:
        """The altered questions about `entities`, by form, sorted."""
        out: dict[str, list[Problem]] = {f: [] for f in FORMS}
        inverse = {b: a for a, b in self.friend.items()}
        for (e, a), v in sorted(self.base.present.items()):
            if e not in entities:
                continue
            for w, verdict in ((v, NO), (self._wrong_value(e, a, v), YES)):
                q, ans = negation_question(e, a, w), f"{v} {verdict}"
                out["negation"].append(Problem("relations", 1, q, ans, ans, key=q, meta={"form": "negation"}))
        for b in sorted(entities):
            q = question(b, INVERSE)
            out["swapped"].append(Problem("relations", 1, q, inverse[b], inverse[b], key=q, meta={"form": "swapped"}))
        for e in sorted(entities):
            for a in ATTRIBUTES:
                f = self.friend[e]
                v = self.base.present.get((f, a))
                if v is not None:
                    q = two_hop_question(e, a)
                    ans = f"{f} {statement(f, a, v).split(' ', 1)[1]}"  # "kemi pet: owl"
                    out["two-hop"].append(Problem("relations", 1, q, ans, ans, key=q, meta={"form": "two-hop"}))
        return out

    def recall(self, entities: frozenset[str]) -> list[Problem]:
        """Plain recall of the stored facts of `entities`: their present attributes and their friend."""
        out = [Problem("relations", 1, question(e, a), v, v, key=question(e, a), meta={"form": "recall"})
               for (e, a), v in sorted(self.base.present.items()) if e in entities]
        out += [Problem("relations", 1, question(e, RELATION), self.friend[e], self.friend[e],
                        key=question(e, RELATION), meta={"form": "recall"}) for e in sorted(entities)]
        return out

    def training_lines(self) -> list[str]:
        """The fact base's lines, every friend line, and the shown half's altered questions with
        their answers, in one seeded order."""
        lines = list(self.base.training_lines())
        lines += [statement(e, RELATION, f) for e, f in sorted(self.friend.items())]
        for problems in self.altered(self.shown).values():
            lines += [f"{p.prompt} {p.answer}" for p in problems]
        random.Random(f"relations/{self.seed}/order").shuffle(lines)
        return lines

    def tests(self) -> dict[str, list[Problem]]:
        """What the exam asks: recall of the held entities' facts, and their altered questions."""
        return {"recall": self.recall(self.held), **self.altered(self.held)}
