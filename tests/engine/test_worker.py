"""The server's model thread: requests submitted together decode as one batch, each row with its
own options, and give what the engine gives them one at a time; a cancelled request leaves."""

import queue

from mocklm import MockLM

from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine
from imo.engine.prefix import PrefixTree
from imo.engine.worker import Job, Worker


def collect(q: queue.Queue, n_rows: int) -> list[list[int]]:
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    while (ev := q.get(timeout=30))[0] == "token":
        rows[ev[1]].append(ev[2])
    assert ev == ("done",), ev
    return rows


def test_jobs_arriving_together_share_a_batch_and_match_single_runs():
    model = MockLM(vocab=7)
    w = Worker(Engine(model, PrefixTree()))
    cfgs = [GenerationConfig(strategy="greedy", max_tokens=9),
            GenerationConfig(strategy="greedy", max_tokens=5, stop=("\x03",)),
            GenerationConfig(strategy="sample", max_tokens=9, n=2, seed=3)]
    prompts = [[1, 2, 3], [4, 5, 6], [1, 2, 4]]
    qs = [queue.Queue() for _ in cfgs]
    for p, c, q in zip(prompts, cfgs, qs, strict=True):
        w.submit(Job(p, c, q.put))  # queued before the thread starts: they arrive together
    w.start()
    try:
        got = [collect(q, c.n) for q, c in zip(qs, cfgs, strict=True)]
        assert w.largest_batch == 4  # 1 + 1 + 2 rows in one batch
        for p, c, rows in zip(prompts[:2], cfgs[:2], got[:2], strict=True):
            [want] = Engine(model).generate(p, c)
            assert rows[0][: len(want.tokens)] == want.tokens
        assert got[2][0] != got[2][1]
        cancelled = Job([1, 1, 1], GenerationConfig(strategy="greedy", max_tokens=50), queue.Queue().put)
        cancelled.cancelled.set()
        w.submit(cancelled)
        q = queue.Queue()
        w.submit(Job([2, 2], GenerationConfig(strategy="greedy", max_tokens=3), q.put))
        assert len(collect(q, 1)[0]) == 3 and w.active_rows == 0
    finally:
        w.stop()
