"""The policy: an imo GPT trained on worked step-by-step solutions, sampled one step at a time.

Training (policy initialisation) is supervised fine-tuning from scratch: each batch row is one
problem, prompt then solution, right-padded; the loss counts only the solution's bytes (the prompt
is given, not predicted), so every gradient is spent on how to solve. A row starts at position 0
exactly as at inference. The same loop fine-tunes on search-found solutions (expert iteration) and
on revision examples (an attempt plus feedback, then a correct solution).

Sampling goes through imo.engine: a KV cache per row, a prefix tree that keeps the states of the
problem prompt and of every line written before (a search's next step computes only the new
line), identical rows prefilled once. The unit of generation is one step line, the unit every
search method works in.

    run_id = train_policy(PolicyConfig(task="countdown", difficulty=1), store)
    policy = load_policy(store, run_id)
    steps = policy.step([(problem.prompt, "")], temperature=1.0)   # [(text, logprob)]
"""

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from imo.config import from_dict
from imo.errors import ConfigError
from imo.model import GPT, ModelConfig
from imo.reason.core import POLICY_KIND, Candidate, check_kind, finished
from imo.reason.steps import StepTask
from imo.runs.store import RunStore, config_hash
from imo.tasks import Problem, get, split
from imo.train.checkpoint import load_model

NEWLINE = ord("\n")
IGNORE = -100  # F.cross_entropy's default ignore_index


class Policy(Protocol):
    """What search needs from a policy (the GPT one and the tests' mock both have it)."""

    task: StepTask
    difficulty: int

    def reseed(self, seed: int) -> None: ...

    def step(self, items: list[tuple[str, str]], temperature: float) -> list[tuple[str, float]]:
        """For each (prompt, solution so far) the next line it writes (newline included when it
        finished the line) and that line's log-probability under the model (temperature 1)."""
        ...


def step_task(name: str) -> StepTask:
    task = get(name)
    if not isinstance(task, StepTask):
        from imo.tasks import names

        steps = [n for n in names() if isinstance(get(n), StepTask)]
        raise ConfigError(f"task {name!r} has no steps to search over; choose one of: {', '.join(steps)}")
    return task


@dataclass(frozen=True)
class PolicyConfig:
    task: str = "countdown"
    difficulty: int = 1
    n_train: int = 3000  # generated problems with worked solutions
    n_test: int = 200
    data_seed: int = 0  # the train/test split (the test set is fixed by this alone)
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    context_length: int = 128
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 50
    seed: int = 0  # initialisation and batches
    minutes: float | None = None  # a time budget instead of `steps` (imo.train.loop turns it into steps)
    init_from: str | None = None  # fine-tune this policy run's weights
    examples: str | None = None  # sha256 of explicit (prompt, completion) examples used instead
    revision: float = 0.0  # share of rows that teach revising a wrong attempt (see revision.py)

    def __post_init__(self) -> None:
        task = step_task(self.task)
        task.check_difficulty(self.difficulty)
        if self.difficulty in task.held_out:
            raise ConfigError(f"difficulty {self.difficulty} of {self.task} is held out (kept to score harder "
                              f"problems, never trained on); train at one of: "
                              + ", ".join(str(d) for d in task.difficulties if d not in task.held_out))
        for name in ("n_train", "n_test", "n_layer", "n_embd", "n_head", "context_length", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"minutes must be > 0, got {self.minutes}")
        if not 0.0 <= self.revision < 1.0:
            raise ConfigError(f"revision must be a share in [0, 1), got {self.revision}")
        need = 40 + task.max_tokens(self.difficulty) * (2 if self.revision else 1)
        if self.context_length < need:
            raise ConfigError(f"context_length {self.context_length} is too short for {self.task} difficulty "
                              f"{self.difficulty}; use at least {need}")

    def model_config(self) -> ModelConfig:
        return ModelConfig(n_layer=self.n_layer, n_embd=self.n_embd, n_head=self.n_head,
                           context_length=self.context_length, pos="rope")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PolicyConfig":
        """A stored config; those written before the rename (`level`, now `difficulty`) load too."""
        d = dict(d)
        if "level" in d:
            if "difficulty" in d:
                raise ConfigError("policy config gives both level (its old name) and difficulty; keep difficulty")
            d["difficulty"] = d.pop("level")
        return from_dict(cls, d, "policy")


def problems(cfg: PolicyConfig) -> tuple[list[Problem], list[Problem]]:
    """The policy's training and test problems (no problem in both)."""
    return split(step_task(cfg.task), cfg.difficulty, cfg.n_train, cfg.n_test, cfg.data_seed)


def harder(cfg: PolicyConfig, n: int) -> list[Problem]:
    """Problems of the next difficulty (the generalisation figure), or [] where the task has none."""
    task = step_task(cfg.task)
    if cfg.difficulty + 1 not in task.difficulties:
        return []
    rng = random.Random(f"{cfg.data_seed}/harder")
    return [task.generate(rng, cfg.difficulty + 1) for _ in range(n)]


def examples_sha(examples: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps(examples).encode()).hexdigest()[:16]


def _batch(rows: list[tuple[str, str]], block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of a batch of (prompt, completion) rows, right-padded; y ignores prompt and padding."""
    seqs = [(list(p.encode()), list(c.encode())) for p, c in rows]
    T = min(block, max(len(p) + len(c) for p, c in seqs) - 1)
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for i, (p, c) in enumerate(seqs):
        s = torch.tensor((p + c)[: T + 1])
        x[i, : len(s) - 1] = s[:-1]
        y[i, len(p) - 1 : len(s) - 1] = s[len(p):]  # predict the completion only
    return x, y


class TrainingStopped(KeyboardInterrupt):
    """A policy or verifier run stopped cleanly by SIGINT/SIGTERM: checkpointed and marked
    interrupted; `imo reason train --resume RUN` continues a policy run."""

    def __init__(self, run_id: str, signum: int | None):
        super().__init__(f"training of run {run_id} was stopped")
        self.run_id, self.signum = run_id, signum


def fit_rows(model: GPT, n_rows: int, batch, steps: int | None, minutes: float | None, batch_size: int, lr: float,
             warmup: int, seed: int, quiet: bool = True, run=None, resume=None, label: str = "train",
             stop_at: int | None = None):
    """Train through imo.train.loop.fit: each step draws `batch_size` of `n_rows` rows at random
    (the loop's own generator, so a resume repeats the draws) and `batch(idx)` makes (x, y); AdamW, warmup + cosine to a tenth, clipping at 1, a clean stop on
    Ctrl-C/SIGTERM, checkpoints, metrics and resume when `run` (a RunLog) is given."""
    from imo.train.loop import FitConfig, fit

    def batches(gen: torch.Generator, m: int):
        return batch(torch.randint(n_rows, (batch_size,), generator=gen).tolist())

    cfg = FitConfig(steps=None if minutes is not None else steps, minutes=minutes, lr=lr, warmup=warmup,
                    seed=seed, log_every=10, eval_every=1 << 30)
    return fit(model, batches, cfg, run=run, resume=resume, quiet=quiet, label=label, stop_at=stop_at)


ASCII = 128  # the policy writes ASCII: one byte is one character
BATCH_PREFILL = 16  # more distinct rows than this in one length group: one batched prefill pass
TREE_TOKENS = 1 << 14  # the prefix tree's budget (least recently used paths are evicted past it)


class GPTPolicy:
    """A trained GPT as a step-writing policy, decoding through imo.engine.

    `sampler="engine"` (the default): each row's prompt and solution so far is prefilled once
    into a KV cache and the step is decoded a token per pass. A persistent prefix tree holds the
    states of every prefix prefilled before, so a search's next step computes only the line
    written since (the problem prompt and earlier lines are reused), and identical rows (the n
    copies of a prefix that best-of-n, beam and MCTS extend) are prefilled once and copied.
    `sampler="full"` is the previous sampler, kept as the reference: no cache, the whole prefix
    re-run at every token (benchmarks/reason.py times one against the other)."""

    def __init__(self, model: GPT, task: StepTask, difficulty: int, seed: int = 0, meta: dict | None = None,
                 sampler: str = "engine"):
        from imo.engine.decode import Engine
        from imo.engine.prefix import PrefixTree

        if sampler not in ("engine", "full"):
            raise ConfigError(f"unknown sampler {sampler!r}; choose one of: engine, full")
        self.model, self.task, self.difficulty, self.meta = model.eval(), task, difficulty, meta or {}
        self.sampler = sampler
        self.engine = Engine(self.model, PrefixTree(TREE_TOKENS))
        self.gen = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        self.gen.manual_seed(seed)

    def _encode(self, items: list[tuple[str, str]]) -> tuple[list[list[int]], int]:
        limit = self.task.max_line(self.difficulty)
        enc = [list((p + s).encode()) for p, s in items]
        block = self.model.cfg.context_length
        if max(map(len, enc)) + limit > block:
            raise ConfigError(f"a prompt of {max(map(len, enc))} bytes plus a step of {limit} does not "
                              f"fit the policy's context of {block}")
        return enc, limit

    def _pick(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Next bytes (R,) from float logits (R, V): ASCII only, argmax or a tempered draw."""
        last = logits.clone()
        last[:, ASCII:] = float("-inf")
        if temperature == 0:
            return last.argmax(-1)
        return torch.multinomial(F.softmax(last / temperature, -1), 1, generator=self.gen).squeeze(1)

    @torch.no_grad()
    def step(self, items: list[tuple[str, str]], temperature: float) -> list[tuple[str, float]]:
        if not items:
            return []
        if self.sampler == "full":
            return self._step_full(items, temperature)
        from imo.engine.cache import KVCache

        enc, limit = self._encode(items)
        # Rows differ in length (beams and samples write lines of different lengths) but one KV
        # cache holds rows of one length: prefill every row's first L0 bytes (L0 the shortest
        # row), then decode all rows in lockstep, feeding each row its own remaining known bytes
        # before it starts to write. One batch per call, however the lengths differ.
        L0 = min(map(len, enc))
        distinct: dict[tuple[int, ...], int] = {}
        for e in enc:
            distinct.setdefault(tuple(e[:L0]), len(distinct))
        which = [distinct[tuple(e[:L0])] for e in enc]
        seqs = [list(t) for t in distinct]
        eng, ctx = self.engine, self.model.cfg.context_length
        if len(seqs) > BATCH_PREFILL:  # many different rows (many problems): one pass for all
            base = eng.new_cache(len(seqs), ctx)
            first = eng.forward(torch.tensor(seqs), base)[:, -1]
            cache = base.select(which)
            first = first[which]
        else:  # few (one search): through the prefix tree, computing only what is new
            pre = [eng.prefill(q) for q in seqs]
            cache = KVCache.stack([pre[j][0] for j in which], capacity=ctx)
            for c, _ in pre:
                eng.release(c)
            first = torch.stack([pre[j][1] for j in which])
        return self._decode(cache, first, [e[L0:] for e in enc], limit, temperature)

    def _decode(self, cache, logits: torch.Tensor, known: list[list[int]], limit: int,
                temperature: float) -> list[tuple[str, float]]:
        """One line per cache row: first the row's `known` bytes are fed, then it writes up to a
        newline or `limit` bytes; finished rows leave the batch."""
        R = logits.size(0)
        text: list[list[int]] = [[] for _ in range(R)]
        logp = [0.0] * R
        pending = [list(k) for k in known]
        live = list(range(R))
        while True:
            writing = [k for k, r in enumerate(live) if not pending[r]]
            feed = [pending[r].pop(0) if pending[r] else -1 for r in live]
            if writing:
                sub = logits[writing]
                nxt = self._pick(sub, temperature).tolist()
                lp = F.log_softmax(sub, dim=-1).gather(1, torch.tensor(nxt)[:, None])[:, 0].tolist()
                for k, b, q in zip(writing, nxt, lp, strict=True):
                    r = live[k]
                    text[r].append(b)
                    logp[r] += q
                    feed[k] = b
            keep = [k for k, r in enumerate(live)
                    if not (text[r] and (text[r][-1] == NEWLINE or len(text[r]) >= limit))]
            if not keep:
                break
            if len(keep) < len(live):
                cache = cache.select(keep)
                live, feed = [live[k] for k in keep], [feed[k] for k in keep]
            logits = self.engine.forward(torch.tensor(feed)[:, None], cache)[:, -1]
        return [(bytes(text[r]).decode("ascii"), logp[r]) for r in range(R)]

    def _step_full(self, items: list[tuple[str, str]], temperature: float) -> list[tuple[str, float]]:
        """The reference sampler: right-padded rows, each reads its logits at its own last
        position (exact for a causal model), the whole prefix re-run for every token."""
        enc, limit = self._encode(items)
        B = len(enc)
        x = torch.zeros(B, max(map(len, enc)) + limit, dtype=torch.long)
        for i, e in enumerate(enc):
            x[i, : len(e)] = torch.tensor(e)
        lens = torch.tensor([len(e) for e in enc])
        start = lens.clone()
        logp = torch.zeros(B)
        active = torch.ones(B, dtype=torch.bool)
        for _ in range(limit):
            rows = active.nonzero().squeeze(1)  # (A,)
            cur = int(lens[rows].max())
            logits, _ = self.model(x[rows, :cur])  # (A, cur, V)
            last = logits[torch.arange(len(rows)), lens[rows] - 1].float()  # (A, V)
            lp = F.log_softmax(last, dim=-1)
            nxt = self._pick(last, temperature)
            x[rows, lens[rows]] = nxt
            logp[rows] += lp[torch.arange(len(rows)), nxt]
            lens[rows] += 1
            active[rows[nxt == NEWLINE]] = False
            if not active.any():
                break
        return [(bytes(x[i, start[i] : lens[i]].tolist()).decode("ascii"), float(logp[i]))
                for i in range(B)]


def sample_many(policy, items: list[tuple[str, str]], temperature: float, chunk: int = 256) -> list[str]:
    """Write every (prompt, solution so far) to its end, many problems in one batch (`chunk` rows
    a forward pass): for labelling data and greedy evaluation, which need no per-problem budget."""
    texts = [s for _, s in items]
    while True:
        todo = [i for i, t in enumerate(texts) if not finished(policy, Candidate(t))]
        if not todo:
            return texts
        for a in range(0, len(todo), chunk):
            part = todo[a : a + chunk]
            outs = policy.step([(items[i][0], texts[i]) for i in part], temperature)
            for i, (t, _) in zip(part, outs, strict=True):
                texts[i] += t


def greedy_accuracy(policy, probs: list[Problem]) -> float:
    """Greedy accuracy, all problems in one batch (the same answers as the greedy search)."""
    texts = sample_many(policy, [(p.prompt, "") for p in probs], 0.0)
    return sum(policy.task.solution_ok(p, t) for p, t in zip(probs, texts, strict=True)) / max(1, len(probs))


def load_policy(store: RunStore, run: str, seed: int = 0) -> GPTPolicy:
    run_id = store.resolve(run)
    info = check_kind(store, run_id, POLICY_KIND, "a policy")
    cfg = PolicyConfig.from_dict(info["config"])
    model, meta = load_model(store.run_dir(run_id))
    return GPTPolicy(model, step_task(cfg.task), cfg.difficulty, seed, meta={"run": run_id, "config": cfg})


def train_policy(cfg: PolicyConfig, store: RunStore | None = None, quiet: bool = True,
                 examples: list[tuple[str, str]] | None = None, eval_n: int | None = None,
                 reuse: bool = True, resume: str | None = None, stop_at: int | None = None,
                 code_fingerprint: str | None = None) -> str:
    """Train (or fine-tune, with cfg.init_from) a policy and record it; returns the run id. With
    `examples` the rows are those (prompt, completion) pairs rather than the generated training set.
    A finished run with the same config is reused when `reuse` is set. `resume` continues an
    interrupted run from its last checkpoint (its own config and examples). `code_fingerprint`
    (a claim's) keys reuse on the code as well as the config: only a run recorded with the same one is reused. A clean stop
    (Ctrl-C/SIGTERM) checkpoints, marks the run interrupted and raises TrainingStopped."""
    from imo.train.checkpoint import checkpoint_dir, read_checkpoint
    from imo.train.loop import RunLog

    store = store or RunStore.open()
    state = None
    if resume is not None:
        run_id = store.resolve(resume)
        info = store.get(run_id)
        if info["kind"] != POLICY_KIND:
            check_kind(store, run_id, POLICY_KIND, "a policy")
        if info["status"] == "finished":
            raise ConfigError(f"run {run_id} has finished; train a new one (e.g. --init-from {run_id})")
        cfg = PolicyConfig.from_dict(info["config"])
        if cfg.examples is not None:
            examples = json.loads((store.run_dir(run_id) / "examples.json").read_text())
        try:
            meta, weights, tensors = read_checkpoint(checkpoint_dir(store.run_dir(run_id)))
        except (FileNotFoundError, ConfigError):
            raise ConfigError(f"run {run_id} has no checkpoint to resume from; train it again") from None
        state = (meta, tensors)
    if examples is not None:
        cfg = replace(cfg, examples=examples_sha(examples))
    if cfg.init_from is not None and resume is None:
        cfg = replace(cfg, init_from=check_kind(store, store.resolve(cfg.init_from), POLICY_KIND, "a policy")["id"])
    found = (store.find(POLICY_KIND, config_hash(asdict(cfg)), fingerprint=code_fingerprint)
             if reuse and resume is None else [])
    if found:
        return found[0]
    task = step_task(cfg.task)
    train_set, test_set = problems(cfg)
    if examples is None:
        rows = [(p.prompt, p.solution) for p in train_set]
        if cfg.revision:
            from imo.reason.revision import revision_rows

            rows += revision_rows(task, train_set, cfg.revision, cfg.seed)
    else:
        if not examples:
            raise ConfigError("no examples to train on (search found no accepted solution)")
        rows = examples
    torch.manual_seed(cfg.seed)
    model = GPT(cfg.model_config())
    if state is not None:
        model.load_saved_state(weights)
    elif cfg.init_from is not None:
        parent, _ = load_model(store.run_dir(cfg.init_from))
        if parent.cfg != model.cfg:
            raise ConfigError(f"run {cfg.init_from} has another model shape; keep its layers and width")
        model.load_state_dict(parent.state_dict())
    name = f"policy-{cfg.task}{cfg.difficulty}-{cfg.n_layer}x{cfg.n_embd}-{config_hash(asdict(cfg))[:6]}"
    if resume is None:
        run_id = store.create_run(POLICY_KIND, name, asdict(cfg), parent=cfg.init_from,
                                  fingerprint=code_fingerprint)
    else:
        store.set_status(run_id, "running")
    t0 = time.perf_counter()
    try:
        if not quiet:
            print(f"run {run_id}  {name}  {model.num_params():,} parameters  {len(rows)} examples", flush=True)
        if examples is not None and resume is None:
            from imo.atomic import write_text

            write_text(store.run_dir(run_id) / "examples.json", json.dumps(examples))
        log = RunLog(store, run_id, store.run_dir(run_id),
                     meta=lambda: {"run_id": run_id, "config": {"model": model.cfg.to_dict(), "policy": asdict(cfg)}})
        res = fit_rows(model, len(rows), lambda idx: _batch([rows[i] for i in idx], model.cfg.context_length),
                       cfg.steps, cfg.minutes, cfg.batch_size, cfg.lr, cfg.warmup, cfg.seed, quiet, log,
                       state, "policy", stop_at)
        if res.stopped:
            store.set_status(run_id, "interrupted")
            raise TrainingStopped(run_id, res.signal)
        loss = res.train_bpb
        policy = GPTPolicy(model, task, cfg.difficulty)
        n = eval_n if eval_n is not None else len(test_set)
        figures: dict[str, Any] = {"loss_bits": loss, "params": model.num_params(), "examples": len(rows),
                                   "steps": res.steps, "seconds_train": time.perf_counter() - t0}
        figures["greedy_test_acc"] = greedy_accuracy(policy, test_set[:n])
        hard = harder(cfg, n)
        if hard:
            figures["greedy_harder_acc"] = greedy_accuracy(GPTPolicy(model, task, cfg.difficulty + 1), hard)
        figures["seconds"] = time.perf_counter() - t0
        store.finish(run_id, figures)
    except TrainingStopped:
        raise
    except BaseException:
        store.set_status(run_id, "failed")
        raise
    if not quiet:
        print_done(figures)
    return run_id


def print_done(figures: dict[str, Any]) -> None:
    """The one summary line a policy or verifier training run prints at its end."""
    print("done: " + "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in figures.items()), flush=True)
