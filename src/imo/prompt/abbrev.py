"""Abbreviations: a table that can be extended, an expander, and a detector.

The user's notes: "AI sucks at Abbreviation, expand all abbreviation before understanding task."
`expand` rewrites every abbreviation the table knows (whole words only, case kept as written in
the table); `detect` finds the known ones and also the tokens that look like abbreviations but are
not in the table (all-capital words, words with inner or trailing dots), so a user can see what
the table misses.

    table = AbbreviationTable.default().extended({"WFH": "working from home"})
    table.expand("Dr. Ito, approx. 40 yrs old")  # "Doctor Ito, approximately 40 years old"
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Abbreviations used by the generated tasks (imo.prompt.tasks) and common in records of
# people, products and events. Keys are matched case-sensitively as whole tokens.
DEFAULT: dict[str, str] = {
    "Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Prof.": "Professor",
    "yrs": "years", "yr": "year", "y/o": "years old", "approx.": "approximately",
    "St.": "Street", "Ave.": "Avenue", "Rd.": "Road", "Apt.": "Apartment",
    "Jan.": "January", "Feb.": "February", "Mar.": "March", "Apr.": "April", "Jun.": "June",
    "Jul.": "July", "Aug.": "August", "Sep.": "September", "Sept.": "September", "Oct.": "October",
    "Nov.": "November", "Dec.": "December",
    "kg": "kilograms", "cm": "centimetres", "km": "kilometres", "hrs": "hours", "min.": "minutes",
    "qty": "quantity", "pcs": "pieces", "no.": "number", "No.": "number", "dept.": "department",
    "mgr": "manager", "eng.": "engineer", "tel.": "telephone", "b.": "born", "est.": "established",
    "w/": "with", "w/o": "without", "e.g.": "for example", "i.e.": "that is", "etc.": "and so on",
    "CEO": "chief executive officer", "CTO": "chief technology officer", "HQ": "headquarters",
    "ETA": "estimated time of arrival", "TBD": "to be decided", "N/A": "not available",
    "approx": "approximately", "incl.": "including", "excl.": "excluding", "wt.": "weight",
}

# A token: letters, digits and the marks abbreviations use (dots, slashes), not starting with a mark.
_TOKEN = re.compile(r"(?<![\w/.])[A-Za-z][\w]*(?:[./][\w]*)*\.?")
_LOOKS_ABBREVIATED = re.compile(r"^(?:[A-Z]{2,6}s?|[A-Za-z]{1,5}\.|(?:[A-Za-z]\.){2,}|[A-Za-z]{1,3}/[A-Za-z]{0,3})$")
# Short words that are not abbreviations although they match the shapes above.
_NOT_ABBREVIATED = {"I", "A", "OK", "It.", "is.", "was.", "the.", "here.", "there.", "now.", "too."}


def _continues(text: str, end: int) -> bool:
    """The sentence goes on after position `end`: the next visible character is lower case, a
    digit or a comma ("approx. 40", "Corp., the")."""
    rest = text[end:].lstrip()
    return bool(rest) and (rest[0].islower() or rest[0].isdigit() or rest[0] in ",;")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str
    expansion: str | None  # None: looks like an abbreviation but is not in the table


@dataclass
class AbbreviationTable:
    table: dict[str, str] = field(default_factory=dict)

    @classmethod
    def default(cls) -> AbbreviationTable:
        return cls(dict(DEFAULT))

    def extended(self, more: dict[str, str]) -> AbbreviationTable:
        """A new table with `more` added (a key already present takes the new expansion)."""
        bad = [k for k, v in more.items() if not isinstance(k, str) or not k.strip() or not isinstance(v, str)]
        if bad:
            raise ValueError(f"abbreviations must map non-empty strings to strings; bad keys: {bad[:3]}")
        return AbbreviationTable({**self.table, **more})

    def _pattern(self) -> re.Pattern | None:
        if not self.table:
            return None
        # Longest first, so "w/o" wins over "w/" and "Sept." over "Sep."; a key is a whole token:
        # not preceded or followed by a word character (a key ending in "." may end a sentence).
        keys = sorted(self.table, key=len, reverse=True)
        alts = "|".join(re.escape(k) + (r"" if not k[-1].isalnum() else r"(?!\w)") for k in keys)
        return re.compile(rf"(?<![\w/.])(?:{alts})")

    def detect(self, text: str) -> list[Span]:
        """Known abbreviations (with their expansion) and unknown look-alikes, in text order."""
        spans: list[Span] = []
        taken = []
        pattern = self._pattern()
        if pattern is not None:
            for m in pattern.finditer(text):
                spans.append(Span(m.start(), m.end(), m.group(), self.table[m.group()]))
                taken.append((m.start(), m.end()))
        for m in _TOKEN.finditer(text):
            tok, end = m.group(), m.end()
            if tok.endswith(".") and tok[:-1].isupper() and "." not in tok[:-1]:
                tok, end = tok[:-1], end - 1  # "WFH." ends a sentence: the abbreviation is "WFH"
            if any(a < end and m.start() < b for a, b in taken):
                continue
            if tok in _NOT_ABBREVIATED or not _LOOKS_ABBREVIATED.match(tok):
                continue
            if tok.endswith(".") and tok[:-1].isalpha() and not _continues(text, end):
                continue  # "word." before a capital or the end is most often a sentence's end
            spans.append(Span(m.start(), end, tok, None))
        return sorted(spans, key=lambda s: s.start)

    def expand(self, text: str) -> str:
        """`text` with every known abbreviation replaced by its expansion."""
        pattern = self._pattern()
        if pattern is None:
            return text
        return pattern.sub(lambda m: self.table[m.group()], text)

    def unknown(self, text: str) -> list[str]:
        """Look-alikes the table does not know, each once, in order of first appearance."""
        return list(dict.fromkeys(s.text for s in self.detect(text) if s.expansion is None))
