"""The outlines-core fallback of imo.engine.constrained: with random logits every answer is
strictly valid JSON of its schema (byte and BPE vocabularies); a schema with a keyword it would
drop (integer bounds, multipleOf, oneOf, ...) or read with Unicode classes (format, \\d in a
pattern) is refused naming it; each keyword it accepts does change its regex."""

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("outlines_core")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from mocklm import MockLM  # noqa: E402
from tiny_bpe import engine as bpe_engine  # noqa: E402

from imo.engine.constrained import compile_schema, constrained_generate, strictly_valid  # noqa: E402
from imo.engine.decode import Engine  # noqa: E402
from imo.engine.outlines_backend import HONOURED, unsupported_keywords  # noqa: E402
from imo.errors import ConfigError  # noqa: E402
from imo.prompt.schemas import SCHEMAS  # noqa: E402

HONOURED_SCHEMAS = {
    "person": {"type": "object", "required": ["name", "tags", "ok"], "additionalProperties": False,
               "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 8},
                              "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
                              "ok": {"type": "boolean"}, "nick": {"type": "string", "maxLength": 4}}},
    "mixed": {"type": "object", "required": ["n", "code", "when"],
              "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                             "code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]$"},
                             "when": {"$ref": "#/$defs/day"}},
              "$defs": {"day": {"type": "string", "pattern": "^20[0-9]{2}-(0[1-9]|1[0-2])$"}}},
}


def _random_logits(seed: int):
    g = torch.Generator().manual_seed(seed)
    return lambda logits: torch.randn(logits.shape, generator=g) * 4


@pytest.mark.parametrize("name", list(HONOURED_SCHEMAS))
@pytest.mark.parametrize("vocab", ["bytes", "bpe"])
def test_random_logits_give_strictly_valid_json(name, vocab):
    eng = Engine(MockLM(vocab=256, context_length=512)) if vocab == "bytes" else bpe_engine()
    schema = HONOURED_SCHEMAS[name]
    grammar = compile_schema(schema, eng.text, eng.cfg.vocab_size, backend="outlines-core")
    assert grammar.backend == "outlines-core"
    for seed in range(8):
        out = constrained_generate(eng, eng.text.encode("x"), grammar, max_tokens=120 if vocab == "bpe" else 200,
                                   temperature=1.0, seed=seed, logits_hook=_random_logits(seed))
        if out.finish_reason == "length":  # an unbounded integer may run out of tokens; never invalid
            continue
        assert out.complete, (out.finish_reason, out.error, out.text)
        assert strictly_valid(out.text, schema), out.text
        assert out.value == json.loads(out.text)


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_schemas_with_bounds_are_refused_naming_the_keyword(name):
    eng = Engine(MockLM(vocab=256, context_length=64))
    with pytest.raises(ConfigError) as e:
        compile_schema(SCHEMAS[name], eng.text, 256, backend="outlines-core")
    assert "silently drop" in str(e.value) and ("minimum" in str(e.value) or "maximum" in str(e.value))


def test_unsupported_keywords_are_found_anywhere():
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "number", "multipleOf": 2},
                                                     "uniqueItems": True}},
              "$defs": {"x": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}, "title": "fine"}
    assert sorted(unsupported_keywords(schema)) == ["/$defs/x: oneOf", "/properties/a/items: multipleOf",
                                                     "/properties/a: uniqueItems"]
    assert unsupported_keywords(HONOURED_SCHEMAS["person"]) == []


@pytest.mark.parametrize(("base", "keyword", "value"), [
    ({"type": "string"}, "minLength", 2), ({"type": "string"}, "maxLength", 3), ({"type": "string"}, "pattern", "^a+$"),
    ({"type": "string"}, "enum", ["x"]), ({"type": "string"}, "const", "x"),
    ({"type": "array", "items": {"type": "integer"}}, "minItems", 1),
    ({"type": "array", "items": {"type": "integer"}}, "maxItems", 2),
    ({"type": "array"}, "prefixItems", [{"type": "boolean"}]), ({"type": "array"}, "items", {"type": "boolean"}),
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, "required", ["a"]),
    ({"type": "object"}, "properties", {"a": {"type": "boolean"}}),
    ({}, "anyOf", [{"type": "integer"}, {"type": "null"}]), ({}, "type", "boolean"),
])
def test_each_accepted_keyword_changes_the_regex(base, keyword, value):
    from outlines_core.json_schema import build_regex_from_schema

    assert keyword in HONOURED
    assert build_regex_from_schema(json.dumps({**base, keyword: value})) != build_regex_from_schema(json.dumps(base))


def test_format_and_unicode_classes_are_refused():
    # outlines-core's `format: date` regex uses Rust's Unicode \d: it accepts "\uff16405-01-14"
    from outlines_core.json_schema import build_regex_from_schema

    assert "\\d" in build_regex_from_schema(json.dumps({"type": "string", "format": "date"}))
    assert unsupported_keywords({"type": "string", "format": "date"}) == ["(root): format"]
    assert len(unsupported_keywords({"type": "string", "pattern": "^\\d+$"})) == 1
    assert unsupported_keywords({"type": "string", "pattern": "^[0-9]+$"}) == []


def test_unknown_backend_and_auto():
    eng = Engine(MockLM(vocab=256, context_length=64))
    with pytest.raises(ConfigError, match="unknown constrained-decoding backend"):
        compile_schema({"type": "object"}, eng.text, 256, backend="xgrammar")
    assert compile_schema({"type": "object"}, eng.text, 256).backend == "llguidance"  # installed: the default
