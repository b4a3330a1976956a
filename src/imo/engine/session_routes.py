"""imo's own routes for branching alternatives (imo.engine.branches) on `imo serve`:

    POST /v1/imo/sessions              prompt, sampling fields, margin, threshold, speculate -> the first answer
    POST /v1/imo/sessions/{id}/reject  the next answer and what it cost
    GET  /v1/imo/sessions/{id}         every answer so far;   DELETE /v1/imo/sessions/{id}

Speculation (eager alternatives) runs after an answer is sent, as background work on the model
thread, SPECULATE_SLICE passes at a time between the other requests' turns.

    add_session_routes(app, served)
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI

from imo.engine.branches import BranchConfig, Session
from imo.engine.protocol import APIError, SessionRequest
from imo.engine.serving import Served
from imo.engine.worker import Background, Task

MAX_SESSIONS = 32  # alternatives sessions kept (the oldest is closed beyond it)
SPECULATE_SLICE = 8  # forward passes of speculation between two turns of the other requests


def _answer(a) -> dict:
    return {"index": a.index, "text": a.text, "finish_reason": a.finish_reason,
            "branched_from": None if a.parent is None else {"answer": a.parent[0], "position": a.parent[1]},
            "cost": {"forward_passes": a.passes, "speculative_passes": a.speculative_passes,
                     "positions": a.positions, "seconds": a.seconds}}


def _speculation(s: Session, passes: int):
    """`passes` of eager speculation, SPECULATE_SLICE at a time (a background job's slices)."""
    left = passes
    while left > 0 and not s.closed:
        spent = s.speculate(min(SPECULATE_SLICE, left))
        if not spent:
            return
        left -= spent
        yield spent


def add_session_routes(app: FastAPI, served: Served) -> None:
    engine, worker, sessions, lock = served.engine, served.worker, served.sessions, served.lock

    def session_of(sid: str) -> Session:
        with lock:
            s = sessions.get(sid)
        if s is None:
            raise APIError(f"no session {sid!r} (it ended or was never made)", 404, "not_found_error")
        return s

    def speculate_later(s: Session) -> None:
        if s.ahead:
            worker.submit(Background(_speculation(s, s.ahead)))

    @app.post("/v1/imo/sessions")
    async def new_session(req: SessionRequest):
        served.check_model(req.model)
        if req.n != 1:
            raise APIError("a session has one answer at a time (n = 1)", param="n")
        ids = engine.text.encode(req.prompt)
        cfg = served.config_for(req, [ids])
        branch = BranchConfig(margin=req.margin, threshold=req.threshold)  # speculation runs in slices, below

        def start():
            s = engine.session(ids, cfg, branch)
            s.ahead = req.speculate
            return s, s.answer()

        s, a = await served.on_worker(start)
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
        s = session_of(sid)
        a = await served.on_worker(s.reject)
        speculate_later(s)
        return {"id": sid, "answer": _answer(a), "branch_points": s.branch_points()}

    @app.get("/v1/imo/sessions/{sid}")
    async def show_session(sid: str):
        s = session_of(sid)
        return {"id": sid, "answers": [_answer(a) for a in s.answers], "branch_points": s.branch_points()}

    @app.delete("/v1/imo/sessions/{sid}")
    async def end_session(sid: str):
        s = session_of(sid)
        with lock:
            sessions.pop(sid, None)
        await served.on_worker(s.close)
        return {"id": sid, "deleted": True}
