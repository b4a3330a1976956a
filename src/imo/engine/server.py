"""`imo serve RUN`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) over the engine.

OpenAI's API: `GET /v1/models`, `POST /v1/completions` (prompt, max_tokens, temperature, top_p,
n, stop, seed, logprobs, stream by server-sent events). Temperature 0 is greedy decoding.
imo's own: `POST /v1/imo/sessions` (an answer with branching alternatives), `POST
/v1/imo/sessions/{id}/reject` (the next answer and what it cost), `GET /v1/imo/sessions/{id}`
(answers and branch points), `DELETE /v1/imo/sessions/{id}`, and `GET /v1/imo/stats` (cache hits,
tokens/s, queue length). Bad input is a 400 with a message in OpenAI's error shape; a missing or
wrong key (with --api-key) a 401; an oversized body a 413. The model runs on one worker thread
(imo.engine.worker), which batches requests that arrive together.

    app = create_app(engine, model_id="run-abc"); uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import codecs
import json
import secrets
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from imo.engine.branches import BranchConfig
from imo.engine.config import MAX_N, MAX_STOPS, GenerationConfig
from imo.engine.decode import Engine
from imo.engine.sampling import stop_bytes, strip_stop
from imo.engine.worker import Job, Task, Worker
from imo.errors import ImoError

MAX_BODY = 1 << 20  # bytes of a request body
MAX_SESSIONS = 32  # alternatives sessions kept (the oldest is closed beyond it)
MAX_LOGPROBS = 5  # as OpenAI's completions API

COMPLETION_FIELDS = {"model", "prompt", "max_tokens", "temperature", "top_p", "n", "stop", "seed",
                     "logprobs", "stream", "user", "stream_options"}
SESSION_FIELDS = {"model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "margin",
                  "threshold", "speculate"}


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


def _error(message: str, status: int, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                        status_code=status)


def token_str(t: int) -> str:
    """A byte token as OpenAI names tokens: its character if printable ASCII, else bytes:\\xNN."""
    return chr(t) if 32 <= t < 127 else f"bytes:\\x{t:02x}"


def _number(body: dict, name: str, default, kind=(int, float)):
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, kind):
        raise BadRequest(f"{name} must be a number, got {v!r}")
    return v


def _prompt(body: dict, engine: Engine) -> list[int]:
    p = body.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
        p = p[0]
    if not isinstance(p, str):
        raise BadRequest("prompt must be a string (one prompt per request)")
    ids = list(p.encode("utf-8"))
    engine.check_prompt(ids)
    return ids


def _stops(body: dict) -> tuple[str, ...]:
    s = body.get("stop")
    if s is None:
        return ()
    if isinstance(s, str):
        s = [s]
    if not isinstance(s, list) or not all(isinstance(x, str) and x for x in s) or len(s) > MAX_STOPS:
        raise BadRequest(f"stop must be a non-empty string or a list of at most {MAX_STOPS} of them")
    return tuple(s)


def generation_config(body: dict, allowed: set[str], n_ok: bool = True) -> GenerationConfig:
    """OpenAI's request fields as a GenerationConfig; temperature 0 means greedy."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unsupported field(s): {', '.join(unknown)}; supported: {', '.join(sorted(allowed))}")
    max_tokens = _number(body, "max_tokens", 16, int)
    temperature = _number(body, "temperature", 1.0)
    top_p = _number(body, "top_p", 1.0)
    n = _number(body, "n", 1, int)
    seed = _number(body, "seed", None, int)
    if max_tokens < 0:
        raise BadRequest(f"max_tokens must be >= 0, got {max_tokens}")
    if temperature < 0 or temperature > 2:
        raise BadRequest(f"temperature must be in [0, 2], got {temperature}")
    if not 0 < top_p <= 1:
        raise BadRequest(f"top_p must be in (0, 1], got {top_p}")
    if not 1 <= n <= MAX_N:
        raise BadRequest(f"n must be between 1 and {MAX_N}, got {n}")
    if temperature == 0:
        if n > 1:
            raise BadRequest("n > 1 with temperature 0 (greedy) gives n identical answers")
        return GenerationConfig(strategy="greedy", max_tokens=max_tokens, stop=_stops(body))
    return GenerationConfig(strategy="sample", max_tokens=max_tokens, temperature=temperature,
                            top_p=top_p, n=n, seed=seed, stop=_stops(body))


class _Collector:
    """Turns a job's token events into OpenAI choices: UTF-8 pieces, stop strings held back until
    they cannot begin one, logprobs per emitted token."""

    def __init__(self, n: int, cfg: GenerationConfig, logprobs: int | None) -> None:
        self.cfg, self.logprobs = cfg, logprobs
        self.stops = stop_bytes(cfg.stop)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.tokens = [[] for _ in range(n)]
        self.lps = [[] for _ in range(n)]
        self.tops = [[] for _ in range(n)]
        self.sent = [0] * n
        self.dec = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(n)]
        self.finish: list[str | None] = [None] * n

    def add(self, choice: int, token: int, lp: float, top, finish) -> dict | None:
        """Record one token; return the streaming chunk's choice it makes ready, if any."""
        self.tokens[choice].append(token)
        self.lps[choice].append(lp)
        self.tops[choice].append(top)
        self.finish[choice] = finish
        toks = self.tokens[choice]
        ready = len(strip_stop(toks, self.stops)) if finish else max(len(toks) - self.hold, self.sent[choice])
        lo, hi = self.sent[choice], ready
        if hi <= lo and not finish:
            return None
        self.sent[choice] = hi
        text = self.dec[choice].decode(bytes(toks[lo:hi]), final=bool(finish))
        return {"text": text, "index": choice, "logprobs": self._lp(choice, lo, hi), "finish_reason": finish}

    def _lp(self, c: int, lo: int, hi: int) -> dict | None:
        if self.logprobs is None:
            return None
        return {"tokens": [token_str(t) for t in self.tokens[c][lo:hi]],
                "token_logprobs": self.lps[c][lo:hi],
                "top_logprobs": [None if t is None else {token_str(a): b for a, b in t}
                                 for t in self.tops[c][lo:hi]] if self.logprobs else None,
                "text_offset": list(range(lo, hi))}

    def choices(self) -> list[dict]:
        out = []
        for c, toks in enumerate(self.tokens):
            kept = strip_stop(toks, self.stops)
            out.append({"text": bytes(kept).decode("utf-8", "replace"), "index": c,
                        "logprobs": self._lp(c, 0, len(kept)), "finish_reason": self.finish[c] or "length"})
        return out


def create_app(engine: Engine, model_id: str, api_key: str | None = None, max_body: int = MAX_BODY) -> FastAPI:
    worker = Worker(engine)
    sessions: OrderedDict[str, Any] = OrderedDict()
    lock = threading.Lock()

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

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if api_key is not None:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _error("missing or wrong API key (send 'Authorization: Bearer KEY')", 401,
                              "authentication_error")
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body:
            return _error(f"request body of {size} bytes is over the limit of {max_body}", 413)
        return await call_next(request)

    async def body_of(request: Request) -> dict:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body:
                raise BadRequest(f"request body is over the limit of {max_body} bytes", 413)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"malformed JSON: {e}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != model_id:
            raise BadRequest(f"unknown model {model!r}; this server serves {model_id!r}", 404, "not_found_error")
        return body

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, e: BadRequest):
        return _error(str(e), e.status, e.kind)

    @app.exception_handler(ImoError)
    async def _imo(request: Request, e: ImoError):
        return _error(str(e), 400)

    async def on_worker(fn):
        """Run fn on the model thread (the engine is not shared between threads)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(result, err):
            loop.call_soon_threadsafe(lambda: fut.done() or (fut.set_exception(err) if err else fut.set_result(result)))

        worker.submit(Task(fn, done))
        return await fut

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": int(worker.started),
                                            "owned_by": "imo"}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await body_of(request)
        cfg = generation_config(body, COMPLETION_FIELDS)
        ids = _prompt(body, engine)
        logprobs = _number(body, "logprobs", None, int)
        if logprobs is not None and not 0 <= logprobs <= MAX_LOGPROBS:
            raise BadRequest(f"logprobs must be between 0 and {MAX_LOGPROBS}, got {logprobs}")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        job = Job(ids, cfg, lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev), top_logprobs=logprobs or 0)
        worker.submit(job)
        col = _Collector(cfg.n, cfg, logprobs)
        cid, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())
        head = {"id": cid, "object": "text_completion", "created": created, "model": model_id}
        usage = lambda: {"prompt_tokens": len(ids), "completion_tokens": sum(map(len, col.tokens)),  # noqa: E731
                         "total_tokens": len(ids) + sum(map(len, col.tokens))}

        if not body.get("stream"):
            try:
                while (ev := await events.get())[0] == "token":
                    col.add(*ev[1:])
            finally:
                job.cancelled.set()
            if ev[0] == "error":
                raise BadRequest(ev[1])
            return {**head, "choices": col.choices(), "usage": usage()}

        async def sse():
            try:
                while True:
                    ev = await events.get()
                    if ev[0] == "error":
                        yield f"data: {json.dumps({'error': {'message': ev[1], 'type': 'server_error'}})}\n\n"
                        break
                    if ev[0] == "done":
                        if (body.get("stream_options") or {}).get("include_usage"):
                            yield f"data: {json.dumps({**head, 'choices': [], 'usage': usage()})}\n\n"
                        break
                    choice = col.add(*ev[1:])
                    if choice is not None:
                        yield f"data: {json.dumps({**head, 'choices': [choice]})}\n\n"
                yield "data: [DONE]\n\n"
            finally:  # normal end, or the client went away: free the rows and their cache
                job.cancelled.set()

        return StreamingResponse(sse(), media_type="text/event-stream")

    def _answer(a) -> dict:
        return {"index": a.index, "text": a.text, "finish_reason": a.finish_reason,
                "branched_from": None if a.parent is None else {"answer": a.parent[0], "position": a.parent[1]},
                "cost": {"forward_passes": a.passes, "speculative_passes": a.speculative_passes,
                         "positions": a.positions, "seconds": a.seconds}}

    def _session(sid: str):
        with lock:
            s = sessions.get(sid)
        if s is None:
            raise BadRequest(f"no session {sid!r} (it ended or was never made)", 404, "not_found_error")
        return s

    @app.post("/v1/imo/sessions")
    async def new_session(request: Request):
        body = await body_of(request)
        cfg = generation_config({k: v for k, v in body.items() if k not in ("margin", "threshold", "speculate")},
                                SESSION_FIELDS)
        ahead = _number(body, "speculate", 0, int)
        BranchConfig(speculate=ahead)  # validates
        # speculation runs as its own task after the answer is sent, not inside the request
        branch = BranchConfig(margin=body.get("margin", "ratio"), threshold=_number(body, "threshold", 0.5))
        ids = _prompt(body, engine)

        def start():
            s = engine.session(ids, cfg, branch)
            s.ahead = ahead
            return s, s.answer()

        s, a = await on_worker(start)
        if ahead:
            worker.submit(Task(lambda: s.speculate(ahead), lambda r, e: None))
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
        if s.ahead:
            worker.submit(Task(lambda: s.speculate(s.ahead), lambda r, e: None))
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
                "sessions": len(sessions), "engine": st.to_dict(),
                "tokens_per_s": st.generated / worker.busy_s if worker.busy_s else 0.0,
                "prefix_cache": None if engine.tree is None else {**engine.tree.stats.to_dict(),
                                                                   "stored_tokens": engine.tree.tokens,
                                                                   "budget_tokens": engine.tree.budget}}

    return app


class ServerThread:
    """uvicorn in a background thread (tests, benchmarks): `with ServerThread(app) as url: ...`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    lifespan="on", ws="none"))
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

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
