"""Verifiers: how a search tells good solutions from bad ones, registered by name.

  oracle    the task's exact check (process labels on a prefix, the outcome on a finished
            solution): the upper bound, reported beside the searches, never one of them
  orm:RUN   outcome reward model: a small GPT that reads a finished solution and says whether its
            answer is right, trained on the policy's own samples labelled by the oracle
  prm:RUN   process reward model: the same, at the end of every step, trained on labels found by
            rollouts from each step (Math-Shepherd, Wang et al. 2024: a step is good when some
            completion from it reaches a correct answer); a prefix scores its weakest step
            (Lightman et al. 2023, "Let's Verify Step by Step", score a solution by its steps)
  self      the policy's own mean log-probability per token of what it wrote (free: recorded
            while sampling)
  vote      majority voting: a solution scores the share of candidates with its final answer

A learned verifier answers with one byte, "+" (correct) or "-", read at each line's newline; its
score is P("+") / (P("+") + P("-")). `reads_tokens` says whether scoring costs budget.

    v = load_verifier("prm:3f2a...", store, policy); v.score(problem, candidates)
"""

import random
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from imo.config import from_dict
from imo.errors import ConfigError
from imo.model import GPT, ModelConfig
from imo.reason.core import POLICY_KIND, VERIFIER_KINDS, Candidate, check_kind, vote
from imo.reason.policy import (
    IGNORE,
    GPTPolicy,
    PolicyConfig,
    TrainingStopped,
    fit_rows,
    load_policy,
    print_done,
    problems,
    sample_many,
)
from imo.registry import Registry
from imo.runs.store import RunStore, config_hash
from imo.tasks import Problem
from imo.train.checkpoint import load_model
from imo.train.loop import RunLog

VERIFIERS: Registry = Registry("verifier")
GOOD, BAD = ord("+"), ord("-")
KINDS = VERIFIER_KINDS


@VERIFIERS.register("oracle")
class Oracle:
    name, reads_tokens = "oracle", True

    def __init__(self, task):
        self.task = task

    def score(self, problem: Problem, cands: list[Candidate]) -> list[float]:
        out = []
        for c in cands:
            if c.complete:
                out.append(float(self.task.solution_ok(problem, c.text)))
            else:
                labels = self.task.step_labels(problem, c.text)
                out.append(float(all(labels)))
        return out


@VERIFIERS.register("self")
class SelfEval:
    name, reads_tokens = "self", False

    def __init__(self, task):
        self.task = task

    def score(self, problem: Problem, cands: list[Candidate]) -> list[float]:
        return [c.logprob / max(1, c.tokens) for c in cands]


@VERIFIERS.register("vote")
class Vote:
    name, reads_tokens = "vote", False

    def __init__(self, task):
        self.task = task

    def score(self, problem: Problem, cands: list[Candidate]) -> list[float]:
        return vote(self.task, cands)


class RewardModel:
    """A trained ORM or PRM: a GPT read at the newlines of a solution."""

    reads_tokens = True

    def __init__(self, model: GPT, kind: str, run_id: str = ""):
        self.model, self.kind, self.run_id = model.eval(), kind, run_id
        self.name = f"{kind}:{run_id}"

    @torch.no_grad()
    def line_scores(self, prompts: list[str], texts: list[str]) -> list[list[float]]:
        """P(correct) at every newline of each text (one per finished line)."""
        enc = [(list(p.encode()), list(t.encode())) for p, t in zip(prompts, texts, strict=True)]
        T = max(len(p) + len(t) for p, t in enc)
        if T > self.model.cfg.context_length:
            raise ConfigError(f"a solution of {T} bytes does not fit the verifier's context "
                              f"{self.model.cfg.context_length}")
        x = torch.zeros(len(enc), T, dtype=torch.long)
        for i, (p, t) in enumerate(enc):
            x[i, : len(p) + len(t)] = torch.tensor(p + t)
        logits, _ = self.model(x)  # (B, T, V)
        pair = F.log_softmax(logits[..., [GOOD, BAD]].float(), dim=-1)[..., 0].exp()  # (B, T)
        out = []
        for i, (p, t) in enumerate(enc):
            ends = [len(p) + k for k, b in enumerate(t) if b == ord("\n")]
            out.append(pair[i, ends].tolist())
        return out

    def score(self, problem: Problem, cands: list[Candidate]) -> list[float]:
        lines = self.line_scores([problem.prompt] * len(cands), [c.text for c in cands])
        if self.kind == "orm":  # the outcome model reads the last finished line
            return [s[-1] if s else 0.5 for s in lines]
        return [min(s) if s else 0.5 for s in lines]


def load_verifier(spec: str, store: RunStore | None, policy) -> Any:
    """A verifier from its name: oracle, self, vote, orm:RUN or prm:RUN."""
    name, _, run = spec.partition(":")
    VERIFIERS.get(name)  # unknown names list the choices
    if name in KINDS:
        if not run:
            raise ConfigError(f"verifier {name} needs its run: {name}:RUN (train one with "
                              f"`imo reason train-verifier --kind {name} POLICY_RUN`)")
        store = store or RunStore.open()
        run_id = store.resolve(run)
        info = check_kind(store, run_id, KINDS[name], f"a{'n' if name == 'orm' else ''} {name.upper()} verifier")
        vcfg = VerifierConfig.from_dict(info["config"])
        if policy is not None and policy.task.name != (vcfg_task := _policy_task(store, vcfg.policy)):
            raise ConfigError(f"verifier {run_id} was trained for {vcfg_task}, the policy solves {policy.task.name}")
        model, _ = load_model(store.run_dir(run_id))
        return RewardModel(model, name, run_id)
    if run:
        raise ConfigError(f"verifier {name} takes no run; write just {name!r}")
    if policy is None:
        raise ConfigError(f"verifier {name} needs a policy")
    return VERIFIERS.get(name)(policy.task)


def _policy_task(store: RunStore, policy_run: str) -> str:
    return PolicyConfig.from_dict(store.get(policy_run)["config"]).task


VERIFIERS.register("orm")(RewardModel)
VERIFIERS.register("prm")(RewardModel)


# --- training the reward models ---------------------------------------------------------------


@dataclass(frozen=True)
class VerifierConfig:
    kind: str = "orm"  # orm | prm
    policy: str = ""  # the policy run whose samples it learns from (full id)
    n_problems: int = 400  # training problems (from the policy's training split)
    samples: int = 4  # sampled solutions per problem
    rollouts: int = 4  # PRM: completions from each step that decide its label
    temperature: float = 1.0
    from_policy: bool = True  # start from the policy's weights (it already reads the task); else fresh
    n_layer: int = 2  # the fresh model's shape (ignored when from_policy)
    n_embd: int = 64
    n_head: int = 4
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    minutes: float | None = None  # a time budget instead of `steps`

    def __post_init__(self) -> None:
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"minutes must be > 0, got {self.minutes}")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown verifier kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        for name in ("n_problems", "samples", "rollouts", "n_layer", "n_embd", "n_head", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VerifierConfig":
        return from_dict(cls, d, "verifier")


def rollout_labels(policy, problem: Problem, text: str, rollouts: int, temperature: float = 1.0) -> list[bool]:
    """Math-Shepherd's hard estimate: line k of `text` is good when at least one of `rollouts`
    completions from the prefix ending at line k reaches a correct answer (the answer line's
    label is the oracle's verdict on the whole solution)."""
    return batch_rollout_labels(policy, [(problem, text)], rollouts, temperature)[0]


def batch_rollout_labels(policy, items: list[tuple[Problem, str]], rollouts: int, temperature: float = 1.0
                         ) -> list[list[bool]]:
    """rollout_labels for many (problem, solution) pairs, every rollout in one batch."""
    task = policy.task
    jobs, labels = [], []
    for n, (problem, text) in enumerate(items):
        lines = text.split("\n")[:-1]
        labels.append([None] * len(lines))
        for k in range(len(lines)):
            prefix = "".join(line + "\n" for line in lines[: k + 1])
            if Candidate(prefix).complete:
                labels[n][k] = task.solution_ok(problem, prefix)
                del labels[n][k + 1:]
                break
            jobs += [(n, k, problem, prefix)] * rollouts
    ends = sample_many(policy, [(p.prompt, prefix) for _, _, p, prefix in jobs], temperature)
    for (n, k, p, _), end in zip(jobs, ends, strict=True):
        labels[n][k] = bool(labels[n][k]) or task.solution_ok(p, end)
    return [[bool(x) for x in row] for row in labels]


def sample_labelled(policy, probs: list[Problem], cfg: "VerifierConfig", quiet: bool = True
                    ) -> list[tuple[str, str, list[bool]]]:
    """(prompt, sampled solution, one label per line) for `samples` solutions of each problem."""
    policy.reseed(cfg.seed)
    items = [p for p in probs for _ in range(cfg.samples)]
    texts = sample_many(policy, [(p.prompt, "") for p in items], cfg.temperature)
    # a line cut off at the length limit is closed with a newline: it is part of a wrong solution
    kept = [(p, t if t.endswith("\n") else t + "\n") for p, t in zip(items, texts, strict=True) if t]
    if cfg.kind == "orm":
        labels = [[policy.task.solution_ok(p, t)] * t.count("\n") for p, t in kept]
    else:
        labels = batch_rollout_labels(policy, kept, cfg.rollouts, cfg.temperature)
    return [(p.prompt, t, lab) for (p, t), lab in zip(kept, labels, strict=True)]


def _label_batch(rows, block: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    T = min(block, max(len(p.encode()) + len(t.encode()) for p, t, _ in rows))
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for i, (p, t, labels) in enumerate(rows):
        pb, tb = list(p.encode()), list(t.encode())
        seq = (pb + tb)[:T]
        x[i, : len(seq)] = torch.tensor(seq)
        ends = [len(pb) + k for k, b in enumerate(tb) if b == ord("\n") and len(pb) + k < T]
        if kind == "orm":
            ends = ends[-1:]
            labels = labels[-1:]
        for pos, good in zip(ends, labels, strict=False):
            y[i, pos] = GOOD if good else BAD
    return x, y


def train_verifier(cfg: VerifierConfig, store: RunStore | None = None, quiet: bool = True,
                   reuse: bool = True, code_fingerprint: str | None = None) -> str:
    """Sample, label and train an ORM or PRM for a policy run; returns the verifier's run id.
    A finished run with the same config (and `code_fingerprint`, a claim's) is reused."""
    store = store or RunStore.open()
    policy_id = store.resolve(cfg.policy)
    run = store.get(policy_id)
    if run["kind"] in KINDS.values():
        raise ConfigError(f"run {policy_id} is a verifier, not a policy; give the policy run it should judge")
    check_kind(store, policy_id, POLICY_KIND, "a policy")
    cfg = replace(cfg, policy=policy_id)
    found = store.find(KINDS[cfg.kind], config_hash(asdict(cfg)), fingerprint=code_fingerprint) if reuse else []
    if found:
        return found[0]
    policy: GPTPolicy = load_policy(store, policy_id, cfg.seed)
    pcfg = policy.meta["config"]
    train_set, _ = problems(pcfg)
    rng = random.Random(cfg.seed)
    probs = rng.sample(train_set, min(cfg.n_problems, len(train_set)))
    name = f"{cfg.kind}-{pcfg.task}{pcfg.difficulty}-{cfg.n_layer}x{cfg.n_embd}-{config_hash(asdict(cfg))[:6]}"
    run_id = store.create_run(KINDS[cfg.kind], name, asdict(cfg), parent=policy_id, fingerprint=code_fingerprint)
    t0 = time.perf_counter()
    try:
        if not quiet:
            print(f"run {run_id}  {name}: sampling and labelling {len(probs)} x {cfg.samples} solutions", flush=True)
        rows = sample_labelled(policy, probs, cfg, quiet)
        if not rows:
            raise ConfigError("the policy wrote no line to learn from; train the policy longer")
        t_label = time.perf_counter() - t0
        torch.manual_seed(cfg.seed)
        if cfg.from_policy:  # as reward models usually are: the policy's weights, a new job
            model = GPT(policy.model.cfg)
            model.load_state_dict(policy.model.state_dict())
        else:
            model = GPT(ModelConfig(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head,
                                    context_length=policy.model.cfg.context_length, pos="rope"))
        # the loop checkpoints, logs metrics and stops cleanly; a verifier's step total is fixed
        # by --steps or --minutes (resuming one is not offered: relabelling is the slow part)
        log = RunLog(store, run_id, store.run_dir(run_id),
                     meta=lambda: {"run_id": run_id, "config": {"model": model.cfg.to_dict(), "verifier": asdict(cfg)}})
        res = fit_rows(model, len(rows), lambda idx: _label_batch([rows[i] for i in idx], model.cfg.context_length,
                                                                  cfg.kind),
                       cfg.steps, cfg.minutes, cfg.batch_size, cfg.lr, 30, cfg.seed, quiet, log, label=cfg.kind)
        if res.stopped:
            store.set_status(run_id, "interrupted")
            raise TrainingStopped(run_id, res.signal)
        finals = [labels[-1] for _, t, labels in rows if Candidate(t).complete]
        agree = _agreement(policy.task, probs, rows) if cfg.kind == "prm" else None
        figures = {"examples": len(rows), "positive_share": sum(finals) / max(1, len(finals)),
                   "seconds_labelling": t_label, "seconds": time.perf_counter() - t0, "loss_bits": res.train_bpb,
                   "steps": res.steps}
        if agree is not None:
            figures["rollout_label_agreement"] = agree
        store.finish(run_id, figures)
    except TrainingStopped:
        raise
    except BaseException:
        store.set_status(run_id, "failed")
        raise
    if not quiet:
        print_done(figures)
    return run_id


def _agreement(task, probs: list[Problem], rows) -> float:
    """Share of rollout labels that equal the exact process labels (how good Math-Shepherd's
    automatic labels are here)."""
    by_prompt = {p.prompt: p for p in probs}
    same = total = 0
    for prompt, text, labels in rows:
        exact = task.step_labels(by_prompt[prompt], text)
        for a, b in zip(labels, exact, strict=False):
            same += a == b
            total += 1
    return same / max(1, total)
