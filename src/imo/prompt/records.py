"""The delimited record format: one definition read by both the prompt text and the parser.

The user's notes ("LLM is very TALKY") ask a model to write each item on its own line as
`("kind"{tuple_delimiter}<p1>{tuple_delimiter}<p2>{record_delimiter})`, between a start and an end
delimiter, so the answer can be cut out of whatever the model says around it. GraphRAG's
extraction prompts do the same and parse with a function that skips what it cannot read; here the
parser is total: for any string it returns the records it could read and one error per piece it
could not, and it never raises (tests/prompt/test_records.py feeds it garbled model output).

    fmt = RecordFormat(); text = fmt.instruction("field", ["key", "value"])
    result = fmt.parse(model_output)   # result.records, result.errors
"""

from __future__ import annotations

from dataclasses import dataclass, field

_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


@dataclass(frozen=True)
class Record:
    kind: str
    values: tuple[str, ...]


@dataclass
class ParseResult:
    records: list[Record] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: bool = False  # the start delimiter was found
    ended: bool = False  # the end delimiter was found after it
    outside: str = ""  # text before the start and after the end delimiter ("talk")

    def of_kind(self, kind: str) -> list[Record]:
        return [r for r in self.records if r.kind == kind]


@dataclass(frozen=True)
class RecordFormat:
    """Delimiters. The defaults are GraphRAG's `<|>` and `##`, with explicit start/end markers."""

    tuple_delimiter: str = "<|>"
    record_delimiter: str = "##"
    start_delimiter: str = "<|START|>"
    end_delimiter: str = "<|END|>"

    def __post_init__(self) -> None:
        marks = [self.tuple_delimiter, self.record_delimiter, self.start_delimiter, self.end_delimiter]
        if not all(marks) or len(set(marks)) != 4:
            raise ValueError("the four delimiters must be distinct non-empty strings")

    # -- writing -----------------------------------------------------------------------------
    def format_record(self, kind: str, values: list[str] | tuple[str, ...]) -> str:
        parts = [f'"{kind}"', *(str(v) for v in values)]
        return "(" + self.tuple_delimiter.join(parts) + ")" + self.record_delimiter

    def format(self, records: list[Record]) -> str:
        """The text a perfect answer would be (the parser reads it back exactly)."""
        body = "\n".join(self.format_record(r.kind, r.values) for r in records)
        return f"{self.start_delimiter}\n{body}\n{self.end_delimiter}"

    def instruction(self, kind: str, slots: list[str]) -> str:
        """The prompt's description of the format, built from the same delimiters as the parser."""
        template = self.format_record(kind, [f"<{s}>" for s in slots])
        return (f"Format each {kind} on a new line as {template}\n"
                f"Write {self.start_delimiter} before the first line and {self.end_delimiter} after the last.")

    # -- reading -----------------------------------------------------------------------------
    def parse(self, text: object) -> ParseResult:
        """Every record that can be read from `text`, and an error for each piece that cannot."""
        out = ParseResult()
        if not isinstance(text, str):
            out.errors.append(f"expected text, got {type(text).__name__}")
            return out
        body = text
        start = text.find(self.start_delimiter)
        if start >= 0:
            out.started = True
            body = text[start + len(self.start_delimiter):]
            end = body.find(self.end_delimiter)
            if end >= 0:
                out.ended = True
                out.outside = (text[:start] + body[end + len(self.end_delimiter):]).strip()
                body = body[:end]
            else:
                out.outside = text[:start].strip()
                out.errors.append(f"no {self.end_delimiter} after {self.start_delimiter}")
        else:
            out.errors.append(f"no {self.start_delimiter}; reading the whole text")
        # A record ends at the record delimiter or at a new line (models often drop the delimiter).
        for piece in body.replace(self.record_delimiter, "\n").split("\n"):
            piece = piece.strip()
            if not piece:
                continue
            rec = self._record(piece)
            if isinstance(rec, Record):
                out.records.append(rec)
            else:
                out.errors.append(rec)
        return out

    def _record(self, piece: str) -> Record | str:
        shown = piece if len(piece) <= 60 else piece[:57] + "..."
        if not (piece.startswith("(") and piece.endswith(")")):
            return f"not a record (no enclosing parentheses): {shown!r}"
        parts = [p.strip() for p in piece[1:-1].split(self.tuple_delimiter)]
        kind = parts[0].strip(_QUOTES).strip()
        if not kind:
            return f"record without a kind: {shown!r}"
        if len(parts) < 2:
            return f"record without values: {shown!r}"
        return Record(kind, tuple(p.strip(_QUOTES).strip() if _quoted(p) else p for p in parts[1:]))


def _quoted(s: str) -> bool:
    return len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES
