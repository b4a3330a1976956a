"""Token events -> OpenAI's answer JSON, for `/v1/completions` and `/v1/chat/completions` alike.

A `Collector` keeps one `imo.engine.text.RowText` per choice: the text each token completes,
held back while it could still begin a stop string and cut where a stop (or an end-of-sequence
token) ends the choice, so streamed pieces join to exactly the non-streamed text. A *shape*
writes that text in one endpoint's format: `CompletionShape` (`text`, `logprobs.tokens` /
`token_logprobs` / `top_logprobs` / `text_offset`) or `ChatShape` (`message` or `delta`, and
`logprobs.content` entries with `token`, `logprob`, `bytes`, `top_logprobs`).

    col = Collector(engine.text, choices=2, stops=stop_bytes(cfg.stop), logprobs=1)
    lo, hi = col.add(choice, token, logprob, top, finish); shape.chunk(col, choice, lo, hi)
"""

from __future__ import annotations

import secrets
import time

from imo.engine.text import RowText, TokenText


class Collector:
    """Each choice's tokens, log-probabilities and top alternatives, and its text so far."""

    def __init__(self, tt: TokenText, choices: int, stops: list[bytes], logprobs: int | None) -> None:
        self.tt, self.logprobs = tt, logprobs
        self.rows = [RowText(tt, stops) for _ in range(choices)]
        self.lps: list[list[float]] = [[] for _ in range(choices)]
        self.tops: list[list] = [[] for _ in range(choices)]
        self.finish: list[str | None] = [None] * choices

    def add(self, choice: int, token: int, lp: float, top, finish: str | None) -> tuple[int, int] | None:
        """Record one token; the range of tokens it makes ready to send, or None when none is."""
        self.lps[choice].append(lp)
        self.tops[choice].append(top)
        self.finish[choice] = finish
        lo, hi = self.rows[choice].add(token, bool(finish))
        return (lo, hi) if hi > lo or finish else None

    def close(self) -> None:
        """Every choice is over (each ended, or the request did): release what was held back."""
        for row in self.rows:
            row.finish()

    @property
    def generated(self) -> int:
        return sum(len(r.tokens) for r in self.rows)

    def reason(self, c: int) -> str:
        return self.finish[c] or "length"


class CompletionShape:
    """POST /v1/completions: `text_completion` objects."""

    def __init__(self, model_id: str) -> None:
        self.head = {"id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion", "created": int(time.time()),
                     "model": model_id}
        self.chunk_head = self.head

    def opening(self, col: Collector) -> list[dict]:
        return []

    def chunk(self, col: Collector, c: int, lo: int, hi: int) -> dict:
        row = col.rows[c]
        return {"text": "".join(row.pieces[lo:hi]), "index": c, "logprobs": self._lp(col, c, lo, hi),
                "finish_reason": col.finish[c] if row.kept is not None else None}

    def choices(self, col: Collector) -> list[dict]:
        return [{"text": row.text, "index": c, "logprobs": self._lp(col, c, 0, len(row.pieces)),
                 "finish_reason": col.reason(c)} for c, row in enumerate(col.rows)]

    @staticmethod
    def _lp(col: Collector, c: int, lo: int, hi: int) -> dict | None:
        if col.logprobs is None:
            return None
        pieces = col.rows[c].pieces
        start = sum(map(len, pieces[:lo]))
        offsets = []
        for p in pieces[lo:hi]:
            offsets.append(start)
            start += len(p)
        return {"tokens": pieces[lo:hi], "token_logprobs": col.lps[c][lo:hi],
                "top_logprobs": [None if t is None else {col.tt.name(a): b for a, b in t}
                                 for t in col.tops[c][lo:hi]] if col.logprobs else None,
                "text_offset": offsets}


class ChatShape:
    """POST /v1/chat/completions: `chat.completion` objects, `chat.completion.chunk` when streamed."""

    def __init__(self, model_id: str) -> None:
        self.head = {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion",
                     "created": int(time.time()), "model": model_id}
        self.chunk_head = {**self.head, "object": "chat.completion.chunk"}

    def opening(self, col: Collector) -> list[dict]:
        """The first chunk of each choice names the role, as OpenAI's does."""
        return [{"index": c, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                for c in range(len(col.rows))]

    def chunk(self, col: Collector, c: int, lo: int, hi: int) -> dict:
        row = col.rows[c]
        text = "".join(row.pieces[lo:hi])
        return {"index": c, "delta": {"content": text} if text else {}, "logprobs": self._lp(col, c, lo, hi),
                "finish_reason": col.finish[c] if row.kept is not None else None}

    def choices(self, col: Collector) -> list[dict]:
        return [{"index": c, "message": {"role": "assistant", "content": row.text},
                 "logprobs": self._lp(col, c, 0, len(row.pieces)), "finish_reason": col.reason(c)}
                for c, row in enumerate(col.rows)]

    @staticmethod
    def _lp(col: Collector, c: int, lo: int, hi: int) -> dict | None:
        if col.logprobs is None:
            return None
        row, tt = col.rows[c], col.tt
        out = []
        for i in range(lo, hi):
            top = col.tops[c][i] or []
            out.append({"token": row.pieces[i], "logprob": col.lps[c][i], "bytes": list(row.raw[i]),
                        "top_logprobs": [{"token": tt.name(a), "logprob": b, "bytes": list(tt.piece(a))}
                                         for a, b in top]})
        return {"content": out}
