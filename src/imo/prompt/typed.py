"""Typed answers: find the JSON object in a model's text, validate it with a pydantic model, and
retry with the validation error fed back, keeping every attempt (the last one is the answer).

This follows instructor's retry loop (the error message goes back to the model as a new user turn,
and a failed run still returns its last attempt) without its client patching: `ask_typed` takes any
function from messages to text, so it works with imo's engine, imo's server or any other endpoint.

    Answer = answer_model(fields)
    result = ask_typed(lambda msgs: chat(msgs), messages, Answer, retries=2)
    result.value, result.attempts[-1].text, result.attempts[-1].error
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from imo.prompt.builder import FieldSpec

_DECODER = json.JSONDecoder()


@dataclass
class FoundJSON:
    value: dict | None  # the first JSON object in the text, or None
    strict: bool  # the whole text (stripped) is exactly one JSON object
    outside: str  # text around the object (all of it when none was found)
    error: str | None = None


def find_json_object(text: object) -> FoundJSON:
    """The first decodable JSON object in `text`. Never raises."""
    if not isinstance(text, str):
        return FoundJSON(None, False, "", f"expected text, got {type(text).__name__}")
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
        if isinstance(whole, dict):
            return FoundJSON(whole, True, "")
    except (ValueError, RecursionError):
        pass
    at = text.find("{")
    while at >= 0:
        try:
            value, end = _DECODER.raw_decode(text, at)
        except (ValueError, RecursionError):
            value, end = None, at
        if isinstance(value, dict):
            return FoundJSON(value, False, (text[:at] + " " + text[end:]).strip())
        at = text.find("{", at + 1)
    return FoundJSON(None, False, stripped, "no JSON object in the answer")


def answer_model(fields: list[FieldSpec], name: str = "Answer") -> type[BaseModel]:
    """A pydantic model with one required key per field, of its type; unknown keys refused."""
    spec: dict[str, Any] = {f.name: (f.python_type, ...) for f in fields}
    return create_model(name, __config__=ConfigDict(extra="forbid"), **spec)


def validation_text(e: ValidationError) -> str:
    """pydantic's errors as short lines a model can read: `key: message`."""
    lines = []
    for err in e.errors():
        where = ".".join(str(x) for x in err.get("loc", ())) or "(answer)"
        lines.append(f"{where}: {err.get('msg', 'invalid')}")
    return "\n".join(lines)


@dataclass
class Attempt:
    text: str
    error: str | None  # None: it validated


@dataclass
class TypedResult:
    value: BaseModel | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


def parse_typed(text: str, model: type[BaseModel]) -> tuple[BaseModel | None, str | None]:
    """(value, None) when `text` holds a JSON object that validates, else (None, the error)."""
    found = find_json_object(text)
    if found.value is None:
        return None, found.error
    try:
        return model.model_validate(found.value), None
    except ValidationError as e:
        return None, validation_text(e)


RETRY_TEMPLATE = ("Your answer did not validate:\n{error}\n"
                  "Respond again strictly in the JSON format asked for, without additional keys or text.")


def ask_typed(call: Callable[[list[dict[str, str]]], str], messages: list[dict[str, str]],
              model: type[BaseModel], retries: int = 2) -> TypedResult:
    """Ask, validate, and on failure ask again with the error (up to `retries` more times)."""
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    convo = list(messages)
    result = TypedResult(None)
    for _ in range(retries + 1):
        text = call(convo)
        value, error = parse_typed(text, model)
        result.attempts.append(Attempt(text, error))
        if value is not None:
            result.value = value
            return result
        convo = [*convo, {"role": "assistant", "content": text},
                 {"role": "user", "content": RETRY_TEMPLATE.format(error=error)}]
    return result
