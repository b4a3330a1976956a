"""The skills exam: train a small byte model on one or several skills, test it on each.

The notes hold that intelligence is many separate skills, and that learning one does not bring
the others. The exam makes that measurable with the battery in `imo.tasks.skills`: a corpus of
`prompt + answer` lines of the chosen skills is written to a file, a model is trained on it with
the ordinary trainer (`corpus="file:PATH"`), and each skill's held-out problems (never in the
training file: `imo.tasks.split`) are answered greedily and checked exactly.

The helpers here are shared with the true-negative and trickability exams: writing a corpus file
(content-addressed under the store, so identical corpora and runs are reused), checking that a
run can express a task, and answering prompts greedily in batches.

    out = skills_exam(["skill-copy"], SkillsBudget(steps=300), seed=0)
    out["accuracy"]   # {"skill-count": 0.1, "skill-copy": 0.96, ...}
"""

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from imo import paths, tasks
from imo.atomic import write_bytes
from imo.errors import ConfigError, ImoError
from imo.exams.recall import greedy_continue
from imo.tasks.skills import skill_names

LINE_START = "\n"  # every prompt is given after a newline, as each line follows one in training


def corpus_file(text: str, tag: str) -> Path:
    """A corpus file holding `text`, named by its hash under the store's exams folder (written
    once, atomically), so the same text gives the same `file:PATH` and the same runs."""
    data = text.encode("utf-8")
    folder = paths.store_dir() / "exams" / "corpora"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{tag}-{hashlib.sha256(data).hexdigest()[:16]}.txt"
    if not path.exists():
        write_bytes(path, data)
    return path


def check_expressible(model, texts: Sequence[str], what: str) -> None:
    """Refuse a run whose tokenizer (bytes below its vocab size) or context cannot hold the task."""
    vocab, longest = model.cfg.vocab_size, 0
    for t in texts:
        b = t.encode("utf-8")
        longest = max(longest, len(b))
        if b and max(b) >= vocab:
            raise ConfigError(f"the run's tokenizer has {vocab} symbols and cannot express {what} "
                              f"(byte {max(b)} in {t!r}); use a byte-level run (vocab 256)")
    if model.cfg.pos == "learned" and longest > model.cfg.context_length:
        raise ConfigError(f"{what} needs {longest} bytes of context; the run's learned positions "
                          f"stop at {model.cfg.context_length}")


@torch.no_grad()
def answer(model, prompts: Sequence[str], max_new: int = 16, batch_size: int = 128) -> list[str]:
    """Greedy answers: each prompt is continued after a newline until the next newline (or
    `max_new` bytes); prompts of equal length go through the model together."""
    model.eval()
    device = next(model.parameters()).device
    encoded = [(LINE_START + p).encode("utf-8") for p in prompts]
    out: list[str] = [""] * len(prompts)
    by_len: dict[int, list[int]] = {}
    for i, e in enumerate(encoded):
        by_len.setdefault(len(e), []).append(i)
    for idx in by_len.values():
        for b in range(0, len(idx), batch_size):
            chunk = idx[b:b + batch_size]
            x = torch.tensor([list(encoded[i]) for i in chunk], device=device)
            got = greedy_continue(model, x, max_new).tolist()
            for i, ids in zip(chunk, got, strict=True):
                text = bytes(ids).split(b"\n", 1)[0]
                out[i] = text.decode("utf-8", errors="replace")
    return out


@dataclass(frozen=True)
class SkillsBudget:
    """Model and training size of one exam (defaults: a few minutes on 2 cores)."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    context_length: int = 64
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    n_train: int = 2000  # training problems per skill
    n_test: int = 100  # held-out problems per skill
    level: int = 1


def check_skills(names: Sequence[str]) -> list[str]:
    allowed = skill_names()
    short = {n.removeprefix("skill-"): n for n in allowed}
    out = []
    for n in names:
        full = short.get(n, n)
        if full not in allowed:
            raise ConfigError(f"unknown skill {n!r}; choose from: {', '.join(short)}")
        out.append(full)
    if not out:
        raise ConfigError(f"give at least one skill; choose from: {', '.join(short)}")
    return out


def skills_corpus(train_skills: Sequence[str], budget: SkillsBudget, seed: int) -> tuple[Path, dict]:
    """The training file (shuffled lines of the chosen skills) and each skill's test problems."""
    lines, tests = [], {}
    for name in skill_names():
        # the test problems come first from their own stream, so they do not depend on n_train
        n_train = budget.n_train if name in train_skills else 0
        tr, te = tasks.split(tasks.get(name), budget.level, n_train, budget.n_test, seed)
        tests[name] = te
        lines += [p.prompt + p.answer for p in tr]
    random.Random(seed).shuffle(lines)
    return corpus_file("\n".join(lines) + "\n", "skills"), tests


def train_run(corpus: Path, budget, seed: int, store, quiet: bool = True) -> str:
    """Train (or reuse) a byte model on a corpus file with a budget's sizes."""
    from imo.train.config import RunConfig
    from imo.train.trainer import train_or_reuse

    cfg = RunConfig.build(
        preset=None,
        model=dict(n_layer=budget.n_layer, n_embd=budget.n_embd, n_head=budget.n_head,
                   context_length=budget.context_length),
        train=dict(corpus=f"file:{corpus}", steps=budget.steps, batch_size=budget.batch_size,
                   lr=budget.lr, warmup=min(50, budget.steps // 10), seed=seed,
                   eval_every=max(1, budget.steps), ckpt_every=max(1, budget.steps)),
    )
    run_id = train_or_reuse(cfg, store=store, quiet=quiet)
    status = store.get(run_id)["status"]
    if status != "finished":  # stopped by Ctrl-C/SIGTERM: never measure a half-trained model
        raise ImoError(f"training run {run_id} is {status}, not finished; run the exam again to train "
                       f"it anew (or continue it: imo train --resume {run_id})")
    return run_id


def test_skills(model, tests: dict[str, list], names: Sequence[str] | None = None) -> dict[str, float]:
    """Exact accuracy of greedy answers on each skill's problems."""
    acc = {}
    for name in names or list(tests):
        task, probs = tasks.get(name), tests[name]
        check_expressible(model, [LINE_START + p.prompt + p.answer for p in probs], f"task {name}")
        outs = answer(model, [p.prompt for p in probs], max_new=max(len(p.answer) for p in probs) + 2)
        acc[name] = sum(task.check(p, task.extract(o)) for p, o in zip(probs, outs, strict=True)) / len(probs)
    return acc


def skills_exam(train_skills: Sequence[str], budget: SkillsBudget = SkillsBudget(), seed: int = 0,
                store=None, quiet: bool = True, run: str | None = None,
                log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Train on `train_skills` (or take `run`), test on every skill of the battery."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    train_skills = check_skills(train_skills)
    store = store or RunStore.open()
    corpus, tests = skills_corpus(train_skills, budget, seed)
    if run is None:
        log(f"training on {', '.join(s.removeprefix('skill-') for s in train_skills)}")
        run_id = train_run(corpus, budget, seed, store, quiet)
    else:
        run_id = store.resolve(run)
    model, _ = load_model(store.run_dir(run_id))
    log("testing on every skill")
    acc = test_skills(model, tests)
    return {"run": run_id, "train_skills": train_skills, "seed": seed, "budget": asdict(budget),
            "accuracy": acc}
