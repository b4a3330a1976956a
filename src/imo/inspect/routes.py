"""The feature browser's live half: `imo serve RUN --sae SAE_RUN` adds these routes to the server.

    GET  /v1/imo/inspect            which SAE is loaded (the browser checks it matches its own)
    POST /v1/imo/inspect/text       {"text"}: each token's strongest features, and the text's
                                    strongest features overall
    POST /v1/imo/inspect/steer      {"prompt", "feature", "value", "max_tokens"}: greedy text
                                    with the feature clamped at `value` at every position,
                                    beside the same prompt's text without the clamp

Clamping writes x -> x + (value - f_i(x)) W_dec[i] at the SAE's hook point, so the SAE's error
term stays in (Templeton et al. 2024, "Scaling Monosemanticity", steer the same way). The routes
work on their own copy of the model, so a hook set here never touches a completion that the
engine's worker thread is decoding, and one lock runs their requests one at a time.

A static page opened from file:// has the origin "null", so these answers carry
`Access-Control-Allow-Origin: *`. A request body is read as JSON whatever its Content-Type, so
the page can send text/plain, a "simple" request that needs no CORS preflight. The server's
API key, if one is set, still applies (the static page then cannot send it: serve it without).

    add_inspect_routes(app, model, tokenizer, sae, {"sae": sid, "hook": hook, "lm": rid})
"""

from __future__ import annotations

import copy
import json
import threading

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from imo.engine.protocol import APIError, error_body
from imo.inspect.browser import token_text
from imo.model.hooks import hook_points, hooks

MAX_TEXT_TOKENS = 1024   # the custom-text page scores at most this many tokens (and the context)
MAX_STEER_TOKENS = 256
PER_TOKEN = 5            # strongest features listed per token
OVERALL = 20             # strongest features of the whole text
CORS = {"Access-Control-Allow-Origin": "*"}


def _answer(body: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=CORS)


async def _body(request: Request) -> dict:
    try:
        data = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise APIError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise APIError("the request body must be a JSON object")
    return data


def _field(data: dict, name: str, kind: type, default=None, lo=None, hi=None):
    v = data.get(name, default)
    if v is None:
        raise APIError(f"'{name}' is required", param=name)
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, kind) or isinstance(v, bool):
        what = {str: "a string", int: "an integer", float: "a number"}[kind]
        raise APIError(f"'{name}' must be {what}", param=name)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise APIError(f"'{name}' must lie in [{lo}, {hi}], got {v}", param=name)
    return v


class Inspector:
    """The model copy, the SAE and the tokenizer behind the routes; every method holds the lock."""

    def __init__(self, model, tokenizer, sae, info: dict):
        self.model = copy.deepcopy(model).eval()
        self.tok, self.sae, self.info = tokenizer, sae.eval(), info
        self.hook = info["hook"]
        if self.hook not in hook_points(self.model):
            raise ValueError(f"the SAE's hook point {self.hook!r} is not in this model")
        self.lock = threading.Lock()

    def _ids(self, text: str, what: str, limit: int) -> list[int]:
        ids = list(self.tok.encode(text))
        if not ids:
            raise APIError(f"'{what}' is empty", param=what)
        if len(ids) > limit:
            raise APIError(f"'{what}' is {len(ids)} tokens; at most {limit} are taken", param=what)
        return ids

    @torch.no_grad()
    def text(self, text: str) -> dict:
        ids = self._ids(text, "text", min(MAX_TEXT_TOKENS, self.model.cfg.context_length))
        seen: dict = {}
        with self.lock, hooks(self.model, {self.hook: lambda a: seen.__setitem__("x", a)}):
            self.model(torch.tensor([ids]))
        codes = self.sae.encode(seen["x"][0].float())                     # (T, F)
        vals, idx = codes.topk(min(PER_TOKEN, codes.shape[1]), dim=-1)
        per_token = [[[int(i), round(float(v), 4)] for v, i in zip(vr, ir, strict=True) if v > 0]
                     for vr, ir in zip(vals, idx, strict=True)]
        best = codes.max(0).values
        order = best.argsort(descending=True)[:OVERALL]
        overall = [[int(i), round(float(best[i]), 4), int((codes[:, i] > 0).sum())] for i in order if best[i] > 0]
        return {"tokens": [token_text(self.tok, i) for i in ids], "features": per_token, "top": overall}

    @torch.no_grad()
    def steer(self, prompt: str, feature: int, value: float, max_tokens: int) -> dict:
        if not 0 <= feature < self.sae.cfg.latents:
            raise APIError(f"'feature' must lie in [0, {self.sae.cfg.latents - 1}], got {feature}", param="feature")
        ctx = self.model.cfg.context_length
        ids = self._ids(prompt, "prompt", ctx - 1)
        d = self.sae.W_dec[feature]

        def clamp(a):
            f = self.sae.encode(a.float())[..., feature:feature + 1]
            return (a.float() + (value - f) * d).to(a.dtype)

        with self.lock:
            plain = self._greedy(ids, max_tokens, None)
            steered = self._greedy(ids, max_tokens, clamp)
        return {"prompt": prompt, "feature": feature, "value": value, "baseline": plain, "steered": steered}

    def _greedy(self, ids: list[int], n: int, clamp) -> str:
        """n greedy tokens after ids (the window slides once the context is full), as text."""
        ctx, out = self.model.cfg.context_length, list(ids)
        with hooks(self.model, {self.hook: clamp} if clamp else {}):
            for _ in range(n):
                logits, _ = self.model(torch.tensor([out[-ctx:]]))
                out.append(int(logits[0, -1].argmax()))
        return b"".join(self.tok.token_bytes(i) for i in out[len(ids):]).decode("utf-8", "replace")


def add_inspect_routes(app: FastAPI, model, tokenizer, sae, info: dict) -> Inspector:
    """Mount the three routes on `app` (the server of imo.engine.server)."""
    ins = Inspector(model, tokenizer, sae, info)
    desc = {**info, "latents": sae.cfg.latents, "arch": sae.cfg.arch, "context": ins.model.cfg.context_length,
            "max_steer_tokens": MAX_STEER_TOKENS}

    @app.get("/v1/imo/inspect")
    async def inspect_info():
        return _answer(desc)

    @app.post("/v1/imo/inspect/text")
    async def inspect_text(request: Request):
        try:
            data = await _body(request)
            return _answer(await run_in_threadpool(ins.text, _field(data, "text", str)))
        except APIError as e:  # answered here, so the error carries the CORS header too
            return _answer(error_body(str(e), e.kind, e.param), e.status)

    @app.post("/v1/imo/inspect/steer")
    async def inspect_steer(request: Request):
        try:
            data = await _body(request)
            args = (_field(data, "prompt", str), _field(data, "feature", int),
                    _field(data, "value", float, lo=-1e4, hi=1e4),
                    _field(data, "max_tokens", int, 32, lo=1, hi=MAX_STEER_TOKENS))
            return _answer(await run_in_threadpool(ins.steer, *args))
        except APIError as e:
            return _answer(error_body(str(e), e.kind, e.param), e.status)

    return ins


def load_sae_run(sae_run: str, lm_run: str):
    """(SAE, info) of an SAE run made by `imo inspect sae`; refuses one trained on another model."""
    from safetensors.torch import load_file

    from imo.errors import ConfigError
    from imo.inspect import sae as S
    from imo.runs.store import RunStore

    store = RunStore.open()
    sid = store.resolve(sae_run)
    run = store.get(sid)
    if run["kind"] != "sae" or "sae" not in (run.get("artifacts") or {}):
        raise ConfigError(f"run {sid[:12]} is a {run['kind']} run, not an SAE (imo inspect sae makes them)")
    if run["config"]["lm"] != lm_run:
        raise ConfigError(f"SAE run {sid[:12]} was trained on run {run['config']['lm'][:12]}, not {lm_run[:12]}")
    sae = S.load(load_file(run["artifacts"]["sae"]), run["config"]["sae"])
    return sae, {"sae": sid, "hook": run["config"]["hook"], "lm": lm_run}
