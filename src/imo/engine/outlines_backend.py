"""outlines-core as a fallback grammar engine for imo.engine.constrained: a JSON schema becomes a
regular expression (outlines_core.json_schema.build_regex_from_schema), the regex an automaton
over the vocabulary's token bytes (outlines_core.Index), and this module walks its states with
the interface the decoding loop reads (the subset of llguidance's LLMatcher it uses).

outlines-core builds its regex from part of JSON Schema and drops the rest without a word: it
writes any integer for `{"type": "integer", "minimum": 0, "maximum": 150}` (measured on 0.2.14;
WAVE2.md section 9 found the same, outlines-core #147). An answer under a dropped keyword can be
invalid, so `unsupported_keywords` lists every keyword outside the set this backend is known to
honour (each one is tested to change the regex, tests/prompt/test_prompt_outlines.py), and the
schema is refused naming them. Annotations (title, description, default, ...) are allowed.

    regex, factory = outlines_matcher(schema, pieces, eos, special); m = factory()
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np

from imo.errors import ConfigError

# Keywords whose meaning the regex keeps (or, for additionalProperties, makes stricter: the
# object is closed to the listed properties, which every value of the keyword accepts).
# `format` is not among them: its regexes use Rust's Unicode-aware \d, so `"format": "date"` lets
# through "６405-01-14" (fullwidth and Arabic-Indic digits; measured on 0.2.14). For the same
# reason a `pattern` with \d, \w, \s (ASCII classes in JSON Schema's ECMA-262 dialect, Unicode
# ones in Rust's) is refused.
HONOURED = frozenset({"type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum",
                      "const", "anyOf", "$ref", "$defs", "definitions", "minLength", "maxLength", "pattern",
                      "minItems", "maxItems"})
_WIDER_CLASSES = ("\\d", "\\w", "\\s", "\\D", "\\W", "\\S", "\\b", "\\B")
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment",
                         "deprecated", "readOnly", "writeOnly"})
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "prefixItems")


def _schemas(schema: object, where: str = "") -> Iterator[tuple[str, dict]]:
    """Every schema object inside `schema` with its path (values of enum/const/default are data)."""
    if not isinstance(schema, dict):
        return
    yield where or "(root)", schema
    for key in _SUBSCHEMA_MAPS:
        for name, sub in (schema.get(key) or {}).items() if isinstance(schema.get(key), dict) else ():
            yield from _schemas(sub, f"{where}/{key}/{name}")
    for key in _SUBSCHEMA_LISTS:
        for i, sub in enumerate(schema.get(key) or []) if isinstance(schema.get(key), list) else ():
            yield from _schemas(sub, f"{where}/{key}/{i}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _schemas(schema[key], f"{where}/{key}")


def unsupported_keywords(schema: dict) -> list[str]:
    """'path: keyword' for each keyword outlines-core would drop or read otherwise than JSON Schema."""
    out = []
    for where, s in _schemas(schema):
        out += [f"{where}: {k}" for k in s if k not in HONOURED | ANNOTATIONS]
        pattern = s.get("pattern")
        if isinstance(pattern, str) and any(c in pattern for c in _WIDER_CLASSES):
            out.append(f"{where}: pattern with \\d, \\w or \\s (Unicode classes in outlines-core)")
    return out


class OutlinesMatcher:
    """A walk over an outlines_core.Index with the calls of llguidance's LLMatcher that
    imo.engine.constrained uses: compute_bitmask, compute_ff_tokens, consume_tokens,
    is_accepting, is_stopped, get_error."""

    MAX_FF = 64  # forced tokens taken at once

    def __init__(self, index, eos: int, n_vocab: int) -> None:
        self.index, self.eos, self.n_vocab = index, eos, n_vocab
        self.state = index.get_initial_state()
        self.stopped = False
        self.error: str | None = None

    def _allowed(self, state) -> list[int]:
        return list(self.index.get_allowed_tokens(state) or [])

    def compute_bitmask(self) -> bytes:
        bits = np.zeros(self.n_vocab, dtype=np.uint8)
        if not self.stopped:
            bits[self._allowed(self.state)] = 1
        return np.packbits(bits, bitorder="little").tobytes()

    def compute_ff_tokens(self) -> list[int]:
        """The tokens the automaton forces from here: while exactly one token (not the end) is allowed."""
        out, state = [], self.state
        while not self.stopped and len(out) < self.MAX_FF:
            allowed = self._allowed(state)
            if len(allowed) != 1 or allowed[0] == self.eos:
                break
            out.append(allowed[0])
            state = self.index.get_next_state(state, allowed[0])
        return out

    def consume_tokens(self, tokens: list[int]) -> bool:
        for t in tokens:
            if self.stopped:
                self.error = "a token after the end"
                return False
            if t == self.eos:
                if not self.index.is_final_state(self.state):
                    self.error = "the end token before the grammar is complete"
                    return False
                self.stopped = True
                continue
            nxt = self.index.get_next_state(self.state, t)
            if nxt is None:
                self.error = f"token {t} is not allowed here"
                return False
            self.state = nxt
        return True

    def is_accepting(self) -> bool:
        return self.index.is_final_state(self.state)

    def is_stopped(self) -> bool:
        return self.stopped or (self.is_accepting() and self._allowed(self.state) == [self.eos])

    def get_error(self) -> str | None:
        return self.error


def outlines_matcher(schema: dict, pieces: list[bytes], eos: int, special: list[int]) -> tuple[str, Callable]:
    """The schema's regex and a factory of fresh matchers over this vocabulary; refuses a schema
    with keywords outlines-core would drop, or one it cannot turn into a regex."""
    try:
        import outlines_core
        from outlines_core.json_schema import build_regex_from_schema
    except ImportError:
        raise ConfigError("the outlines-core backend needs outlines-core: pip install 'imo[outlines]'") from None
    dropped = unsupported_keywords(schema)
    if dropped:
        raise ConfigError(f"outlines-core would silently drop {', '.join(dropped[:4])}"
                          f"{' ...' if len(dropped) > 4 else ''}; use the llguidance backend for this schema")
    try:
        regex = build_regex_from_schema(json.dumps(schema), whitespace_pattern="[ ]?")
    except (ValueError, TypeError, RuntimeError) as e:
        raise ConfigError(f"outlines-core cannot compile the schema: {str(e).splitlines()[0]}") from None
    skip = set(special) | {eos}
    table: dict[bytes, list[int]] = {}
    for i, p in enumerate(pieces):
        if i not in skip and p:
            table.setdefault(p, []).append(i)
    index = outlines_core.Index(regex, outlines_core.Vocabulary(eos, table))
    n = len(pieces)
    return regex, lambda: OutlinesMatcher(index, eos, n)
