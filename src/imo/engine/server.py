"""`imo serve RUN`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) over the engine.

OpenAI's API: `GET /v1/models`, `POST /v1/completions` (prompt, or a list of prompts decoded as
one batch; max_tokens, temperature, top_p, n, stop, seed, logprobs, stream by server-sent events;
OpenAI's other fields at their no-op values). Temperature 0 is greedy decoding. imo's own: `POST
/v1/imo/sessions` (an answer with branching alternatives), `POST /v1/imo/sessions/{id}/reject`
(the next answer and what it cost), `GET /v1/imo/sessions/{id}`, `DELETE /v1/imo/sessions/{id}`,
and `GET /v1/imo/stats` (cache hits, tokens/s, queue length, background work).

Requests are pydantic models (imo.engine.protocol); every error, unknown routes included, is
OpenAI's error object. A request's prompt + max_tokens must fit the token budget (the model's
context unless configured), as OpenAI and vLLM refuse larger ones. The model runs on one worker
thread (imo.engine.worker) that batches requests arriving together, gives every live group a turn
and runs speculation for alternatives in bounded slices between turns. A non-streamed request
whose client went away is cancelled, as a streamed one is. On the first Ctrl-C every live request
ends at once with an error and the server exits (`serve`).

To add an endpoint (e.g. chat): a request model deriving from protocol.SamplingParams, turning
its input into token ids, then `_run_jobs` for the tokens, as `completions` does.

    app = create_app(engine, model_id="run-abc"); serve(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import codecs
import json
import secrets
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imo.engine.branches import BranchConfig, Session
from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine
from imo.engine.protocol import (
    DEFAULT_MAX_TOKENS,
    APIError,
    CompletionRequest,
    SamplingParams,
    SessionRequest,
    error_body,
    validation_message,
)
from imo.engine.sampling import stop_bytes, strip_stop
from imo.engine.worker import SHUTDOWN_MESSAGE, Background, Job, Task, Worker
from imo.errors import ImoError

MAX_BODY = 1 << 20  # bytes of a request body
MAX_SESSIONS = 32  # alternatives sessions kept (the oldest is closed beyond it)
SPECULATE_SLICE = 8  # forward passes of speculation between two turns of the other requests
DISCONNECT_POLL_S = 0.25  # how often a non-streamed request checks that its client is still there


def _error(message: str, status: int, kind: str = "invalid_request_error", param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, param), status_code=status)


def token_str(t: int) -> str:
    """A byte token's name among top_logprobs: its character if ASCII, else bytes:\\xNN."""
    return chr(t) if t < 128 else f"bytes:\\x{t:02x}"


class _Collector:
    """Turns token events into OpenAI choices: UTF-8 pieces, stop strings held back until they
    cannot begin one, logprobs per emitted token. A token's name in `logprobs.tokens` is the text
    it completes (decoded incrementally), so the names join back to the choice's text exactly."""

    def __init__(self, choices: int, cfg: GenerationConfig, logprobs: int | None) -> None:
        self.cfg, self.logprobs = cfg, logprobs
        self.stops = stop_bytes(cfg.stop)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.tokens: list[list[int]] = [[] for _ in range(choices)]
        self.lps: list[list[float]] = [[] for _ in range(choices)]
        self.tops: list[list] = [[] for _ in range(choices)]
        self.pieces: list[list[str]] = [[] for _ in range(choices)]  # text of each sent token
        self.dec = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(choices)]
        self.finish: list[str | None] = [None] * choices

    def _send(self, c: int, hi: int, final: bool) -> tuple[int, int]:
        lo = len(self.pieces[c])
        for t in self.tokens[c][lo:hi]:
            self.pieces[c].append(self.dec[c].decode(bytes([t])))
        if final:
            tail = self.dec[c].decode(b"", final=True)
            if tail and self.pieces[c]:
                self.pieces[c][-1] += tail
        return lo, hi

    def add(self, choice: int, token: int, lp: float, top, finish) -> dict | None:
        """Record one token; return the streaming chunk's choice it makes ready, if any."""
        toks = self.tokens[choice]
        toks.append(token)
        self.lps[choice].append(lp)
        self.tops[choice].append(top)
        self.finish[choice] = finish
        sent = len(self.pieces[choice])
        ready = len(strip_stop(toks, self.stops)) if finish else max(len(toks) - self.hold, sent)
        if ready <= sent and not finish:
            return None
        lo, hi = self._send(choice, ready, bool(finish))
        return {"text": "".join(self.pieces[choice][lo:hi]), "index": choice,
                "logprobs": self._lp(choice, lo, hi), "finish_reason": finish}

    def _lp(self, c: int, lo: int, hi: int) -> dict | None:
        if self.logprobs is None:
            return None
        pieces = self.pieces[c]
        start = sum(map(len, pieces[:lo]))
        offsets = []
        for p in pieces[lo:hi]:
            offsets.append(start)
            start += len(p)
        return {"tokens": pieces[lo:hi],
                "token_logprobs": self.lps[c][lo:hi],
                "top_logprobs": [None if t is None else {token_str(a): b for a, b in t}
                                 for t in self.tops[c][lo:hi]] if self.logprobs else None,
                "text_offset": offsets}

    def choices(self) -> list[dict]:
        out = []
        for c, toks in enumerate(self.tokens):
            kept = len(strip_stop(toks, self.stops))
            self._send(c, kept, True)
            out.append({"text": "".join(self.pieces[c][:kept]), "index": c,
                        "logprobs": self._lp(c, 0, kept), "finish_reason": self.finish[c] or "length"})
        return out


class _Guard:
    """Plain ASGI (a BaseHTTPMiddleware would wrap `receive` and hide a client's disconnect from
    the handlers): a missing or wrong API key is a 401; a body over `limit` bytes a 413, by its
    Content-Length or, without one (chunked), while it is read, before any of it reaches the app."""

    def __init__(self, app, limit: int, api_key: str | None) -> None:
        self.app, self.limit = app, limit
        self.want = None if api_key is None else f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.want is not None and not secrets.compare_digest(headers.get(b"authorization", b""), self.want):
            return await _error("missing or wrong API key (send 'Authorization: Bearer KEY')", 401,
                                "authentication_error")(scope, receive, send)
        size = headers.get(b"content-length")
        if size is not None:
            if size.isdigit() and int(size) > self.limit:
                return await self._refuse(scope, receive, send, f"request body of {int(size)} bytes")
            return await self.app(scope, receive, send)
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        body, messages = 0, []
        while True:
            msg = await receive()
            messages.append(msg)
            if msg["type"] != "http.request":
                break
            body += len(msg.get("body", b""))
            if body > self.limit:
                return await self._refuse(scope, receive, send, "request body")
            if not msg.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send, what: str) -> None:
        await _error(f"{what} is over the limit of {self.limit} bytes", 413)(scope, receive, send)


def create_app(engine: Engine, model_id: str, api_key: str | None = None, max_body: int = MAX_BODY,
               token_budget: int | None = None) -> FastAPI:
    """The app. token_budget: most tokens a request may ask for, prompt + max_tokens (default the
    model's context; a larger one lets generation slide past it)."""
    worker = Worker(engine)
    sessions: OrderedDict[str, Session] = OrderedDict()
    lock = threading.Lock()
    budget = token_budget or engine.cfg.context_length
    if budget < 1:
        raise ImoError(f"the token budget must be >= 1, got {budget}")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(title="imo", version="1", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.worker = worker
    app.state.sessions = sessions
    app.state.token_budget = budget
    app.state.shutdown = worker.shutdown  # the server's first Ctrl-C calls it (ImoServer)
    app.add_middleware(_Guard, limit=max_body, api_key=api_key)

    # --- errors: one shape for all ------------------------------------------------------------

    models_of = {"/v1/completions": CompletionRequest, "/v1/imo/sessions": SessionRequest}

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        msg, param = validation_message(list(e.errors()), models_of.get(request.url.path))
        return _error(msg, 400, param=param)

    @app.exception_handler(APIError)
    async def _api(request: Request, e: APIError):
        return _error(str(e), e.status, e.kind, e.param)

    @app.exception_handler(ImoError)
    async def _imo(request: Request, e: ImoError):
        return _error(str(e), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        if e.status_code == 404:
            return _error(f"Invalid URL ({request.method} {request.url.path})", 404)
        if e.status_code == 405:
            return _error(f"{request.method} is not allowed on {request.url.path}", 405)
        return _error(str(e.detail), e.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        return _error(f"internal error: {type(e).__name__}: {e}", 500, "server_error")

    # --- helpers ----------------------------------------------------------------------------------

    def check_model(name: str | None) -> None:
        if name is not None and name != model_id:
            raise APIError(f"unknown model {name!r}; this server serves {model_id!r}", 404, "not_found_error",
                           "model")

    def config_for(req: SamplingParams, prompts: list[list[int]]) -> GenerationConfig:
        for ids in prompts:
            engine.check_prompt(ids)
        longest = max(map(len, prompts))
        default = max(0, min(DEFAULT_MAX_TOKENS, budget - longest))
        cfg = req.generation_config(default)
        if longest + cfg.max_tokens > budget:
            raise APIError(f"this server's budget is {budget} tokens per request (prompt + max_tokens); "
                           f"the prompt has {longest} and max_tokens asks for {cfg.max_tokens}: lower max_tokens "
                           f"to at most {max(0, budget - longest)}", param="max_tokens")
        return cfg

    async def on_worker(fn):
        """Run fn on the model thread (the engine is not shared between threads)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(result, err):
            loop.call_soon_threadsafe(lambda: fut.done() or (fut.set_exception(err) if err else fut.set_result(result)))

        worker.submit(Task(fn, done))
        return await fut

    async def _run_jobs(request: Request, prompts: list[list[int]], cfg: GenerationConfig, *, stream: bool,
                        logprobs: int | None, head: dict, include_usage: bool, make_choices: Callable | None = None):
        """Decode the prompts (one job each, admitted together) and answer as OpenAI does."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        emit = lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev)  # noqa: E731
        jobs = [Job(ids, cfg, emit, top_logprobs=logprobs or 0, index=i) for i, ids in enumerate(prompts)]
        worker.submit_many(jobs)
        col = _Collector(len(prompts) * cfg.n, cfg, logprobs)
        n_prompt = sum(map(len, prompts))

        def usage() -> dict:
            done = sum(map(len, col.tokens))
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
                        return _error(ev[1], status, "server_error")
            finally:
                cancel()  # finished, failed or abandoned: free the rows and their cache
            return {**head, "choices": col.choices(), "usage": usage()}

        async def sse():
            pending = len(jobs)
            try:
                while pending:
                    ev = await events.get()
                    if ev[0] == "error":
                        yield f"data: {json.dumps(error_body(ev[1], 'server_error'))}\n\n"
                        break
                    if ev[0] == "done":
                        pending -= 1
                        continue
                    choice = col.add(*ev[1:])
                    if choice is not None:
                        yield f"data: {json.dumps({**head, 'choices': [choice]})}\n\n"
                else:
                    if include_usage:
                        yield f"data: {json.dumps({**head, 'choices': [], 'usage': usage()})}\n\n"
                yield "data: [DONE]\n\n"
            finally:  # normal end, or the client went away: free the rows and their cache
                cancel()

        return StreamingResponse(sse(), media_type="text/event-stream")

    # --- OpenAI's routes ----------------------------------------------------------------------

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": int(worker.started),
                                            "owned_by": "imo"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        check_model(req.model)
        prompts = req.prompts()
        cfg = config_for(req, prompts)
        head = {"id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion", "created": int(time.time()),
                "model": model_id}
        return await _run_jobs(request, prompts, cfg, stream=req.stream, logprobs=req.logprobs, head=head,
                               include_usage=bool(req.stream_options and req.stream_options.include_usage))

    # --- imo's alternatives -------------------------------------------------------------------

    def _answer(a) -> dict:
        return {"index": a.index, "text": a.text, "finish_reason": a.finish_reason,
                "branched_from": None if a.parent is None else {"answer": a.parent[0], "position": a.parent[1]},
                "cost": {"forward_passes": a.passes, "speculative_passes": a.speculative_passes,
                         "positions": a.positions, "seconds": a.seconds}}

    def _session(sid: str) -> Session:
        with lock:
            s = sessions.get(sid)
        if s is None:
            raise APIError(f"no session {sid!r} (it ended or was never made)", 404, "not_found_error")
        return s

    def speculation(s: Session, passes: int):
        """`passes` of eager speculation, SPECULATE_SLICE at a time (a background job's slices)."""
        left = passes
        while left > 0 and not s.closed:
            spent = s.speculate(min(SPECULATE_SLICE, left))
            if not spent:
                return
            left -= spent
            yield spent

    def speculate_later(s: Session) -> None:
        if s.ahead:
            worker.submit(Background(speculation(s, s.ahead)))

    @app.post("/v1/imo/sessions")
    async def new_session(req: SessionRequest):
        check_model(req.model)
        if req.n != 1:
            raise APIError("a session has one answer at a time (n = 1)", param="n")
        ids = list(req.prompt.encode("utf-8"))
        cfg = config_for(req, [ids])
        branch = BranchConfig(margin=req.margin, threshold=req.threshold)  # speculation runs in slices, below

        def start():
            s = engine.session(ids, cfg, branch)
            s.ahead = req.speculate
            return s, s.answer()

        s, a = await on_worker(start)
        speculate_later(s)
        sid = f"sess-{secrets.token_hex(8)}"
        with lock:
            sessions[sid] = s
            while len(sessions) > MAX_SESSIONS:
                _, old = sessions.popitem(last=False)
                worker.submit(Task(old.close, lambda r, e: None))
        return {"id": sid, "answer": _answer(a), "branch_points": s.branch_points()}

    @app.post("/v1/imo/sessions/{sid}/reject")
    async def reject(sid: str):
        s = _session(sid)
        a = await on_worker(s.reject)
        speculate_later(s)
        return {"id": sid, "answer": _answer(a), "branch_points": s.branch_points()}

    @app.get("/v1/imo/sessions/{sid}")
    async def show_session(sid: str):
        s = _session(sid)
        return {"id": sid, "answers": [_answer(a) for a in s.answers], "branch_points": s.branch_points()}

    @app.delete("/v1/imo/sessions/{sid}")
    async def end_session(sid: str):
        s = _session(sid)
        with lock:
            sessions.pop(sid, None)
        await on_worker(s.close)
        return {"id": sid, "deleted": True}

    @app.get("/v1/imo/stats")
    async def stats():
        st = engine.stats
        up = time.time() - worker.started
        return {"model": model_id, "uptime_s": up, "requests": worker.requests, "queue_length": worker.queued,
                "active_rows": worker.active_rows, "largest_batch": worker.largest_batch,
                "background_jobs": worker.pending_background, "token_budget": budget,
                "sessions": len(sessions), "engine": st.to_dict(),
                "tokens_per_s": st.generated / worker.busy_s if worker.busy_s else 0.0,
                "prefix_cache": None if engine.tree is None else {**engine.tree.stats.to_dict(),
                                                                   "stored_tokens": engine.tree.tokens,
                                                                   "budget_tokens": engine.tree.budget}}

    return app


def _server_class():
    import uvicorn

    class ImoServer(uvicorn.Server):
        """uvicorn's server, plus: the first Ctrl-C (or SIGTERM) ends every live request at once
        (the app's `shutdown`), so uvicorn finds no handler still waiting for tokens."""

        def handle_exit(self, sig: int, frame) -> None:
            stop = getattr(getattr(self.config, "app", None), "state", None)
            if stop is not None and hasattr(stop, "shutdown"):
                stop.shutdown()
            super().handle_exit(sig, frame)

    return ImoServer


def _config(app: FastAPI, host: str, port: int, log_level: str):
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", ws="none",
                          timeout_graceful_shutdown=10)


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the app until Ctrl-C (or SIGTERM), which stops it cleanly."""
    server = _server_class()(_config(app, host, port, log_level))
    server.run()


class ServerThread:
    """uvicorn in a background thread (tests, benchmarks): `with ServerThread(app) as url: ...`.
    Leaving the block stops it as the first Ctrl-C does."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = _server_class()(_config(app, host, port, "warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self, timeout: float = 30) -> bool:
        """Stop as on the first Ctrl-C; True if the server ended within `timeout` seconds."""
        self.server.handle_exit(signal.SIGINT, None)
        self.thread.join(timeout=timeout)
        return not self.thread.is_alive()

    def __exit__(self, *exc) -> None:
        self.stop()

