"""Check claims in parallel: each seed of each claim is a task for a pool of worker processes
(`imo check --jobs N`) or for a Dask distributed cluster (`--executor dask://HOST:PORT`).

A worker only measures: it trains into (and reuses runs from) the run store it is given, and
returns the seed's figures. This process, the client, is the only one that writes seed results
and verdicts: each seed is stored the moment it comes back, so an interrupted check resumes per
seed under every executor (runner.stored_seed, keyed by claim, version, budget, seed and code
fingerprint), and a claim is decided, plotted and stored exactly as runner.run_claim does, from
seeds 0.. in order, once all of its seeds are back. Every worker runs one task at a time with a
fixed number of torch threads (one by default), so figures do not depend on --jobs. Claims that
measure time run alone, in this process, after the parallel ones.

    with open_executor("local", jobs=2, threads=1, store=store) as ex:
        for payload in check_claims(claims, "full", store, ex):
            print(payload["claim"], payload["verdict"])
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from imo.claims import provenance as code
from imo.claims.registry import SEEDS, Claim, Context
from imo.claims.runner import (
    finish_claim,
    measure_seed,
    one_line,
    run_claim,
    store_seed,
    stored_seed,
)
from imo.errors import ImoError
from imo.runs.store import RunStore

# Claims whose figures are timings: run one at a time with nothing else of this check running
# beside them. New claims say so with the tag "timing"; these predate the tag (their modules
# hold recorded evidence, so they are listed here instead of edited).
RUNS_ALONE = frozenset({"compute-per-byte", "tiled-attention", "store-layer-state"})
TIMING_TAG = "timing"
CONNECT_TIMEOUT_S = 5.0  # how long `--executor dask://...` waits for the scheduler
STORE_RETRIES = 5  # a seed measured for minutes is not lost to a store busy beyond its timeout

SeedLine = Callable[[Claim, int, dict, float, bool], None]  # (claim, seed, figures, seconds, reused)


def runs_alone(claim: Claim) -> bool:
    return claim.id in RUNS_ALONE or TIMING_TAG in claim.tags


# --- the worker side ------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedTask:
    claim: Claim
    budget: str
    seed: int
    store: str | None  # the run store the worker trains into; None: the worker's default store
    threads: int


@dataclass(frozen=True)
class SeedDone:
    figures: dict | None = None  # JSON-able, checked by runner._check_figures
    seconds: float = 0.0
    fingerprint: str | None = None  # the claim's code fingerprint as the worker computed it
    machine: dict = field(default_factory=dict)
    error: str | None = None  # one line
    traceback: str = ""
    interrupted: bool = False  # Ctrl-C (or a stopped training run) in the worker


_busy = False  # a worker process is measuring: only then does Ctrl-C interrupt it


def _sigint_in_worker(signum, frame) -> None:
    # Ctrl-C reaches the whole process group: an idle worker ignores it (else it would die
    # with a traceback), a measuring one stops (training installs its own clean-stop handler)
    if _busy:
        raise KeyboardInterrupt


def _pin_threads(threads: int) -> None:
    # before torch is imported the environment decides its thread pool; after, set_num_threads
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _init_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, _sigint_in_worker)
    _pin_threads(threads)


def measure_task(task: SeedTask) -> SeedDone:
    """Measure one seed in a worker. Never raises for the claim's own failures: they come back
    as one line (and the traceback), so no exception class has to travel between processes."""
    global _busy
    _pin_threads(task.threads)
    fp = code.fingerprint(task.claim)
    base = dict(fingerprint=fp, machine=code.machine())
    _busy = True
    try:
        with RunStore.open(task.store) as store:
            ctx = Context(store=store, quiet=True, code_fingerprint=fp)
            figures, seconds = measure_seed(task.claim, task.budget, task.seed, ctx)
        return SeedDone(figures=figures, seconds=seconds, **base)
    except KeyboardInterrupt:
        return SeedDone(interrupted=True, error="interrupted", **base)
    except Exception as e:  # the claim's bug or failure, recorded as its verdict "error"
        return SeedDone(error=one_line(e), traceback=traceback.format_exc(), **base)
    finally:
        _busy = False


# --- executors ------------------------------------------------------------------------------


class Executor(Protocol):
    description: str
    threads: int  # torch threads of each worker
    worker_store: str | None  # the run store workers train into (None: each worker's default)
    drains: bool  # after Ctrl-C, wait for running tasks (they were interrupted too)

    def check(self, claims: list[Claim]) -> None: ...
    def start(self, tasks: list[SeedTask]) -> None: ...
    def completed(self) -> Iterator[tuple[SeedTask, SeedDone]]: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...


class ProcessPool:
    """N worker processes on this machine, started with spawn (a fork of a process holding
    torch's thread pools can deadlock), each pinned to `threads` torch threads."""

    drains = True

    def __init__(self, jobs: int, threads: int, worker_store: str | None) -> None:
        self.threads, self.worker_store = threads, worker_store
        self.description = f"local pool of {jobs} processes x {threads} torch threads"
        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(threads,))  # fmt: skip
        self.futures: dict[Any, SeedTask] = {}
        self.seen: set = set()

    def check(self, claims: list[Claim]) -> None:
        for c in claims:
            try:
                pickle.dumps(c)
            except Exception as e:  # a claim defined inside a function cannot travel by name
                raise ImoError(f"claim {c.id} cannot be sent to a worker process ({one_line(e)}); "
                               "check it with --jobs 1") from None  # fmt: skip

    def start(self, tasks: list[SeedTask]) -> None:
        self.futures = {self.pool.submit(measure_task, t): t for t in tasks}

    def completed(self) -> Iterator[tuple[SeedTask, SeedDone]]:
        for f in as_completed([f for f in self.futures if f not in self.seen]):
            self.seen.add(f)
            if f.cancelled():
                continue
            try:
                done = f.result()
            except BrokenProcessPool:
                done = SeedDone(error="a worker process died (killed, or out of memory)")
            except Exception as e:  # the task could not be sent or its answer not read
                done = SeedDone(error=one_line(e))
            yield self.futures[f], done

    def cancel(self) -> None:
        for f in self.futures:
            f.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1", "[::1]")


class DaskCluster:
    """Tasks on an existing Dask distributed cluster. Ctrl-C here does not reach remote workers:
    pending tasks are cancelled, and seeds already back stay stored."""

    drains = False

    def __init__(self, address: str, threads: int, worker_store: str | None,
                 timeout: float = CONNECT_TIMEOUT_S) -> None:  # fmt: skip
        self.threads, self.worker_store = threads, worker_store
        try:
            import distributed
        except ImportError:
            raise ImoError("--executor dask://... needs Dask distributed: pip install 'imo[cluster]'") from None
        self._distributed = distributed
        self.address = address
        self.stopping = False
        # what goes wrong reaches the user as a seed's or the check's one-line error; the
        # client's own log would add tracebacks of its reconnection attempts
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        try:
            self.client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise ImoError(f"cannot reach a Dask scheduler at {address} within {timeout:g} s "
                           f"({one_line(e)})") from None  # fmt: skip
        workers = self.client.nthreads()
        crowded = {w: n for w, n in workers.items() if n != 1}
        if crowded:
            self.client.close()
            w, n = next(iter(crowded.items()))
            # measurements seed process-wide RNGs (torch.manual_seed): two tasks in one process
            # would draw from each other's streams, and figures would depend on timing
            raise ImoError(f"Dask worker {w} runs {n} threads; start workers with "
                           "`dask worker ADDRESS --nthreads 1` (one task per process)")  # fmt: skip
        self.description = f"dask {address} ({len(workers)} workers)"
        self.futures: dict[Any, SeedTask] = {}
        self.seen: set = set()

    def check(self, claims: list[Claim]) -> None:
        pass  # Dask sends functions with cloudpickle, which also carries closures

    def start(self, tasks: list[SeedTask]) -> None:
        self.futures = {self.client.submit(measure_task, t, pure=False,
                                           key=f"imo-{t.claim.id}-{t.budget}-{t.seed}-{os.urandom(4).hex()}"): t
                        for t in tasks}  # fmt: skip

    def completed(self) -> Iterator[tuple[SeedTask, SeedDone]]:
        with self.client.as_current():  # as_completed looks for the current client
            waiting = self._distributed.as_completed([f for f in self.futures if f not in self.seen])
        for f in waiting:
            self.seen.add(f)
            if f.cancelled() and self.stopping:
                continue
            try:
                done = f.result()
            except Exception as e:  # KilledWorker (it killed workers too often), a lost scheduler
                done = SeedDone(error=one_line(e) if not f.cancelled() else
                                "the cluster dropped the task (scheduler or workers lost)")  # fmt: skip
            yield self.futures[f], done

    def cancel(self) -> None:
        self.stopping = True
        self.client.cancel([f for f in self.futures if f not in self.seen])

    def close(self) -> None:
        self.client.close()


def dask_address(spec: str) -> tuple[str, bool]:
    """The scheduler address of `dask://HOST:PORT`, and whether it is on this machine."""
    rest = spec.removeprefix("dask://")
    host, _, port = rest.rpartition(":")
    if not spec.startswith("dask://") or not host or not port.isdigit():
        raise ImoError(f"executor {spec!r}: give `local` or `dask://HOST:PORT` (the scheduler's address)")
    return f"tcp://{rest}", _loopback(host)


@contextmanager
def open_executor(spec: str | None, jobs: int, threads: int, store: RunStore) -> Iterator[Executor | None]:
    """The executor `--executor` names: None for the in-process check (jobs 1 and no executor),
    "local" (the default with jobs > 1) for a pool of `jobs` processes, or "dask://HOST:PORT".
    Workers on this machine train into this store (its WAL mode and locks make that safe);
    workers elsewhere into their own default store (see docs/claims.md)."""
    if spec is None and jobs == 1:
        yield None
        return
    if spec in (None, "local"):
        ex: Executor = ProcessPool(jobs, threads, str(store.path))
    else:
        address, here = dask_address(spec)
        ex = DaskCluster(address, threads, str(store.path) if here else None)
    try:
        yield ex
    finally:
        ex.close()


# --- the client side ------------------------------------------------------------------------


def _retry(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The store waits on a busy lock for its own timeout; past that, try again a few times."""
    for attempt in range(STORE_RETRIES):
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e) or attempt == STORE_RETRIES - 1:
                raise
            time.sleep(0.5 * 2**attempt)
    return None


@dataclass
class _Claim:
    """The seeds of one claim as they come back."""

    claim: Claim
    fingerprint: str
    n: int
    done: dict[int, tuple[dict, float]] = field(default_factory=dict)
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)  # seed -> (error, traceback)
    reused: list[int] = field(default_factory=list)
    machines: list[dict] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.done) + len(self.failed) == self.n

    def finish(self, budget: str, store: RunStore, elapsed: float, executor: str) -> dict:
        first_bad = min(self.failed, default=self.n)  # as run_claim: the seeds before a failure
        per_seed = [self.done[s][0] for s in range(first_bad)]
        error, tb = self.failed.get(first_bad, (None, ""))
        extra: dict[str, Any] = {"executor": executor}
        kinds = [m for i, m in enumerate(self.machines) if m not in self.machines[:i]]
        if len(kinds) == 1 and kinds[0] != code.machine():
            extra["machine"] = kinds[0]  # where the figures were measured
        elif len(kinds) > 1:
            extra["machines"] = kinds
        seconds = sum(self.done[s][1] for s in range(first_bad))
        reused = sorted(s for s in self.reused if s < first_bad)
        return _retry(finish_claim, self.claim, budget, store, per_seed, seconds, reused,
                      self.fingerprint, elapsed, error=error, traceback_text=tb,
                      provenance_extra=extra)  # fmt: skip


def check_claims(claims: list[Claim], budget: str, store: RunStore, executor: Executor | None, *,
                 resume: bool = True, log: Callable[[str], None] | None = None,
                 on_seed: SeedLine | None = None) -> Iterator[dict]:  # fmt: skip
    """Yield each claim's stored result payload as it is decided. Without an executor, claim by
    claim in this process (runner.run_claim); with one, every missing seed of the claims that do
    not measure time at once, then the timing claims alone, here. Ctrl-C stores the seeds that
    are back and raises KeyboardInterrupt."""
    log = log or (lambda msg: None)
    if executor is None:
        for c in claims:
            yield run_claim(c, budget, store, quiet=True, log=log, resume=resume, on_seed=on_seed)
        return
    together = [c for c in claims if not runs_alone(c)]
    executor.check(together)
    yield from _fan_out(together, budget, store, executor, resume, log, on_seed)
    for c in (c for c in claims if runs_alone(c)):
        log(f"{c.id} ({budget}): measures time, runs alone")
        yield run_claim(c, budget, store, quiet=True, log=log, resume=resume, on_seed=on_seed)


def _fan_out(claims: list[Claim], budget: str, store: RunStore, executor: Executor, resume: bool,
             log: Callable[[str], None], on_seed: SeedLine | None) -> Iterator[dict]:  # fmt: skip
    t0 = time.perf_counter()
    states: dict[str, _Claim] = {}
    tasks: list[SeedTask] = []
    for c in claims:
        st = states[c.id] = _Claim(c, code.fingerprint(c), SEEDS[budget])
        for seed in range(st.n):
            found = stored_seed(c, budget, seed, store, st.fingerprint, resume)
            if found is None:
                tasks.append(SeedTask(c, budget, seed, executor.worker_store, executor.threads))
                continue
            st.done[seed] = found
            st.reused.append(seed)
            if on_seed is not None:
                on_seed(c, seed, found[0], found[1], True)
    for st in states.values():
        if st.complete:
            yield st.finish(budget, store, time.perf_counter() - t0, executor.description)
    log(f"{len(tasks)} seeds of {sum(not s.complete for s in states.values())} claims on {executor.description}")
    executor.start(tasks)
    interrupted = stopped = False  # a worker was interrupted / Ctrl-C reached this process
    while True:
        try:
            for task, done in executor.completed():
                st = states[task.claim.id]
                if done.interrupted:
                    # that seed is lost, the others go on (a worker stopped by its cluster
                    # wastes no one else's work); after Ctrl-C here the pending ones are cancelled
                    interrupted = True
                    continue
                if done.error is not None:
                    st.failed[task.seed] = (done.error, done.traceback)
                elif done.fingerprint != st.fingerprint:
                    st.failed[task.seed] = (f"the worker's code differs from this check's (claim fingerprint "
                                            f"{done.fingerprint}, here {st.fingerprint}): run the same imo "
                                            "on the workers", "")  # fmt: skip
                else:
                    _retry(store_seed, task.claim, budget, task.seed, done.figures, done.seconds,
                           st.fingerprint, store, machine=done.machine)  # fmt: skip
                    st.done[task.seed] = (done.figures, done.seconds)
                    st.machines.append(done.machine)
                    if on_seed is not None:
                        on_seed(task.claim, task.seed, done.figures, done.seconds, False)
                if st.complete:  # also while stopping: its seeds are all back
                    yield st.finish(budget, store, time.perf_counter() - t0, executor.description)
            break
        except KeyboardInterrupt:
            executor.cancel()
            if stopped or not executor.drains:
                raise
            # the workers got the same Ctrl-C: keep what the running ones return, then stop
            # (a second Ctrl-C stops at once)
            stopped = interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    for st in states.values():  # a task that never came back is an error, never a silent gap
        if not st.complete:
            for seed in range(st.n):
                if seed not in st.done and seed not in st.failed:
                    st.failed[seed] = ("the executor returned no answer for this seed", "")
            yield st.finish(budget, store, time.perf_counter() - t0, executor.description)
