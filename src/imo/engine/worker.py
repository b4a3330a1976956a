"""The server's model thread: one worker owns the engine and decodes every live request together.

Requests that arrive together are prefilled (through the prefix tree) and stacked into one
batched cache per prompt length; each loop turn runs one decode pass per such group, so a group's
rows advance in one forward pass, whatever their sampling options (each row has its own config
and generator). Groups admitted later run beside the earlier ones, a turn each. A cancelled
request (its client went away) leaves its group at the next turn, and its cache rows are freed.
Other model work runs on the same thread between turns: short tasks (an alternatives session's
answer), and background work such as speculation for alternatives, which is a generator run one
bounded slice per turn, so neither it nor a long request keeps the others waiting. `shutdown()`
ends every live and queued request with an error event at once (the server calls it on the first
Ctrl-C, so no handler is left waiting for tokens).

    w = Worker(engine); w.start(); w.submit(job); ...; w.stop()
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from imo.engine.cache import KVCache
from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine
from imo.engine.sampling import make_generator, row_seed, sample_tokens, stop_bytes
from imo.errors import ImoError

GATHER_S = 0.005  # when idle, wait this long after a request for others arriving with it
SHUTDOWN_MESSAGE = "the server is shutting down"


class ShuttingDown(ImoError):
    """A task that was queued when the server stopped."""


@dataclass
class Job:
    """One completion request: n rows; events go to `emit` (thread-safe, set by the server)."""

    prompt: list[int]
    cfg: GenerationConfig
    emit: Callable[[tuple], None]  # ("token", choice, token, logprob, top, finish) | ("done",) | ("error", msg)
    top_logprobs: int = 0
    index: int = 0  # the prompt's place in its request: choices index * n + c, row seeds (index, c)
    cancelled: threading.Event = field(default_factory=threading.Event)
    rows_left: int = 0


@dataclass
class Task:
    """A function to run on the model thread; its result (or error) goes to `done`."""

    fn: Callable[[], object]
    done: Callable[[object, BaseException | None], None]


@dataclass
class Background:
    """Work done a slice at a time between turns: each `next(slices)` is one bounded slice."""

    slices: Iterator[object]


@dataclass
class _Row:
    job: Job
    choice: int
    gen: torch.Generator
    seq: list[int]
    stops: list[bytes]
    out: list[int] = field(default_factory=list)


class _Group:
    def __init__(self, rows: list[_Row], cache: KVCache, logits: torch.Tensor) -> None:
        self.rows, self.cache, self.logits = rows, cache, logits


class Worker:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.inbox: queue.Queue = queue.Queue()
        self.groups: list[_Group] = []
        self.background: deque[Background] = deque()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="imo-engine", daemon=True)
        self.started = time.time()
        self.requests = 0
        self.busy_s = 0.0
        self.largest_batch = 0

    def start(self) -> None:
        self.thread.start()

    def shutdown(self) -> None:
        """Stop after the current turn; every live or queued request then gets an error event."""
        self._stop.set()

    def stop(self) -> None:
        self.shutdown()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        else:
            self._drain()

    def submit(self, item: Job | Task | Background) -> None:
        if self._stop.is_set():
            self._refuse(item)
        else:
            self.inbox.put(item)

    def submit_many(self, items: list[Job]) -> None:
        """Several jobs that must be admitted in the same turn (one request's prompts)."""
        if self._stop.is_set():
            for it in items:
                self._refuse(it)
        else:
            self.inbox.put(list(items))

    @staticmethod
    def _refuse(item) -> None:
        if isinstance(item, Job):
            item.emit(("error", SHUTDOWN_MESSAGE))
        elif isinstance(item, Task):
            item.done(None, ShuttingDown(SHUTDOWN_MESSAGE))

    def _drain(self) -> None:
        for g in self.groups:
            for job in {id(r.job): r.job for r in g.rows}.values():
                job.emit(("error", SHUTDOWN_MESSAGE))
        self.groups.clear()
        self.background.clear()
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            for it in item if isinstance(item, list) else [item]:
                self._refuse(it)

    @property
    def queued(self) -> int:
        return self.inbox.qsize()

    @property
    def pending_background(self) -> int:
        return len(self.background)

    @property
    def active_rows(self) -> int:
        return sum(len(g.rows) for g in self.groups)

    # --- the loop --------------------------------------------------------------------------------

    def _take(self) -> list:
        items = []
        busy = bool(self.groups or self.background)
        try:
            items.append(self.inbox.get_nowait() if busy else self.inbox.get(timeout=0.05))
        except queue.Empty:
            return items
        if not busy:
            time.sleep(GATHER_S)
        while True:
            try:
                items.append(self.inbox.get_nowait())
            except queue.Empty:
                return [x for it in items for x in (it if isinstance(it, list) else [it])]

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._turn()
        finally:
            self._drain()

    def _turn(self) -> None:
        items = self._take()
        t0 = time.perf_counter()
        jobs = []
        for it in items:
            if self._stop.is_set():
                self._refuse(it)
                continue
            if isinstance(it, Background):
                self.background.append(it)
            elif isinstance(it, Task):
                try:
                    it.done(it.fn(), None)
                except BaseException as e:  # noqa: BLE001  (handed to the request that asked)
                    it.done(None, e)
            else:
                jobs.append(it)
        if jobs:
            self._admit(jobs)
        for g in list(self.groups):
            try:
                self._step(g)
            except Exception as e:  # noqa: BLE001  (a bug must not kill the server: fail the rows)
                for job in {id(r.job): r.job for r in g.rows}.values():
                    job.emit(("error", f"internal error: {e}"))
                self.groups.remove(g)
        if self.background:  # one slice of background work, then the next one's turn
            try:
                next(self.background[0].slices)
                self.background.rotate(-1)
            except Exception:  # noqa: BLE001  (StopIteration: done; a failure of best-effort work drops it)
                self.background.popleft()
        self.busy_s += time.perf_counter() - t0

    def _admit(self, jobs: list[Job]) -> None:
        by_len: dict[int, list[tuple[_Row, KVCache, torch.Tensor]]] = {}
        for job in jobs:
            self.requests += 1
            if job.cancelled.is_set():
                continue
            if job.cfg.max_tokens == 0:
                job.emit(("done",))
                continue
            try:
                cache, logits = self.engine.prefill(job.prompt)
            except Exception as e:  # noqa: BLE001
                job.emit(("error", str(e)))
                continue
            job.rows_left = job.cfg.n
            for c in range(job.cfg.n):
                row = _Row(job, job.index * job.cfg.n + c, make_generator(row_seed(job.cfg.seed, job.index, c)),
                           list(job.prompt), stop_bytes(job.cfg.stop))
                by_len.setdefault(len(job.prompt), []).append((row, cache, logits))
        for entries in by_len.values():
            rows = [e[0] for e in entries]
            caches = [e[1] for e in entries]
            cache = KVCache.stack(caches, capacity=self.engine.cfg.context_length)
            for c in {id(c): c for c in caches}.values():
                self.engine.release(c)  # stacked: the rows own a copy now
            self.groups.append(_Group(rows, cache, torch.stack([e[2] for e in entries])))
            self.largest_batch = max(self.largest_batch, len(rows))

    def _step(self, g: _Group) -> None:
        lp = F.log_softmax(g.logits, dim=-1)  # (R, V)
        keep, toks = [], []
        for i, r in enumerate(g.rows):
            cfg = r.job.cfg
            if r.job.cancelled.is_set():
                continue
            t = int(sample_tokens(g.logits[i : i + 1], cfg, [r.gen])[0])
            r.out.append(t)
            r.seq.append(t)
            top = None
            if r.job.top_logprobs:
                v, ix = lp[i].topk(r.job.top_logprobs)
                top = list(zip(ix.tolist(), v.tolist(), strict=True))
            finish = self.engine.text.finished(r.out, r.stops) or ("length" if len(r.out) >= cfg.max_tokens else None)
            r.job.emit(("token", r.choice, t, float(lp[i, t]), top, finish))
            self.engine.stats.generated += 1
            if finish is None:
                keep.append(i)
                toks.append(t)
            else:
                r.job.rows_left -= 1
                if r.job.rows_left == 0:
                    r.job.emit(("done",))
        if len(keep) < len(g.rows):
            g.rows = [g.rows[i] for i in keep]
            if not g.rows:
                self.groups.remove(g)
                return
            g.cache = g.cache.select(keep)
        if g.cache.length + 1 > self.engine.cfg.context_length:
            g.cache, g.logits = self.engine.slide([r.seq for r in g.rows])
        else:
            g.logits = self.engine.forward(torch.tensor(toks)[:, None], g.cache)[:, -1]
