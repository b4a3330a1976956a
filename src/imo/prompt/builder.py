"""A prompt builder in the order of the user's notes ("Prompt Order"):

1. Context: JSON rather than loose prose ("LLM prefer Json, Array to let LLM understand
   relationship"), `json.dumps(..., indent=4)` for readability, and a text section splitter.
2. Instruction: what to extract, no script of steps; "Please respond **strictly** in the following
   JSON format, without additional keys or text:"; the expected value and the type of each key
   ("Always return a json dictionary, define key, value is type"); and, for extraction, the default
   to use when the context has no information, with "do not make any assumptions".

Every piece is a knob of `PromptSpec`, so the A/B harness (imo.prompt.ab) can turn one off at a
time: `order`, `defaults`, `strict`, `types`, `json_context`, `expand` (abbreviations first),
`answer` ("json" or the delimited "records" of imo.prompt.records) and `shots`.

    messages = build_messages(spec, fields, context={"text": text}, subject="the person Ana Lopa")
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from imo.prompt.abbrev import AbbreviationTable
from imo.prompt.records import RecordFormat

FieldType = Literal["string", "integer", "number", "boolean", "array", "object"]
PY_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list, "object": dict}


@dataclass(frozen=True)
class FieldSpec:
    """One key of the answer: its JSON type, what it holds, and the value meaning "not given"."""

    name: str
    type: FieldType = "string"
    description: str = ""
    default: Any = None

    def __post_init__(self) -> None:
        if self.type not in PY_TYPES:
            raise ValueError(f"field {self.name!r}: type must be one of {sorted(PY_TYPES)}, got {self.type!r}")

    @property
    def python_type(self) -> type:
        return PY_TYPES[self.type]


@dataclass(frozen=True)
class PromptSpec:
    order: Literal["context-first", "instruction-first"] = "context-first"
    defaults: bool = True  # name each key's default and say "do not make any assumptions"
    strict: bool = True  # "respond strictly in the following JSON format, without additional keys or text"
    types: bool = True  # give each key's type and expected value
    json_context: bool = True  # context as json.dumps(indent=4) under a section header; else plain prose
    expand: bool = False  # expand abbreviations in the context before the model reads it
    answer: Literal["json", "records"] = "json"
    shots: int = 0  # worked examples before the question (user/assistant turns)
    splitter: str = "-" * 10  # the text section splitter
    system: str | None = "You extract facts from text."


def json_template(fields: list[FieldSpec], types: bool) -> str:
    """The answer's shape: each key with its type (and expected value) or with a bare placeholder."""
    if types:
        body = {f.name: f"<{f.type}: {f.description}>" if f.description else f"<{f.type}>" for f in fields}
    else:
        body = {f.name: "..." for f in fields}
    return json.dumps(body, indent=4, ensure_ascii=False)


def defaults_text(fields: list[FieldSpec]) -> str:
    lines = [f"- {f.name}: {json.dumps(f.default)}" for f in fields]
    return ("If the context does not state a value, use the default below. "
            "Do not make any assumptions.\n" + "\n".join(lines))


def instruction_text(spec: PromptSpec, fields: list[FieldSpec], subject: str,
                     fmt: RecordFormat | None = None) -> str:
    parts = [f"Extract these facts about {subject} from the context: {', '.join(f.name for f in fields)}."]
    if spec.answer == "json":
        head = ("Please respond strictly in the following JSON format, without additional keys or text:"
                if spec.strict else "Answer in this JSON format:")
        parts.append(head + "\n" + json_template(fields, spec.types))
    else:
        fmt = fmt or RecordFormat()
        parts.append(fmt.instruction("field", ["key", "value"]))
        if spec.types:
            parts.append("Keys and value types: " + ", ".join(f"{f.name} ({f.type})" for f in fields) + ".")
        if spec.strict:
            parts.append("Write nothing else.")
    if spec.defaults:
        parts.append(defaults_text(fields))
    return "\n\n".join(parts)


def context_text(spec: PromptSpec, context: dict[str, Any], table: AbbreviationTable | None = None) -> str:
    if spec.expand:
        table = table or AbbreviationTable.default()
        context = {k: table.expand(v) if isinstance(v, str) else v for k, v in context.items()}
    if spec.json_context:
        return json.dumps(context, indent=4, ensure_ascii=False)
    return "\n".join(str(v) for v in context.values())


def user_text(spec: PromptSpec, fields: list[FieldSpec], context: dict[str, Any], subject: str,
              table: AbbreviationTable | None = None, fmt: RecordFormat | None = None) -> str:
    ctx = context_text(spec, context, table)
    ins = instruction_text(spec, fields, subject, fmt)
    if spec.json_context:
        ctx = f"{spec.splitter}\nContext\n{spec.splitter}\n{ctx}"
        ins = f"{spec.splitter}\nInstruction\n{spec.splitter}\n{ins}"
    pieces = [ctx, ins] if spec.order == "context-first" else [ins, ctx]
    return "\n\n".join(pieces)


def answer_text(spec: PromptSpec, fields: list[FieldSpec], values: dict[str, Any],
                fmt: RecordFormat | None = None) -> str:
    """A perfect answer (for few-shot examples): defaults where `values` has None."""
    full = {f.name: f.default if values.get(f.name) is None else values[f.name] for f in fields}
    if spec.answer == "json":
        return json.dumps(full, ensure_ascii=False)
    from imo.prompt.records import Record

    fmt = fmt or RecordFormat()
    return fmt.format([Record("field", (k, json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v))
                       for k, v in full.items()])


@dataclass
class Example:
    """One question for the builder: its context, its subject and (for shots) its true values."""

    context: dict[str, Any]
    subject: str
    values: dict[str, Any] = field(default_factory=dict)


def build_messages(spec: PromptSpec, fields: list[FieldSpec], question: Example,
                   shots: list[Example] = (), table: AbbreviationTable | None = None,
                   fmt: RecordFormat | None = None) -> list[dict[str, str]]:
    """Chat messages: system line, `spec.shots` worked examples, then the question."""
    if len(shots) < spec.shots:
        raise ValueError(f"the spec asks for {spec.shots} shots, {len(shots)} given")
    messages = [{"role": "system", "content": spec.system}] if spec.system else []
    for ex in list(shots)[:spec.shots]:
        messages.append({"role": "user", "content": user_text(spec, fields, ex.context, ex.subject, table, fmt)})
        messages.append({"role": "assistant", "content": answer_text(spec, fields, ex.values, fmt)})
    messages.append({"role": "user", "content": user_text(spec, fields, question.context, question.subject, table, fmt)})
    return messages


def render_plain(messages: list[dict[str, str]]) -> str:
    """Messages as one completion prompt, for endpoints without a chat template (imo's byte models)."""
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    text = "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in messages)
    return text + "\n\nAssistant:"
