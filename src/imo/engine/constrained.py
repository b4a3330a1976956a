"""Constrained decoding: a JSON schema as a logits mask over imo's engine, so every answer is
valid JSON of that schema whatever the model's logits.

The grammar engine is llguidance (Microsoft's Rust "low-level guidance"; README: ~50 us of CPU per
mask for 128k vocabularies). It was the one library that stayed strictly valid on a raw byte
vocabulary in the measurement of ../shared/design/WAVE2.md section 9 (xgrammar let raw control
characters into strings, #800; outlines-core dropped integer bounds, #147). Backends sit behind a
small registry: llguidance, and outlines-core as a fallback (imo.engine.outlines_backend), which
refuses the schema keywords it would drop rather than decode without them.

The mask is applied with NumPy on the engine's logits (not llguidance's torch helper,
which is torch.compile'd and costs ~15 s on its first CPU call). Fast-forward: where the grammar
allows exactly one continuation (the fixed keys of an object, `":"`, quotes), those tokens are
consumed without a choice and fed to the model in one forward call.

The decoding loop uses only the engine's public calls (`prefill`, `forward`, `release`) and its
KV cache. A byte model has no end-of-sequence token: llguidance gets a virtual one (id 256, never
produced by the model) and a row ends when the grammar is complete (for an object: its closing
brace). A BPE model's own end-of-sequence id ends a row where the grammar accepts.

    g = compile_schema(schema, eng.text, eng.cfg.vocab_size)
    out = constrained_generate(eng, eng.text.encode(prompt), g, max_tokens=256)  # out.text, out.value
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imo.engine.config import GenerationConfig
from imo.engine.sampling import make_generator, sample_tokens
from imo.errors import ConfigError


def _require_llguidance():
    try:
        import llguidance
    except ImportError:
        raise ConfigError("constrained decoding needs llguidance: pip install 'imo[constrained]'") from None
    return llguidance


class _Vocabulary:
    """The shape llguidance's TokenizerWrapper reads: every id's bytes, the end id, special ids."""

    def __init__(self, pieces: list[bytes], eos: int, special: list[int], encode: Callable[[bytes], list[int]]):
        self.tokens, self.eos_token_id, self.bos_token_id = pieces, eos, None
        self.special_token_ids = special
        self._encode = encode

    def __call__(self, data: bytes) -> list[int]:
        return self._encode(data)


@dataclass
class Grammar:
    """A compiled schema for one vocabulary: llguidance's tokenizer and grammar, and the end id."""

    schema: dict
    tokenizer: Any  # llguidance.LLTokenizer
    grammar: str
    n_vocab: int  # llguidance's vocabulary (the model's, plus the virtual end id of a byte model)
    eos: int
    virtual_eos: bool
    backend: str = "llguidance"
    factory: Callable[[], Any] | None = field(default=None, repr=False)  # other backends' fresh matchers

    _proto: Any = field(default=None, repr=False)

    def matcher(self):
        """A fresh matcher at the start of the grammar: a copy of one built once, so the lexer
        states llguidance builds lazily are not rebuilt for every answer."""
        if self.factory is not None:
            return self.factory()
        from llguidance import LLMatcher

        if self._proto is None:
            m = LLMatcher(self.tokenizer, self.grammar, log_level=0)
            if m.is_error():
                raise ConfigError(f"the schema cannot be compiled: {m.get_error()}")
            self._proto = m
        return self._proto.deep_copy()


def check_schema(schema: object) -> dict:
    """The schema if it is a valid JSON Schema object, else a one-line ConfigError."""
    if not isinstance(schema, dict):
        raise ConfigError(f"a schema must be a JSON object, got {type(schema).__name__}")
    try:
        import jsonschema
    except ImportError:
        return schema
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(str(p) for p in e.path) or "(root)"
        raise ConfigError(f"not a valid JSON schema at {where}: {e.message}") from None
    return schema


def _vocabulary(text, vocab_size: int) -> tuple[list[bytes], int, bool, list[int]]:
    """(each id's bytes, the end id, whether that end is virtual, the special ids) of a vocabulary."""
    pieces = [text.piece(i) if i < len(text.pieces) else b"" for i in range(vocab_size)]
    special = sorted({*text.eos, *getattr(text.tokenizer, "special", {}).values()})
    special += [i for i in range(len(text.pieces), vocab_size)]  # padding rows of the embedding
    for i in special:
        pieces[i] = text.pieces[i] if i < len(text.pieces) and text.pieces[i] else f"<|imo:{i}|>".encode()
    eos = min(text.eos) if text.eos else None
    virtual = eos is None
    if virtual:
        eos = vocab_size
        pieces.append(b"<|imo:end|>")
        special.append(eos)
    return pieces, eos, virtual, special


_TOKENIZERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # TokenText -> {vocab_size: (tok, n, eos, virtual)}


def _llguidance_tokenizer(text, vocab_size: int):
    """llguidance's tokenizer for a vocabulary, built once per TokenText (for a 49k vocabulary
    it is a visible share of compiling a small schema)."""
    llg = _require_llguidance()
    known = _TOKENIZERS.setdefault(text, {})
    if vocab_size not in known:
        pieces, eos, virtual, special = _vocabulary(text, vocab_size)
        vocab = _Vocabulary(pieces, eos, special, lambda data: text.encode(bytes(data)))
        known[vocab_size] = (llg.LLTokenizer(llg.TokenizerWrapper(vocab), n_vocab=len(pieces)), len(pieces), eos,
                             virtual)
    return known[vocab_size]


def _llguidance_grammar(schema: dict, text, vocab_size: int) -> Grammar:
    llg = _require_llguidance()
    tok, n, eos, virtual = _llguidance_tokenizer(text, vocab_size)
    # No free whitespace (a small model could wander into endless spaces), but json.dumps's
    # separators ", " and ": ", the spacing models read and write most.
    grammar = llg.LLMatcher.grammar_from_json_schema(
        schema, defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "})
    failed, messages = llg.LLMatcher.validate_grammar_with_warnings(grammar, tok)
    if failed:
        raise ConfigError(f"llguidance cannot compile the schema: {messages[0]}")
    return Grammar(schema, tok, grammar, n, eos, virtual)


def _outlines_grammar(schema: dict, text, vocab_size: int) -> Grammar:
    """The fallback: outlines-core's regex automaton (imo.engine.outlines_backend), which refuses
    schemas with keywords it would drop (integer bounds, multipleOf, ...)."""
    from imo.engine.outlines_backend import outlines_matcher

    pieces, eos, virtual, special = _vocabulary(text, vocab_size)
    regex, factory = outlines_matcher(schema, pieces, eos, special)
    return Grammar(schema, None, regex, len(pieces), eos, virtual, backend="outlines-core", factory=factory)


BACKENDS: dict[str, Callable[[dict, Any, int], Grammar]] = {"llguidance": _llguidance_grammar,
                                                            "outlines-core": _outlines_grammar}


def default_backend() -> str:
    """llguidance when it is installed, else outlines-core (a fallback), else a clear error."""
    import importlib.util

    for name, module in (("llguidance", "llguidance"), ("outlines-core", "outlines_core")):
        if importlib.util.find_spec(module) is not None:
            return name
    raise ConfigError("constrained decoding needs llguidance: pip install 'imo[constrained]'")


def compile_schema(schema: object, text, vocab_size: int, backend: str = "auto") -> Grammar:
    """A checked schema compiled for a vocabulary (text: imo.engine.text.TokenText); backend
    "auto" is llguidance when installed, else outlines-core."""
    if backend == "auto":
        backend = default_backend()
    if backend not in BACKENDS:
        raise ConfigError(f"unknown constrained-decoding backend {backend!r}; known: auto, {', '.join(BACKENDS)}")
    return BACKENDS[backend](check_schema(schema), text, vocab_size)


def allowed_mask(matcher, n_vocab: int) -> torch.Tensor:
    """The tokens the grammar allows next, as a bool tensor (n_vocab,), from llguidance's bitmask."""
    words = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)  # one bit per token, little-endian
    bits = np.unpackbits(words, bitorder="little")[:n_vocab]
    return torch.from_numpy(bits.astype(bool))


def masked_logits(matcher, row: torch.Tensor, n: int) -> torch.Tensor | None:
    """The logits (n,) with every token the grammar forbids at -inf, or None when it allows none.
    In NumPy on the CPU: the bitmask unpacked straight into one `where`, instead of three small
    torch ops with their dispatch costs (a virtual end id, past n, is left out)."""
    words = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
    bits = np.unpackbits(words, count=n, bitorder="little").view(bool)
    if not bits.any():
        return None
    values = row.detach().float().cpu().numpy()
    return torch.from_numpy(np.where(bits, values, np.float32(-np.inf))).to(row.device)


@dataclass
class Constrained:
    tokens: list[int]
    text: str
    finish_reason: str  # "stop" (grammar complete or end id), "length", "error"
    forward_calls: int  # model calls after the prefill
    fast_forwarded: int  # tokens the grammar forced (consumed without a choice)
    error: str | None = None
    value: Any = field(default=None)  # the parsed JSON when the text is complete
    mask_seconds: float = 0.0  # computing and applying the masks
    seconds: float = 0.0  # the whole answer, prefill included

    @property
    def complete(self) -> bool:
        return self.finish_reason == "stop" and self.error is None


def constrained_generate(eng, prompt: list[int], grammar: Grammar, max_tokens: int = 256,
                         temperature: float = 0.0, seed: int | None = 0, fast_forward: bool = True,
                         logits_hook: Callable[[torch.Tensor], torch.Tensor] | None = None,
                         cfg: GenerationConfig | None = None, stops: list[bytes] | None = None) -> Constrained:
    """Decode one answer under the grammar. `logits_hook` replaces the model's logits (tests use
    random logits: the worst case for validity). `cfg` (greedy or sample; its max_tokens, top_k,
    top_p) replaces max_tokens/temperature/seed; `stops` end the answer as a stop string does."""
    steps = constrained_steps(eng, prompt, grammar, max_tokens, temperature, seed, fast_forward, logits_hook,
                              cfg, stops)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def constrained_steps(eng, prompt: list[int], grammar: Grammar, max_tokens: int = 256,
                      temperature: float = 0.0, seed: int | None = 0, fast_forward: bool = True,
                      logits_hook: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      cfg: GenerationConfig | None = None,
                      stops: list[bytes] | None = None) -> Generator[list[int], None, Constrained]:
    """constrained_generate one step at a time: yields each step's tokens (one chosen token, or
    the tokens the grammar forced) and returns the Constrained answer. The server runs it a few
    steps per turn of its model thread; closing it early releases the cache."""
    if cfg is None:
        cfg = (GenerationConfig(strategy="greedy", max_tokens=max_tokens) if temperature == 0 else
               GenerationConfig(strategy="sample", max_tokens=max_tokens, temperature=temperature, seed=seed))
    elif cfg.strategy not in ("greedy", "sample"):
        raise ConfigError(f"constrained decoding is greedy or sampled, not {cfg.strategy}")
    max_tokens = cfg.max_tokens
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
    gens = [make_generator(cfg.seed)]
    began = time.perf_counter()
    mask_seconds = 0.0
    m = grammar.matcher()
    V = eng.cfg.vocab_size
    L = eng.cfg.context_length
    cache, logits = eng.prefill(prompt)
    out: list[int] = []
    calls = forced = 0
    finish, error = "length", None
    try:
        while len(out) < max_tokens:
            if m.is_stopped():
                finish = "stop"
                break
            step: list[int]
            ff = m.compute_ff_tokens() if fast_forward else []
            if ff:
                step = ff[: max_tokens - len(out)]
                forced += len(step)
            else:
                if grammar.virtual_eos and m.is_accepting():  # a byte model: its end is the grammar's
                    finish = "stop"
                    break
                t0 = time.perf_counter()
                row = logits_hook(logits) if logits_hook is not None else logits
                masked = masked_logits(m, row, V)
                mask_seconds += time.perf_counter() - t0
                if masked is None:
                    finish, error = "error", m.get_error() or "the grammar allows no token"
                    break
                step = [int(sample_tokens(masked[None], cfg, gens)[0])]
            if not m.consume_tokens(step):
                finish, error = "error", m.get_error()
                break
            if step[-1] == grammar.eos:
                finish = "stop"
                break
            if stops:  # a stop string may end inside a forced step: cut the step there
                for j in range(len(step)):
                    if eng.text.finished(out + step[: j + 1], stops):
                        step, finish = step[: j + 1], "stop"
                        break
            out += step
            yield step
            if m.is_stopped() or finish == "stop":
                finish = "stop"
                break
            if cache.length + len(step) > L:
                break  # the context is full: "length"
            logits = eng.forward(torch.tensor([step]), cache)[0, -1, :V]
            calls += 1
    finally:
        eng.release(cache)
    data = eng.text.bytes_of(out)
    text = data.decode("utf-8", "replace")
    value = None
    if finish == "stop" and error is None and not stops:
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:  # a grammar bug: report it, never hide it
            error = f"the constrained answer is not JSON: {e}"
    return Constrained(out, text, finish, calls, forced, error, value, mask_seconds,
                       time.perf_counter() - began)


def strictly_valid(text: str, schema: dict) -> bool:
    """`text` is exactly one JSON value (strict: no NaN, no control characters) that the schema accepts."""
    import jsonschema

    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text, parse_constant=no_constants)
    except ValueError:
        return False
    return jsonschema.validators.validator_for(schema)(schema).is_valid(value)


def load_schema(path: Path) -> dict:
    """A JSON schema read from a file and checked (check_schema); one clear error otherwise."""
    from imo.files import read_text

    text = read_text(path, "schema file")
    try:
        schema = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"schema file {path} is not JSON: {e}") from None
    return check_schema(schema)
