"""`imo extract`: fill a JSON schema from text with a run's model, under constrained decoding.

The prompt is imo.prompt.builder's (the text as JSON context, then the strict-JSON instruction
with each key's type, description and, where the schema gives one, its default); the answer is
decoded under the schema by imo.engine.constrained, so it is valid JSON of the schema whatever
the model. A run with a chat template gets the messages through it; a byte model gets them as
plain text. The JSON object is printed on the last line.

    imo extract --model RUN --schema person.json "Ana Lopa, 34, lives in Varn."
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option


def schema_fields(schema: dict):
    """The builder's fields for an object schema's properties (type, description, default)."""
    from imo.prompt.builder import PY_TYPES, FieldSpec

    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict) or not props:
        raise ConfigError('the schema must be an object with properties ({"type": "object", "properties": {...}})')
    fields = []
    for name, p in props.items():
        p = p if isinstance(p, dict) else {}
        kind = p.get("type", "string")
        kind = kind if isinstance(kind, str) and kind in PY_TYPES else "string"
        fields.append(FieldSpec(name, kind, str(p.get("description", "")), p.get("default")))
    return fields


def extract_prompt(schema: dict, text: str, chat: dict | None) -> tuple[str, bool]:
    """(the prompt text, whether it went through a chat template)."""
    from imo.prompt.builder import Example, PromptSpec, build_messages, render_plain

    fields = schema_fields(schema)
    spec = PromptSpec(defaults=any(f.default is not None for f in fields))
    subject = str(schema.get("title") or "the text")  # "Extract these facts about {subject} ..."
    messages = build_messages(spec, fields, Example({"text": text}, subject))
    if chat and chat.get("template"):
        from imo.importers.chat import render

        return render(chat["template"], messages, chat), True
    return render_plain(messages), False


def extract_command(
    text: Annotated[list[str], typer.Argument(help="The text to read (several words are joined by spaces).")],
    model: Annotated[str, Opt("--model", help="Run id, unique prefix or name.")],
    schema: Annotated[Path, Opt("--schema", help="JSON Schema file of the object to fill.")],
    max_tokens: Annotated[int, Opt(help="Most tokens in the answer.")] = 256,
    temperature: Annotated[float, Opt(help="0 is greedy.")] = 0.0,
    seed: Annotated[int, Opt(help="Seed when sampling.")] = 0,
    no_fast_forward: Annotated[bool, Opt("--no-fast-forward", help="Choose every token, even forced ones.")] = False,
    stats: Annotated[bool, Opt("--stats", help="Print forward calls and forced tokens on stderr.")] = False,
    backend: Annotated[str, Opt(help="Grammar engine: auto (llguidance if installed), llguidance, outlines-core.")] = "auto",
) -> None:
    """Fill a JSON schema from text: constrained decoding with llguidance; the JSON object is the last line."""
    from imo.engine.cli import load_run
    from imo.engine.constrained import compile_schema, constrained_generate, load_schema
    from imo.engine.decode import Engine

    if max_tokens < 1:
        raise ConfigError(f"--max-tokens must be >= 1, got {max_tokens}")
    if not 0 <= temperature <= 2:
        raise ConfigError(f"--temperature must be in [0, 2], got {temperature}")
    sch = load_schema(schema)
    schema_fields(sch)
    run_id, mdl, tt, chat = load_run(model)
    eng = Engine(mdl, text=tt)
    grammar = compile_schema(sch, tt, eng.cfg.vocab_size, backend=backend)
    prompt, _ = extract_prompt(sch, " ".join(text), chat)
    ids = tt.encode(prompt)
    room = eng.cfg.context_length - len(ids)
    if room < 1:
        raise ConfigError(f"the prompt has {len(ids)} tokens, more than the model's context of "
                          f"{eng.cfg.context_length}; shorten the text or the schema")
    out = constrained_generate(eng, ids, grammar, max_tokens=min(max_tokens, room), temperature=temperature,
                               seed=seed, fast_forward=not no_fast_forward)
    if stats:
        print(f"imo: {len(out.tokens)} tokens, {out.forward_calls} forward calls, {out.fast_forwarded} forced "
              f"tokens, finish {out.finish_reason}", file=sys.stderr)
    if out.error:
        raise ConfigError(f"constrained decoding failed: {out.error}")
    if not out.complete:
        raise ConfigError(f"the answer did not finish within {min(max_tokens, room)} tokens "
                          f"(partial: {out.text[:60]!r}); raise --max-tokens")
    print(json.dumps(out.value, ensure_ascii=False))
