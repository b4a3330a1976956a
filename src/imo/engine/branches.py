"""Branching alternatives: when two next tokens are about equally likely, keep the state that
could take the other one; when the user rejects an answer, serve the next from there.

While an answer is decoded, every step whose two most likely tokens are within a margin becomes
a *branch point*: its position, both candidates, their probabilities, and a fork of the KV cache
as it was before the token was fed (a fork shares every cached position, imo.engine.cache).

Definition. The *next answer* after a rejection takes, at the not-yet-used branch point with the
smallest margin (ties: the earlier answer, then the earlier position), the runner-up token instead
of the one chosen, and continues from there with the same decoding strategy (greedy, or sampling
with a generator seeded from the session seed and the branch point) to the same max_tokens or a
stop string. Its own branch points (after the branch position) join the pool once it is served.

Cost. `reject()` reports the forward passes (model calls) and positions its answer cost. The
prompt and the answer up to the branch are never recomputed; passes spent on that branch earlier
by `speculate()` (eager mode) are counted in its cost, so eager and lazy report the same passes
and differ only in latency. Regenerating the same answer from scratch costs one prefill pass plus
a pass per token after the first.

Margins: "ratio" is log(p1 / p2) (a branch point when p2 / p1 >= threshold), "gap" is p1 - p2 (a
branch point when p1 - p2 <= threshold); both are 0 for a tie.

    s = engine.session("The "); a = s.answer(); b = s.reject(); s.branch_points()
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Protocol

import torch

from imo.engine.cache import KVCache
from imo.engine.config import GenerationConfig
from imo.engine.sampling import make_generator, sample_tokens, stop_bytes
from imo.errors import ConfigError, ImoError

MARGINS = ("ratio", "gap")


class EngineLike(Protocol):
    """What a session needs of imo.engine.decode.Engine (named here, not imported: the engine
    imports this module for Engine.session)."""

    cfg: object
    stats: object
    text: object  # imo.engine.text.TokenText

    def forward(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor: ...
    def prefill(self, ids: list[int]) -> tuple[KVCache, torch.Tensor]: ...
    def release(self, cache: KVCache) -> None: ...
    def check_prompt(self, ids: list[int], cfg: GenerationConfig | None = None) -> None: ...


@dataclass(frozen=True)
class BranchConfig:
    margin: str = "ratio"  # ratio | gap
    threshold: float = 0.5  # ratio: p2/p1 >= threshold; gap: p1 - p2 <= threshold
    speculate: int = 0  # eager: passes to spend on runner-up branches after each answer (0: lazy)

    def __post_init__(self) -> None:
        if self.margin not in MARGINS:
            raise ConfigError(f"unknown margin {self.margin!r}; choose one of: {', '.join(MARGINS)}")
        if self.margin == "ratio" and not 0 < self.threshold <= 1:
            raise ConfigError(f"a ratio threshold must be in (0, 1], got {self.threshold}")
        if self.margin == "gap" and not 0 <= self.threshold <= 1:
            raise ConfigError(f"a gap threshold must be in [0, 1], got {self.threshold}")
        if self.speculate < 0:
            raise ConfigError(f"speculate must be >= 0 passes, got {self.speculate}")

    def measure(self, p1: float, p2: float) -> float | None:
        """The margin between the two most likely tokens, or None when it is no branch point."""
        if self.margin == "ratio":
            return math.log(p1 / p2) if p2 > 0 and p2 / p1 >= self.threshold else None
        return p1 - p2 if p1 - p2 <= self.threshold else None


@dataclass
class Answer:
    index: int
    tokens: list[int]  # as generated (a stop string or end-of-sequence token, if any, included)
    text: str  # stop string removed
    finish_reason: str
    parent: tuple[int, int] | None  # (answer, position) it branched from
    passes: int  # forward passes it cost (speculative ones included)
    positions: int  # token positions computed
    seconds: float  # wall time of the call that served it (speculation done earlier excluded)
    speculative_passes: int = 0  # of `passes`, those spent before it was asked for


@dataclass
class BranchPoint:
    answer: int
    position: int  # index in the answer of the token that could have been the other
    chosen: int
    runner_up: int
    p_chosen: float
    p_runner_up: float
    margin: float
    used: bool = False
    cache: KVCache | None = field(default=None, repr=False)
    run: _Run | None = field(default=None, repr=False)  # the runner-up's continuation, once started

    def to_dict(self) -> dict:
        return {"answer": self.answer, "position": self.position,
                "candidates": [self.chosen, self.runner_up],
                "probabilities": [self.p_chosen, self.p_runner_up], "margin": self.margin,
                "used": self.used, "speculated": 0 if self.run is None else self.run.passes}


class _Run:
    """One answer being decoded, resumable: speculation can stop it and `reject` finish it."""

    def __init__(self, session: Session, index: int, tokens: list[int], cache: KVCache,
                 logits: torch.Tensor | None, gen: torch.Generator, passes: int = 0, positions: int = 0):
        self.s, self.index, self.tokens, self.cache = session, index, tokens, cache
        self.logits, self.gen = logits, gen  # logits (V,) of the next token; None: it must be fed
        self.passes, self.positions = passes, positions
        self.points: list[BranchPoint] = []
        self.done: str | None = None
        self._check_done()

    def _check_done(self) -> None:
        cfg = self.s.gen
        if self.s.engine.text.finished(self.tokens, self.s.stops):
            self.done = "stop"
        elif len(self.tokens) >= cfg.max_tokens:
            self.done = "length"

    def step(self) -> None:
        """Feed the last token if needed (one pass), else choose the next token."""
        if self.logits is None:
            self.logits = self.s.engine.forward(torch.tensor([self.tokens[-1:]]), self.cache)[0, -1]
            self.passes += 1
            self.positions += 1
            return
        probs = torch.softmax(self.logits, dim=-1)
        tok = int(sample_tokens(self.logits[None], self.s.gen, [self.gen])[0])
        (p1, p2), (t1, t2) = probs.topk(2)
        if tok in (int(t1), int(t2)):
            alt = int(t2) if tok == int(t1) else int(t1)
            m = self.s.branch.measure(float(p1), float(p2))
            if m is not None:
                self.points.append(BranchPoint(self.index, len(self.tokens), tok, alt, float(probs[tok]),
                                               float(probs[alt]), m, cache=self.cache.fork()))
        self.tokens.append(tok)
        self.logits = None
        self._check_done()

    def run(self, max_passes: int | None = None) -> None:
        start = self.passes
        while not self.done and (max_passes is None or self.passes - start < max_passes
                                 or self.logits is not None):
            self.step()


class Session:
    """The answers to one prompt: the first, then one more per rejection (see the module text)."""

    def __init__(self, engine: EngineLike, prompt: list[int], gen: GenerationConfig, branch: BranchConfig) -> None:
        if gen.strategy not in ("greedy", "sample") or gen.n != 1:
            raise ConfigError("alternatives need strategy greedy or sample with n = 1")
        engine.check_prompt(prompt, gen)
        if len(prompt) + gen.max_tokens > engine.cfg.context_length:
            raise ConfigError(f"prompt ({len(prompt)}) + max_tokens ({gen.max_tokens}) exceed the context "
                              f"of {engine.cfg.context_length}; alternatives keep the whole answer in the cache")
        self.engine, self.prompt, self.gen, self.branch = engine, list(prompt), gen, branch
        self.stops = stop_bytes(gen.stop)
        self.seed = gen.seed if gen.seed is not None else int(torch.randint(0, 2**31, (1,)))
        self.answers: list[Answer] = []
        self.points: list[BranchPoint] = []
        self._prefill: KVCache | None = None
        self.closed = False
        self.ahead = 0  # passes of eager speculation the server runs after each answer

    def _branch_generator(self, bp: BranchPoint) -> torch.Generator:
        return make_generator(zlib.crc32(f"{self.seed}:{bp.answer}:{bp.position}:{bp.runner_up}".encode()))

    def _serve(self, run: _Run, parent: tuple[int, int] | None, t0: float, spec: int) -> Answer:
        run.run()
        self.points += run.points
        text = self.engine.text.decode(run.tokens, self.stops)
        a = Answer(len(self.answers), run.tokens, text, run.done or "length", parent, run.passes,
                   run.positions, time.perf_counter() - t0, spec)
        self.answers.append(a)
        if self.branch.speculate:  # after the answer is ready: its `seconds` do not include this
            self.speculate(self.branch.speculate)
        return a

    def answer(self) -> Answer:
        """The first answer (decoded once; later calls return it again)."""
        if self.answers:
            return self.answers[0]
        t0 = time.perf_counter()
        if self.gen.max_tokens == 0:
            raise ConfigError("max_tokens is 0: there is no answer to branch")
        st = self.engine.stats
        p0, q0 = st.passes, st.positions
        cache, logits = self.engine.prefill(self.prompt)
        self._prefill = cache
        run = _Run(self, 0, [], cache, logits, make_generator(self.seed),
                   passes=st.passes - p0, positions=st.positions - q0)
        return self._serve(run, None, t0, 0)

    def next_point(self) -> BranchPoint | None:
        free = [p for p in self.points if not p.used]
        return min(free, key=lambda p: (p.margin, p.answer, p.position)) if free else None

    def _start(self, bp: BranchPoint) -> _Run:
        if bp.run is None:
            parent = self.answers[bp.answer].tokens
            bp.run = _Run(self, len(self.answers), parent[: bp.position] + [bp.runner_up], bp.cache, None,
                          self._branch_generator(bp))
            bp.cache = None  # the run owns it now
        return bp.run

    def reject(self) -> Answer:
        """Reject the latest answer; serve the next one (see the module text for the definition)."""
        if not self.answers:
            self.answer()
        t0 = time.perf_counter()
        bp = self.next_point()
        if bp is None:
            raise ImoError("no alternatives left: no unused branch point within the margin "
                           "(raise the threshold for more)")
        bp.used = True
        spec = bp.run.passes if bp.run is not None else 0
        run = self._start(bp)
        run.index = len(self.answers)
        for p in run.points:
            p.answer = run.index
        return self._serve(run, (bp.answer, bp.position), t0, spec)

    def speculate(self, budget: int) -> int:
        """Eager mode: spend up to `budget` passes continuing unused branches, smallest margin
        first, so that a later `reject` finds its answer (partly) computed. Returns passes spent."""
        spent = 0
        for bp in sorted((p for p in self.points if not p.used), key=lambda p: (p.margin, p.answer, p.position)):
            if spent >= budget:
                break
            run = self._start(bp)
            before = run.passes
            run.run(max_passes=budget - spent)
            spent += run.passes - before
        return spent

    def close(self) -> None:
        """Drop every kept state (forks and unfinished branches) and unlock the prefix tree."""
        self.closed = True
        if self._prefill is not None:
            self.engine.release(self._prefill)
            self._prefill = None
        for p in self.points:
            p.cache, p.run = None, None
        self.points = [p for p in self.points if p.used]

    def branch_points(self) -> list[dict]:
        return [p.to_dict() for p in self.points]


def session(engine: EngineLike, prompt: list[int] | str, gen: GenerationConfig | None = None,
            branch: BranchConfig | None = None) -> Session:
    ids = engine.text.encode(prompt) if isinstance(prompt, str | bytes) else list(prompt)
    return Session(engine, ids, gen or GenerationConfig(strategy="greedy"), branch or BranchConfig())
