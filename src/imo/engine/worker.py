"""The server's model thread: one worker owns the engine and decodes every live request together.

Requests that arrive together are prefilled (through the prefix tree) and stacked into one
batched cache per prompt length; each loop turn runs one decode pass per such group, so a group's
rows advance in one forward pass, whatever their sampling options (each row has its own config
and generator). Groups admitted later run beside the earlier ones, a turn each. A cancelled
request (its client went away) leaves its group at the next turn, and its cache rows are freed.
Other model work (the alternatives sessions) runs on the same thread between turns, as tasks.

    w = Worker(engine); w.start(); w.submit(job); ...; w.stop()
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from imo.engine.cache import KVCache
from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine
from imo.engine.sampling import ends_with_stop, make_generator, sample_tokens, stop_bytes

GATHER_S = 0.005  # when idle, wait this long after a request for others arriving with it


@dataclass
class Job:
    """One completion request: n rows; events go to `emit` (thread-safe, set by the server)."""

    prompt: list[int]
    cfg: GenerationConfig
    emit: Callable[[tuple], None]  # ("token", choice, token, logprob, top, finish) | ("done",) | ("error", msg)
    top_logprobs: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)
    rows_left: int = 0


@dataclass
class Task:
    """A function to run on the model thread; its result (or error) goes to `done`."""

    fn: Callable[[], object]
    done: Callable[[object, BaseException | None], None]


@dataclass
class _Row:
    job: Job
    choice: int
    gen: torch.Generator
    seq: list[int]
    out: list[int] = field(default_factory=list)


class _Group:
    def __init__(self, rows: list[_Row], cache: KVCache, logits: torch.Tensor) -> None:
        self.rows, self.cache, self.logits = rows, cache, logits


class Worker:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.inbox: queue.Queue = queue.Queue()
        self.groups: list[_Group] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="imo-engine", daemon=True)
        self.started = time.time()
        self.requests = 0
        self.busy_s = 0.0
        self.largest_batch = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)

    def submit(self, item: Job | Task) -> None:
        self.inbox.put(item)

    @property
    def queued(self) -> int:
        return self.inbox.qsize()

    @property
    def active_rows(self) -> int:
        return sum(len(g.rows) for g in self.groups)

    # --- the loop --------------------------------------------------------------------------------

    def _take(self) -> list:
        items = []
        try:
            items.append(self.inbox.get(timeout=0.05) if not self.groups else self.inbox.get_nowait())
        except queue.Empty:
            return items
        if not self.groups:
            time.sleep(GATHER_S)
        while True:
            try:
                items.append(self.inbox.get_nowait())
            except queue.Empty:
                return items

    def _loop(self) -> None:
        while not self._stop.is_set():
            items = self._take()
            t0 = time.perf_counter()
            jobs = []
            for it in items:
                if isinstance(it, Task):
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
                    for r in g.rows:
                        r.job.emit(("error", f"internal error: {e}"))
                    self.groups.remove(g)
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
                seed = None if job.cfg.seed is None else job.cfg.seed * 1000 + c
                row = _Row(job, c, make_generator(seed), list(job.prompt))
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
            stops = stop_bytes(cfg.stop)
            finish = "stop" if ends_with_stop(r.out, stops) else "length" if len(r.out) >= cfg.max_tokens else None
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
