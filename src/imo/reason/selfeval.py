"""Self-evaluation: the policy judging its own steps ("solution generation: LLM bad at; self
evaluation: LLM good at", source notes), and judges trained on its failures.

The judging prompt is the problem, a (partial) solution at a line boundary and "?"; the answer is
one line, "+" (every line so far is right and the target can still be made) or "-". A step never
contains "?", so one GPT can both write steps and judge them:

    "3 7 8:29\\n3*7=21\\n?"  ->  "+\\n"        "3 7 8:29\\n3+7=10\\n?"  ->  "-\\n"

Labels come from the task's exact process oracle (`step_labels`), on prefixes of the policy's own
samples (its failures are the hard negatives: the mistakes it actually makes, not random ones) and
of the worked solutions, balanced to as many negatives as positives.

Two ways to use the rows (`train_judge`), both fine-tuning the policy's weights through the shared
training loop (`train_policy` with explicit examples):
  * `share=True`: the rows are mixed with the worked solutions, so the result is one model that
    writes steps and judges them: the self-evaluating policy (verifier `selfeval`);
  * `share=False`: judging rows only, a separate judge of the original policy (verifier
    `judge:RUN`), a learned verifier with balanced, hard-negative data.

    rows = judge_rows(policy, train_problems, samples=4, seed=0)
    run = train_judge(store, policy_run, share=True)   # a policy run that also judges
    SelfJudge(load_policy(store, run).model).score(problem, candidates)
"""

import random
from dataclasses import replace

import torch
import torch.nn.functional as F

from imo.errors import ConfigError
from imo.model import GPT
from imo.reason.core import POLICY_KIND, Candidate, check_kind
from imo.reason.policy import load_policy, problems, sample_many, train_policy
from imo.runs.store import RunStore
from imo.tasks import Problem

ASK = "?"
GOOD, BAD = ord("+"), ord("-")


def ask(problem: Problem, text: str) -> str:
    """The judging prompt of a (partial) solution: the problem, the lines so far, then '?'."""
    return problem.prompt + text + ASK


def label(task, problem: Problem, text: str) -> bool:
    """The exact verdict on a prefix at a line boundary: every line right (and, when complete, the
    outcome right)."""
    return all(task.step_labels(problem, text))


def prefixes(text: str) -> list[str]:
    """Every prefix of a solution that ends at a line boundary (the empty one excluded)."""
    lines = text.split("\n")[:-1]
    return ["".join(line + "\n" for line in lines[: k + 1]) for k in range(len(lines))]


def judge_rows(policy, probs: list[Problem], samples: int, seed: int, temperature: float = 1.0
               ) -> list[tuple[str, str]]:
    """Balanced (judging prompt, "+\\n" / "-\\n") rows: every line-boundary prefix of `samples`
    sampled solutions per problem and of the worked solution, labelled by the exact oracle; the
    larger class is subsampled to the size of the smaller one."""
    task = policy.task
    policy.reseed(seed)
    items = [p for p in probs for _ in range(samples)]
    texts = sample_many(policy, [(p.prompt, "") for p in items], temperature)
    pos, neg = set(), set()
    for p, t in [*zip(items, texts, strict=True), *((p, p.solution) for p in probs)]:
        t = t if t.endswith("\n") or not t else t + "\n"  # a line cut at the length limit is a wrong line
        for pre in prefixes(t):
            (pos if label(task, p, pre) else neg).add(ask(p, pre))
    rng = random.Random(f"{seed}/judge")
    pos_l, neg_l = sorted(pos), sorted(neg)
    k = min(len(pos_l), len(neg_l))
    if k == 0:
        raise ConfigError("the policy's samples gave only one kind of judging example (all right or all "
                          "wrong); sample more problems")
    rows = [(q, "+\n") for q in rng.sample(pos_l, k)] + [(q, "-\n") for q in rng.sample(neg_l, k)]
    rng.shuffle(rows)
    return rows


def train_judge(store: RunStore, policy_run: str, share: bool, n_problems: int = 400, samples: int = 4,
                steps: int = 400, lr: float = 1e-3, seed: int = 0, quiet: bool = True,
                code_fingerprint: str | None = None) -> str:
    """Fine-tune a copy of the policy on judging rows (mixed with as many worked solutions when
    `share`: the self-evaluating policy); returns its run (kind reason-policy). Reused when the
    same rows and config were trained before."""
    policy_id = check_kind(store, store.resolve(policy_run), POLICY_KIND, "a policy")["id"]
    policy = load_policy(store, policy_id, seed)
    cfg = policy.meta["config"]
    train, _ = problems(cfg)
    rng = random.Random(f"{seed}/judge-problems")
    probs = rng.sample(train, min(n_problems, len(train)))
    rows = judge_rows(policy, probs, samples, seed)
    if share:  # keep writing steps: as many worked-solution rows as judging rows
        solve = [(p.prompt, p.solution) for p in train]
        rows = rows + [solve[i % len(solve)] for i in range(len(rows))]
        random.Random(f"{seed}/mix").shuffle(rows)
    need = max(len(p.encode()) + len(c.encode()) for p, c in rows)
    if need > cfg.context_length:
        raise ConfigError(f"judging rows of {need} bytes do not fit the policy's context {cfg.context_length}")
    child = replace(cfg, init_from=policy_id, steps=steps, lr=lr, warmup=max(1, steps // 10), seed=seed + 7,
                    revision=0.0)
    return train_policy(child, store, quiet=quiet, examples=rows, eval_n=min(50, cfg.n_test),
                        code_fingerprint=code_fingerprint)


class SelfJudge:
    """A verifier that asks a GPT trained on judging rows (the policy itself, or its judge) about
    each candidate: P("+") / (P("+") + P("-")) after the judging prompt. It reads the candidate's
    text, so its tokens count (`reads_tokens`), as a reward model's do."""

    reads_tokens = True

    def __init__(self, model: GPT, name: str = "selfeval"):
        self.model, self.name = model.eval(), name

    @torch.no_grad()
    def probabilities(self, prompts: list[str]) -> list[float]:
        enc = [list(q.encode()) for q in prompts]
        T = max(map(len, enc))
        if T > self.model.cfg.context_length:
            raise ConfigError(f"a judging prompt of {T} bytes does not fit the context {self.model.cfg.context_length}")
        x = torch.zeros(len(enc), T, dtype=torch.long)
        for i, e in enumerate(enc):
            x[i, : len(e)] = torch.tensor(e)
        logits, _ = self.model(x)  # (B, T, V); a causal model: right padding does not change row i's last position
        last = logits[torch.arange(len(enc)), torch.tensor([len(e) - 1 for e in enc])].float()
        return F.log_softmax(last[:, [GOOD, BAD]], dim=-1)[:, 0].exp().tolist()

    def score(self, problem: Problem, cands: list[Candidate]) -> list[float]:
        if not cands:
            return []
        # a last line without its newline was cut at the length limit: malformed, scored 0 unread
        whole = [k for k, c in enumerate(cands) if c.text.endswith("\n") or not c.text]
        out = [0.0] * len(cands)
        if whole:
            for k, s in zip(whole, self.probabilities([ask(problem, cands[k].text) for k in whole]), strict=True):
                out[k] = s
        return out


def revision_examples(policy, probs: list[Problem], samples: int, seed: int, outcome_share: float = 1 / 3,
                      temperature: float = 1.0) -> list[tuple[str, str]]:
    """(revision prompt, worked solution) rows whose attempts are the policy's own wrong samples
    (imo.reason.revision's prompt: problem, attempt, "!k" with k the first wrong line by the exact
    labels, or 0, as an outcome-only verifier says, for `outcome_share` of them). Unlike
    revision.corrupt's made-up attempts these are the mistakes it actually makes, in any step task."""
    from imo.reason.revision import first_wrong, revision_prompt

    task = policy.task
    policy.reseed(seed)
    items = [p for p in probs for _ in range(samples)]
    texts = sample_many(policy, [(p.prompt, "") for p in items], temperature)
    rng = random.Random(f"{seed}/revise")
    rows, seen = [], set()
    for p, t in zip(items, texts, strict=True):
        t = t if t.endswith("\n") or not t else t + "\n"
        if not t or task.solution_ok(p, t) or (p.key, t) in seen:
            continue
        seen.add((p.key, t))
        k = 0 if rng.random() < outcome_share else first_wrong(task.step_labels(p, t))
        rows.append((revision_prompt(p, t, k), p.solution))
    return rows


def train_reviser(store: RunStore, policy_run: str, share: float = 0.3, n_problems: int = 400, samples: int = 2,
                  steps: int = 400, lr: float = 1e-3, seed: int = 0, quiet: bool = True,
                  code_fingerprint: str | None = None) -> str:
    """Fine-tune the policy on its worked solutions plus revision rows built from its own wrong
    samples (`share` of all rows); the run's config records the share, so `--method revision`
    accepts it."""
    policy_id = check_kind(store, store.resolve(policy_run), POLICY_KIND, "a policy")["id"]
    policy = load_policy(store, policy_id, seed)
    cfg = policy.meta["config"]
    if not 0 < share < 1:
        raise ConfigError(f"share must be in (0, 1), got {share}")
    train, _ = problems(cfg)
    rng = random.Random(f"{seed}/revise-problems")
    revise = revision_examples(policy, rng.sample(train, min(n_problems, len(train))), samples, seed)
    if not revise:
        raise ConfigError("the policy's samples were all right: nothing to learn to revise")
    n_plain = max(1, round(len(revise) * (1 - share) / share))
    rows = [(p.prompt, p.solution) for p in train][:n_plain] + revise
    random.Random(f"{seed}/revise-mix").shuffle(rows)
    child = replace(cfg, init_from=policy_id, steps=steps, lr=lr, warmup=max(1, steps // 10), seed=seed + 11,
                    revision=share)
    return train_policy(child, store, quiet=quiet, examples=rows, eval_n=min(50, cfg.n_test),
                        code_fingerprint=code_fingerprint)
