"""What every route of `imo serve` shares: the engine and its worker thread, the model's id, the
token budget, and `run_jobs`, which hands prompts (token ids) to the worker and answers as
OpenAI does, streamed or whole, cancelling the rows when the client goes away.

A new generating endpoint turns its request into token ids and a GenerationConfig
(`config_for`, from a `protocol.SamplingParams` model), then returns `run_jobs(...)` with the
answer shape of its format (imo.engine.answers).

    served = Served(engine, worker, "run-abc", budget=8192)
    return await served.run_jobs(request, [ids], cfg, stream=False, logprobs=None, shape=CompletionShape(id))
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from imo.engine.answers import Collector
from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine
from imo.engine.protocol import DEFAULT_MAX_TOKENS, APIError, SamplingParams, error_body
from imo.engine.sampling import stop_bytes
from imo.engine.worker import SHUTDOWN_MESSAGE, Job, Task, Worker

DISCONNECT_POLL_S = 0.25  # how often a non-streamed request checks that its client is still there


def error_response(message: str, status: int, kind: str = "invalid_request_error",
                   param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, param), status_code=status)


class Served:
    """The state the routes share. chat: the run's chat template and special tokens (chat.json),
    or None for a model without one."""

    def __init__(self, engine: Engine, worker: Worker, model_id: str, budget: int, chat: dict | None = None) -> None:
        self.engine, self.worker, self.model_id, self.budget, self.chat = engine, worker, model_id, budget, chat
        self.sessions: OrderedDict = OrderedDict()  # alternatives sessions (imo.engine.session_routes)
        self.lock = threading.Lock()

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.model_id:
            raise APIError(f"unknown model {name!r}; this server serves {self.model_id!r}", 404, "not_found_error",
                           "model")

    def config_for(self, req: SamplingParams, prompts: list[list[int]],
                   default_max_tokens: int = DEFAULT_MAX_TOKENS) -> GenerationConfig:
        """The request's config; its prompts + max_tokens must fit the budget (400 otherwise)."""
        for ids in prompts:
            self.engine.check_prompt(ids)
        longest, budget = max(map(len, prompts)), self.budget
        cfg = req.generation_config(max(0, min(default_max_tokens, budget - longest)))
        if longest + cfg.max_tokens > budget:
            raise APIError(f"this server's budget is {budget} tokens per request (prompt + max_tokens); "
                           f"the prompt has {longest} and max_tokens asks for {cfg.max_tokens}: lower max_tokens "
                           f"to at most {max(0, budget - longest)}", param="max_tokens")
        return cfg

    async def on_worker(self, fn):
        """Run fn on the model thread (the engine is not shared between threads)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(result, err):
            loop.call_soon_threadsafe(lambda: fut.done() or (fut.set_exception(err) if err else fut.set_result(result)))

        self.worker.submit(Task(fn, done))
        return await fut

    async def run_jobs(self, request: Request, prompts: list[list[int]], cfg: GenerationConfig, *, stream: bool,
                       logprobs: int | None, shape, include_usage: bool = False):
        """Decode the prompts (one job each, admitted together) and answer in `shape`'s format.
        logprobs: top alternatives per token (0: the chosen token's only), None: no logprobs."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        emit = lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev)  # noqa: E731
        jobs = [Job(ids, cfg, emit, top_logprobs=logprobs or 0, index=i) for i, ids in enumerate(prompts)]
        self.worker.submit_many(jobs)
        col = Collector(self.engine.text, len(prompts) * cfg.n, stop_bytes(cfg.stop), logprobs)
        n_prompt = sum(map(len, prompts))

        def usage() -> dict:
            done = col.generated
            return {"prompt_tokens": n_prompt, "completion_tokens": done, "total_tokens": n_prompt + done}

        def cancel() -> None:
            for j in jobs:
                j.cancelled.set()

        if not stream:
            pending = len(jobs)
            next_check = loop.time() + DISCONNECT_POLL_S
            try:
                while pending:
                    try:
                        ev = await asyncio.wait_for(events.get(), DISCONNECT_POLL_S)
                    except TimeoutError:
                        ev = None
                    if loop.time() >= next_check:  # tokens may come all the time: check by the clock
                        next_check = loop.time() + DISCONNECT_POLL_S
                        if await request.is_disconnected():
                            return Response(status_code=499)  # nobody is there to read it
                    if ev is None:
                        continue
                    if ev[0] == "token":
                        col.add(*ev[1:])
                    elif ev[0] == "done":
                        pending -= 1
                    else:
                        status = 503 if ev[1] == SHUTDOWN_MESSAGE else 500
                        return error_response(ev[1], status, "server_error")
            finally:
                cancel()  # finished, failed or abandoned: free the rows and their cache
            col.close()
            return {**shape.head, "choices": shape.choices(col), "usage": usage()}

        def data(obj: dict) -> str:
            return f"data: {json.dumps(obj)}\n\n"

        async def sse():
            pending = len(jobs)
            try:
                for choice in shape.opening(col):
                    yield data({**shape.chunk_head, "choices": [choice]})
                while pending:
                    ev = await events.get()
                    if ev[0] == "error":
                        yield data(error_body(ev[1], "server_error"))
                        break
                    if ev[0] == "done":
                        pending -= 1
                        continue
                    ready = col.add(*ev[1:])
                    if ready is not None:
                        yield data({**shape.chunk_head, "choices": [shape.chunk(col, ev[1], *ready)]})
                else:
                    if include_usage:
                        yield data({**shape.chunk_head, "choices": [], "usage": usage()})
                yield "data: [DONE]\n\n"
            finally:  # normal end, or the client went away: free the rows and their cache
                cancel()

        return StreamingResponse(sse(), media_type="text/event-stream")
