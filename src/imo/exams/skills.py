"""The skills exam: train a small byte model on one or several skills, test it on each.

The notes hold that intelligence is many separate skills, and that learning one does not bring
the others. The exam makes that measurable with the battery in `imo.tasks.skills`: a corpus of
`prompt + answer` lines of the chosen skills is written to a file, a model is trained on it with
the ordinary trainer (`corpus="file:PATH"`), and each skill's held-out problems (never in the
training file: `imo.tasks.split`) are answered greedily and checked exactly.

Writing the corpus file, training the run and answering prompts are `imo.exams.textmodel`'s,
shared with the true-negative, trickability and recall exams.

    out = skills_exam(["skill-copy"], SkillsSize(steps=300), seed=0)
    out["accuracy"]   # {"skill-count": 0.1, "skill-copy": 0.96, ...}
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imo import tasks
from imo.errors import ConfigError
from imo.exams.textmodel import LINE_START, answer, check_expressible, corpus_file, train_run
from imo.tasks.skills import skill_names


@dataclass(frozen=True)
class SkillsSize:
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
    difficulty: int = 1  # of the tasks (imo.tasks): 1 short inputs, 2 longer


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


def skills_corpus(train_skills: Sequence[str], size: SkillsSize, seed: int) -> tuple[Path, dict]:
    """The training file (shuffled lines of the chosen skills) and each skill's test problems."""
    lines, tests = [], {}
    for name in skill_names():
        # the test problems come first from their own stream, so they do not depend on n_train
        n_train = size.n_train if name in train_skills else 0
        tr, te = tasks.split(tasks.get(name), size.difficulty, n_train, size.n_test, seed)
        tests[name] = te
        lines += [p.prompt + p.answer for p in tr]
    random.Random(seed).shuffle(lines)
    return corpus_file("\n".join(lines) + "\n", "skills"), tests


def test_skills(model, tests: dict[str, list], names: Sequence[str] | None = None) -> dict[str, float]:
    """Exact accuracy of greedy answers on each skill's problems."""
    acc = {}
    for name in names or list(tests):
        task, probs = tasks.get(name), tests[name]
        check_expressible(model, [LINE_START + p.prompt + p.answer for p in probs], f"task {name}")
        outs = answer(model, [p.prompt for p in probs], max_new=max(len(p.answer) for p in probs) + 2)
        acc[name] = sum(task.check(p, task.extract(o)) for p, o in zip(probs, outs, strict=True)) / len(probs)
    return acc


def skills_exam(train_skills: Sequence[str], size: SkillsSize = SkillsSize(), seed: int = 0,
                store=None, quiet: bool = True, run: str | None = None,
                log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Train on `train_skills` (or take `run`), test on every skill of the battery."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    train_skills = check_skills(train_skills)
    store = store or RunStore.open()
    corpus, tests = skills_corpus(train_skills, size, seed)
    if run is None:
        log(f"training on {', '.join(s.removeprefix('skill-') for s in train_skills)}")
        run_id = train_run(corpus, size, seed, store, quiet)
    else:
        run_id = store.resolve(run)
    model, _ = load_model(store.run_dir(run_id))
    log("testing on every skill")
    acc = test_skills(model, tests)
    return {"run": run_id, "train_skills": train_skills, "seed": seed, "size": asdict(size),
            "accuracy": acc}
