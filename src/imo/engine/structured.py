"""`response_format` on `imo serve`: answers decoded under a JSON schema (imo.engine.constrained).

`{"type": "json_schema", "json_schema": {"name", "schema"}}` decodes under the schema and
`{"type": "json_object"}` under `{"type": "object"}`, so every finished answer is valid JSON of
it whatever the model, for a byte vocabulary (on `/v1/completions`; byte models have no chat
template) and a BPE one (both endpoints). `{"type": "text"}` is the ordinary path. A schema that
is not a valid JSON Schema, or one llguidance cannot compile, is a 400 in OpenAI's error shape
with `param: "response_format"`; so is `logprobs`, which this path does not compute.

Each row (n choices per prompt, seeded as the batched path seeds them) is one
`constrained_steps` generator, advanced on the model thread a slice at a time (SLICE_TOKENS steps
or SLICE_S seconds), so the batched requests get their turns in between. Compiled grammars are
kept per engine (GRAMMARS most recent schemas); compiling runs off the model thread.

    return await constrained_answer(served, request, prompts, cfg, req.response_format, shape, stream=False)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections import OrderedDict

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from imo.engine.answers import Collector
from imo.engine.config import GenerationConfig
from imo.engine.constrained import Grammar, compile_schema, constrained_steps
from imo.engine.protocol import APIError, ResponseFormat, error_body
from imo.engine.sampling import row_seed, stop_bytes
from imo.engine.serving import Served, error_response
from imo.engine.worker import SHUTDOWN_MESSAGE, ShuttingDown
from imo.errors import ConfigError

SLICE_TOKENS = 16  # decoding steps of one row per turn of the model thread
SLICE_S = 0.05  # ... or this long, whichever comes first
GRAMMARS = 16  # compiled schemas kept per engine
DISCONNECT_POLL_S = 0.25

_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Engine -> OrderedDict(key -> Grammar)
_cache_lock = threading.Lock()


def grammar_for(engine, schema: dict) -> Grammar:
    """The schema compiled for the engine's vocabulary, from the cache when it was asked before."""
    key = json.dumps(schema, sort_keys=True)
    with _cache_lock:
        known = _cache.setdefault(engine, OrderedDict())
        if key in known:
            known.move_to_end(key)
            return known[key]
    try:
        g = compile_schema(schema, engine.text, engine.cfg.vocab_size)
    except ConfigError as e:
        raise APIError(f"response_format: {e}", param="response_format") from None
    with _cache_lock:
        known[key] = g
        while len(known) > GRAMMARS:
            known.popitem(last=False)
    return g


def check_request(fmt: ResponseFormat, logprobs) -> dict | None:
    """The schema to decode under (None: plain text); refuses what this path does not do."""
    schema = fmt.target()
    if schema is not None and logprobs is not None:
        raise APIError("logprobs are not supported with a JSON response_format", param="logprobs")
    return schema


class _Rows:
    """Every row of a request, advanced a slice at a time; tokens go into the Collector."""

    def __init__(self, served: Served, prompts: list[list[int]], cfg: GenerationConfig, grammar: Grammar,
                 col: Collector) -> None:
        self.served, self.col = served, col
        stops = stop_bytes(cfg.stop)
        self.todo = []  # (choice, prompt, row config)
        for i, ids in enumerate(prompts):
            for c in range(cfg.n):
                rc = cfg.replace(n=1, stop=()) if cfg.strategy == "greedy" else \
                    cfg.replace(n=1, stop=(), seed=row_seed(cfg.seed, i, c))
                self.todo.append((i * cfg.n + c, ids, rc))
        self.grammar, self.stops = grammar, stops
        self.current = None  # (choice, generator, the token held back until its finish is known)
        self.failed: str | None = None

    def advance(self) -> list[tuple[int, int, int]]:
        """One slice on the model thread: the (choice, lo, hi) ranges of text it made ready."""
        ready, t0, steps = [], time.perf_counter(), 0
        while (self.current or self.todo) and steps < SLICE_TOKENS and time.perf_counter() - t0 < SLICE_S:
            if self.current is None:
                choice, ids, rc = self.todo.pop(0)
                gen = constrained_steps(self.served.engine, ids, self.grammar, cfg=rc, stops=self.stops)
                self.current = [choice, gen, None]
            choice, gen, held = self.current
            try:
                step = next(gen)
            except StopIteration as done:
                out = done.value
                if out.error is not None:
                    self.failed = f"constrained decoding failed: {out.error}"
                    self.todo.clear()
                    self.current = None
                    return ready
                if held is not None:
                    ready.append(self._add(choice, held, out.finish_reason))
                self.current = None
                continue
            steps += 1
            self.served.engine.stats.generated += len(step)
            for t in ([held] if held is not None else []) + step[:-1]:
                ready.append(self._add(choice, t, None))
            self.current[2] = step[-1]
        return [r for r in ready if r]

    def _add(self, choice: int, token: int, finish: str | None):
        got = self.col.add(choice, token, 0.0, None, finish)
        return None if got is None else (choice, *got)

    @property
    def done(self) -> bool:
        return self.current is None and not self.todo

    def close(self) -> None:
        if self.current is not None:
            self.current[1].close()  # releases its cache
            self.current = None
        self.todo.clear()


async def constrained_answer(served: Served, request: Request, prompts: list[list[int]], cfg: GenerationConfig,
                             schema: dict, shape, *, stream: bool, include_usage: bool = False):
    """Decode every prompt's rows under the schema and answer in `shape`'s format."""
    grammar = await asyncio.to_thread(grammar_for, served.engine, schema)
    col = Collector(served.engine.text, len(prompts) * cfg.n, stop_bytes(cfg.stop), None)
    rows = _Rows(served, prompts, cfg, grammar, col)
    n_prompt = sum(map(len, prompts))

    def usage() -> dict:
        return {"prompt_tokens": n_prompt, "completion_tokens": col.generated,
                "total_tokens": n_prompt + col.generated}

    async def slices():
        """The ready ranges of each slice; ("error", message, status) ends it."""
        while not rows.done:
            try:
                ready = await served.on_worker(rows.advance)
            except ShuttingDown:
                yield ("error", SHUTDOWN_MESSAGE, 503)
                return
            if rows.failed:
                yield ("error", rows.failed, 500)
                return
            yield ready

    async def close():
        """Free a row left unfinished (a client gone, an error) on the model thread, which owns the cache."""
        if rows.done:
            return
        if served.worker.thread.is_alive():
            await served.on_worker(rows.close)
        else:
            rows.close()

    if cfg.max_tokens == 0:
        rows.todo.clear()
    if not stream:
        next_check = time.monotonic() + DISCONNECT_POLL_S
        try:
            async for got in slices():
                if isinstance(got, tuple):
                    return error_response(got[1], got[2], "server_error")
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + DISCONNECT_POLL_S
                    if await request.is_disconnected():
                        return Response(status_code=499)
        finally:
            await _quietly(close)
        col.close()
        return {**shape.head, "choices": shape.choices(col), "usage": usage()}

    def data(obj: dict) -> str:
        return f"data: {json.dumps(obj)}\n\n"

    async def sse():
        try:
            for choice in shape.opening(col):
                yield data({**shape.chunk_head, "choices": [choice]})
            async for got in slices():
                if isinstance(got, tuple):
                    yield data(error_body(got[1], "server_error"))
                    break
                for c, lo, hi in got:
                    yield data({**shape.chunk_head, "choices": [shape.chunk(col, c, lo, hi)]})
            else:
                if include_usage:
                    yield data({**shape.chunk_head, "choices": [], "usage": usage()})
            yield "data: [DONE]\n\n"
        finally:
            await _quietly(close)

    return StreamingResponse(sse(), media_type="text/event-stream")


async def _quietly(fn) -> None:
    try:
        await fn()
    except ShuttingDown:
        pass
