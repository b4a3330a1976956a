"""Generated extraction tasks with exact ground truth: short prose records of people, products and
events, where some fields are stated and some are absent (the true negatives of the notes' "True
Negative is SO HARD for LLM"), with distractors (another entity's values, sometimes for a field the
subject lacks) and, in the `abbrev` split, planted abbreviations ("34 y/o", "mgr", "Mar.").

Names, places and companies are invented syllables, so no item needs world knowledge: every true
value is written in the text (in `abbrev`, written abbreviated; the truth is the expansion).
Items are a pure function of (split, seed, index): the same call gives the same items anywhere.

    items = generate("plain", n=50, seed=0)   # items[0].text, items[0].truth {"age": 34, "city": None, ...}
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from imo.prompt.builder import Example, FieldSpec

SPLITS = ("plain", "abbrev")

FIELDS: dict[str, list[FieldSpec]] = {
    "person": [
        FieldSpec("age", "integer", "age in years", -1),
        FieldSpec("city", "string", "the city they live in", "unknown"),
        FieldSpec("occupation", "string", "their job", "unknown"),
        FieldSpec("employer", "string", "the company they work for", "unknown"),
    ],
    "product": [
        FieldSpec("price", "number", "price in dollars", -1),
        FieldSpec("color", "string", "its colour", "unknown"),
        FieldSpec("maker", "string", "the company that makes it", "unknown"),
        FieldSpec("weight_kg", "number", "weight in kilograms", -1),
    ],
    "event": [
        FieldSpec("month", "string", "the month it takes place, in full", "unknown"),
        FieldSpec("city", "string", "the city it takes place in", "unknown"),
        FieldSpec("attendees", "integer", "how many people attend", -1),
        FieldSpec("organizer", "string", "the company that organises it", "unknown"),
    ],
}

_SYL = ["ka", "lo", "mi", "ren", "to", "va", "sel", "dor", "pa", "ni", "bru", "tek", "os", "fa", "li",
        "mar", "zu", "em", "ko", "rin", "ta", "ve", "sa", "nor"]
_COLORS = ["red", "blue", "green", "black", "white", "yellow", "grey", "orange", "purple", "brown"]
_JOBS = ["teacher", "baker", "nurse", "pilot", "farmer", "painter", "driver", "chemist", "tailor", "writer"]
# (truth, abbreviated form in the text) for the abbrev split
_JOBS_ABBR = [("manager", "mgr"), ("chief executive officer", "CEO"), ("chief technology officer", "CTO"),
              ("engineer", "eng.")]
_MONTHS = [("January", "Jan."), ("February", "Feb."), ("March", "Mar."), ("April", "Apr."), ("June", "Jun."),
           ("July", "Jul."), ("August", "Aug."), ("September", "Sept."), ("October", "Oct."),
           ("November", "Nov."), ("December", "Dec.")]
_KIND_NOUN = {"person": "person", "product": "product", "event": "event"}


def _word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYL) for _ in range(parts)).capitalize()


def _company(rng: random.Random) -> str:
    return f"{_word(rng, 2)} {rng.choice(['Labs', 'Works', 'Group', 'Systems', 'Foods'])}"


def _values(kind: str, rng: random.Random, abbrev: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """True values and how each is written in the text."""
    v: dict[str, Any] = {}
    w: dict[str, str] = {}
    if kind == "person":
        v["age"] = rng.randint(19, 88)
        v["city"] = _word(rng, 2) + rng.choice(["holm", "ton", "vik", "berg"])
        if abbrev and rng.random() < 0.7:
            v["occupation"], w["occupation"] = rng.choice(_JOBS_ABBR)
        else:
            v["occupation"] = rng.choice(_JOBS)
        v["employer"] = _company(rng)
        w["age"] = f"{v['age']} y/o" if abbrev else f"{v['age']} years old"
    elif kind == "product":
        v["price"] = round(rng.randint(100, 99999) / 100, 2)
        v["color"] = rng.choice(_COLORS)
        v["maker"] = _company(rng)
        v["weight_kg"] = round(rng.randint(1, 400) / 10, 1)
        w["weight_kg"] = f"{v['weight_kg']} kg" if abbrev else f"{v['weight_kg']} kilograms"
    else:
        month, short = rng.choice(_MONTHS)
        v["month"], w["month"] = month, (short if abbrev else month)
        v["city"] = _word(rng, 2) + rng.choice(["holm", "ton", "vik", "berg"])
        v["attendees"] = rng.randint(20, 5000)
        v["organizer"] = _company(rng)
        if abbrev:
            w["attendees"] = f"approx. {v['attendees']}"
    for k, x in v.items():
        w.setdefault(k, str(x))
    return v, w


_SENTENCES = {
    ("person", "age"): "{s} is {x}.",
    ("person", "city"): "{s} lives in {x}.",
    ("person", "occupation"): "{s} works as a {x}.",
    ("person", "employer"): "{s} is employed by {x}.",
    ("product", "price"): "The {s} sells for {x} dollars.",
    ("product", "color"): "The {s} comes in {x}.",
    ("product", "maker"): "The {s} is made by {x}.",
    ("product", "weight_kg"): "The {s} weighs {x}.",
    ("event", "month"): "{s} is held in {x}.",
    ("event", "city"): "{s} takes place in {x}.",
    ("event", "attendees"): "{s} draws {x} visitors.",
    ("event", "organizer"): "{s} is organised by {x}.",
}
_INTRO = {"person": "This is a note about {s}.", "product": "A catalogue entry for the {s}.",
          "event": "An announcement for {s}."}
_DISTRACTOR_LINK = {"person": "{s} has a colleague, {d}.", "product": "A rival product is the {d}.",
                    "event": "A different event is {d}."}


@dataclass
class Item:
    id: str
    split: str
    kind: str
    subject: str
    text: str
    truth: dict[str, Any]  # field -> true value, or None when the text does not give it
    abbreviations: list[str] = field(default_factory=list)  # abbreviated forms planted in the text
    distractor_fields: list[str] = field(default_factory=list)  # fields the distractor states

    @property
    def fields(self) -> list[FieldSpec]:
        return FIELDS[self.kind]

    def example(self) -> Example:
        return Example({"text": self.text}, subject_phrase(self.kind, self.subject), dict(self.truth))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Item:
        return cls(**d)


def subject_phrase(kind: str, subject: str) -> str:
    return subject if kind == "event" else f"the {_KIND_NOUN[kind]} {subject}"


def _name(kind: str, rng: random.Random) -> str:
    if kind == "person":
        return f"{_word(rng, 2)} {_word(rng, 2)}"
    if kind == "product":
        return f"{_word(rng, 2)} {rng.randint(2, 9)}00"
    return f"the {_word(rng, 2)} {rng.choice(['Fair', 'Summit', 'Festival', 'Expo'])}"


def make_item(split: str, seed: int, index: int) -> Item:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    rng = random.Random(f"imo.prompt.tasks:{split}:{seed}:{index}")  # str seeds hash stably (sha512)
    kind = rng.choice(list(FIELDS))
    abbrev = split == "abbrev"
    names = [f.name for f in FIELDS[kind]]
    subject = _name(kind, rng)
    values, written = _values(kind, rng, abbrev)
    present = [n for n in names if rng.random() < 0.6] or [rng.choice(names)]
    truth = {n: (values[n] if n in present else None) for n in names}
    lines = [_SENTENCES[kind, n].format(s=_cap(subject), x=written[n]) for n in present]
    rng.shuffle(lines)
    distractor_fields: list[str] = []
    if rng.random() < 0.6:
        other = _name(kind, rng)
        while other == subject:
            other = _name(kind, rng)
        d_values, d_written = _values(kind, rng, abbrev)
        absent = [n for n in names if n not in present]
        # the hard true negative: the other entity states a field the subject lacks
        distractor_fields = [rng.choice(absent)] if absent and rng.random() < 0.7 else []
        distractor_fields += [n for n in rng.sample(names, 1) if n not in distractor_fields]
        d_lines = [_DISTRACTOR_LINK[kind].format(s=_cap(subject), d=other)]
        d_lines += [_SENTENCES[kind, n].format(s=_cap(other), x=d_written[n]) for n in distractor_fields]
        at = rng.randint(0, len(lines))
        lines[at:at] = d_lines
        planted = [d_written[n] for n in distractor_fields if abbrev and d_written[n] != str(d_values[n])]
    else:
        planted = []
    text = " ".join([_INTRO[kind].format(s=subject), *lines])
    planted += [written[n] for n in present if abbrev and written[n] != str(values[n])]
    return Item(id=f"{split}-{seed}-{index}", split=split, kind=kind, subject=subject, text=text,
                truth=truth, abbreviations=planted, distractor_fields=distractor_fields)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def generate(split: str, n: int, seed: int = 0, start: int = 0) -> list[Item]:
    """Items start..start+n-1 of a split. Few-shot examples use another seed than the questions."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [make_item(split, seed, i) for i in range(start, start + n)]


def shots_for(item: Item, k: int, seed: int) -> list[Example]:
    """k worked examples of the same kind as `item`, drawn from a separate seed (never a question)."""
    out: list[Example] = []
    i = 0
    while len(out) < k and i < 1000:
        cand = make_item(item.split, seed + 1_000_003, i)
        if cand.kind == item.kind:
            out.append(cand.example())
        i += 1
    return out
