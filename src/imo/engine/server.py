"""`imo serve RUN`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) over the engine.

OpenAI's API: `GET /v1/models`, `POST /v1/completions` (prompt, or a list of prompts decoded as
one batch; max_tokens, temperature, top_p, n, stop, seed, logprobs, stream by server-sent events;
`response_format` for JSON decoded under a schema, imo.engine.structured; OpenAI's other fields
at their no-op values) and `POST /v1/chat/completions` (messages through the
run's chat template: imo.engine.chat_routes). Temperature 0 is greedy decoding. imo's own: the
alternatives sessions under `/v1/imo/sessions` (imo.engine.session_routes) and `GET /v1/imo/stats`
(cache hits, tokens/s, queue length, background work). Any tokenizer: prompts go through the
run's tokenizer and answers come back as text (imo.engine.text).

Requests are pydantic models (imo.engine.protocol); every error, unknown routes included, is
OpenAI's error object. A request's prompt + max_tokens must fit the token budget (the model's
context unless configured), as OpenAI and vLLM refuse larger ones. The model runs on one worker
thread (imo.engine.worker) that batches requests arriving together, gives every live group a turn
and runs speculation for alternatives in bounded slices between turns. A non-streamed request
whose client went away is cancelled, as a streamed one is. On the first Ctrl-C every live request
ends at once with an error and the server exits (`serve`).

To add an endpoint: a request model deriving from protocol.SamplingParams, turning its input into
token ids, then `Served.config_for` and `Served.run_jobs` with an answer shape (imo.engine.answers),
as `completions` here and `chat_completions` (imo.engine.chat_routes) do.

    app = create_app(engine, model_id="run-abc", chat=spec); serve(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from imo.engine.answers import CompletionShape
from imo.engine.chat_routes import add_chat_routes
from imo.engine.decode import Engine
from imo.engine.protocol import (
    APIError,
    ChatCompletionRequest,
    CompletionRequest,
    SessionRequest,
    validation_message,
)
from imo.engine.serving import Served, error_response
from imo.engine.session_routes import add_session_routes
from imo.engine.structured import check_request, constrained_answer
from imo.engine.worker import Worker
from imo.errors import ImoError

MAX_BODY = 1 << 20  # bytes of a request body
_error = error_response

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
               token_budget: int | None = None, chat: dict | None = None) -> FastAPI:
    """The app. token_budget: most tokens a request may ask for, prompt + max_tokens (default the
    model's context; a larger one lets generation slide past it). chat: the run's chat template
    and special tokens (chat.json; imo.data.tokenizer.chat_spec), for /v1/chat/completions."""
    worker = Worker(engine)
    budget = token_budget or engine.cfg.context_length
    if budget < 1:
        raise ImoError(f"the token budget must be >= 1, got {budget}")
    served = Served(engine, worker, model_id, budget, chat)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(title="imo", version="1", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.worker = worker
    app.state.served = served
    app.state.sessions = served.sessions
    app.state.token_budget = budget
    app.state.shutdown = worker.shutdown  # the server's first Ctrl-C calls it (ImoServer)
    app.add_middleware(_Guard, limit=max_body, api_key=api_key)

    # --- errors: one shape for all ------------------------------------------------------------

    models_of = {"/v1/completions": CompletionRequest, "/v1/chat/completions": ChatCompletionRequest,
                 "/v1/imo/sessions": SessionRequest}

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

    # --- OpenAI's routes ----------------------------------------------------------------------

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": int(worker.started),
                                            "owned_by": "imo"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        served.check_model(req.model)
        prompts = req.prompts(engine.text.encode)
        cfg = served.config_for(req, prompts)
        schema = req.response_format and check_request(req.response_format, req.logprobs)
        if schema is not None:  # imo's extension: a byte model has no chat template, so no chat route
            return await constrained_answer(served, request, prompts, cfg, schema, CompletionShape(model_id),
                                            stream=req.stream, include_usage=bool(req.stream_options
                                                                                  and req.stream_options.include_usage))
        return await served.run_jobs(request, prompts, cfg, stream=req.stream, logprobs=req.logprobs,
                                     shape=CompletionShape(model_id),
                                     include_usage=bool(req.stream_options and req.stream_options.include_usage))

    add_chat_routes(app, served)
    add_session_routes(app, served)

    @app.get("/v1/imo/stats")
    async def stats():
        st = engine.stats
        up = time.time() - worker.started
        return {"model": model_id, "uptime_s": up, "requests": worker.requests, "queue_length": worker.queued,
                "active_rows": worker.active_rows, "largest_batch": worker.largest_batch,
                "background_jobs": worker.pending_background, "token_budget": budget,
                "sessions": len(served.sessions), "engine": st.to_dict(),
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

