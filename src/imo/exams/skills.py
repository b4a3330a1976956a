"""The skills exam: train a small byte model on one or several skills, test it on each; and the
transfer exam built on it.

The notes hold that intelligence is many separate skills, and that learning one does not bring
the others. The exam makes that measurable with the battery in `imo.tasks.skills`: a corpus of
`prompt + answer` lines of the chosen skills is written to a file, a model is trained on it with
the ordinary trainer (`corpus="file:PATH"`), and each skill's held-out problems (never in the
training file: `imo.tasks.split`) are answered greedily and checked exactly.

Transfer needs one shared format, or it is zero by construction (a model that never saw the verb
`reverse` cannot answer a `reverse` prompt, whatever it learned). So in the transfer exam every
corpus holds the same `shots` worked lines of every skill (the control too); a source model adds
`n_train` lines of one skill, and the zero reference adds as many `filler` lines (`noise <letters>=
<random letters>`: the format, no skill). Every model trains the same steps. Then

    transfer A -> B = (acc_A[B] - acc_0[B]) / (acc_B[B] - acc_0[B]),   clipped to [0, 1],

A's accuracy on B above the reference's, as a share of what training on B itself brings (a
target whose own gain is below `floor` cannot show transfer and is left out). The positive
control `order` is `sort` under another verb: sort -> order must transfer, so a small share there
means the exam is blind, not that skills are separate.

Writing the corpus file, training the run and answering prompts are `imo.exams.textmodel`'s,
shared with the true-negative, trickability and recall exams.

    out = skills_exam(["skill-copy"], SkillsSize(steps=300), seed=0)
    out["accuracy"]   # {"skill-count": 0.1, "skill-copy": 0.96, ...}
    t = transfer_exam(["copy", "sort", "order"], SkillsSize(shots=30), seed=0)
    transfer_shares(t["accuracy"], [("copy", "sort")])   # {("copy", "sort"): 0.0}
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imo import tasks
from imo.errors import ConfigError
from imo.exams.textmodel import LINE_START, answer, check_expressible, corpus_file, train_run
from imo.tasks.skills import LETTERS, skill_names

REFERENCE = "none"  # the transfer exam's zero reference: shots + filler, no skill trained


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
    shots: int = 0  # worked lines of every skill (and control) in every corpus: the shared format


def check_skills(names: Sequence[str]) -> list[str]:
    allowed = skill_names(controls=True)
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


def filler_lines(n: int, difficulty: int, seed: int) -> list[str]:
    """`n` lines in the skills' format whose answers are random letters, unrelated to the input."""
    rng = random.Random(f"{seed}/filler")
    lo, hi = (2, 5) if difficulty == 1 else (5, 9)
    word = lambda: "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))  # noqa: E731
    return [f"noise {word()}={word()}" for _ in range(n)]


def skills_corpus(train_skills: Sequence[str], size: SkillsSize, seed: int,
                  filler: bool = False) -> tuple[Path, dict]:
    """The training file (shuffled lines: `n_train` of each chosen skill, `size.shots` of every
    other, and `n_train` filler lines if `filler`) and each skill's test problems."""
    lines, tests = [], {}
    for name in skill_names(controls=True):
        # the test problems come first from their own stream, so they do not depend on n_train;
        # the shots are the first lines of the training stream, so a trained skill's include them
        n_train = max(size.n_train if name in train_skills else 0, size.shots)
        tr, te = tasks.split(tasks.get(name), size.difficulty, n_train, size.n_test, seed)
        tests[name] = te
        lines += [p.prompt + p.answer for p in tr]
    if filler:
        lines += filler_lines(size.n_train, size.difficulty, seed)
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
                log: Callable[[str], None] = lambda m: None, filler: bool = False,
                code_fingerprint: str | None = None) -> dict[str, Any]:
    """Train on `train_skills` (or take `run`), test on every skill of the battery and the controls.
    `train_skills` may be empty only with `filler` (the transfer exam's reference)."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    train_skills = check_skills(train_skills) if train_skills or not filler else []
    store = store or RunStore.open()
    corpus, tests = skills_corpus(train_skills, size, seed, filler=filler)
    if run is None:
        log(f"training on {', '.join(s.removeprefix('skill-') for s in train_skills) or 'filler'}"
            + (f" (+ {size.shots} lines of every skill)" if size.shots else ""))
        run_id = train_run(corpus, size, seed, store, quiet, code_fingerprint=code_fingerprint)
    else:
        run_id = store.resolve(run)
    model, _ = load_model(store.run_dir(run_id))
    log("testing on every skill")
    acc = test_skills(model, tests)
    return {"run": run_id, "train_skills": train_skills, "seed": seed, "size": asdict(size),
            "accuracy": acc}


def transfer_exam(sources: Sequence[str], size: SkillsSize, seed: int = 0, store=None,
                  quiet: bool = True, log: Callable[[str], None] = lambda m: None,
                  code_fingerprint: str | None = None) -> dict[str, Any]:
    """The zero reference and one model per source skill, all with `size.shots` lines of every
    skill and the same steps; accuracy[model][skill] (short names; the reference is "none")."""
    if size.shots < 1:
        raise ConfigError("the transfer exam needs shots >= 1: every model must see every skill's format")
    if size.shots > size.n_train:
        raise ConfigError(f"shots ({size.shots}) must not exceed n_train ({size.n_train})")
    names = [s.removeprefix("skill-") for s in check_skills(sources)]
    runs, acc = {}, {}
    for name in [REFERENCE, *names]:
        out = skills_exam([] if name == REFERENCE else [name], size, seed=seed, store=store, quiet=quiet,
                          log=log, filler=name == REFERENCE, code_fingerprint=code_fingerprint)
        runs[name] = out["run"]
        acc[name] = {k.removeprefix("skill-"): v for k, v in out["accuracy"].items()}
    return {"runs": runs, "accuracy": acc}


def own_gain(acc: dict[str, dict[str, float]], target: str) -> float:
    """What training on `target` itself brings on it, over the zero reference."""
    return acc[target][target] - acc[REFERENCE][target]


def transfer_shares(acc: dict[str, dict[str, float]], pairs: Sequence[tuple[str, str]],
                    floor: float = 0.1) -> dict[tuple[str, str], float]:
    """Transfer A -> B of each (A, B) pair whose target's own gain is >= `floor`, in [0, 1]."""
    out = {}
    for a, b in pairs:
        gain = own_gain(acc, b)
        if gain >= floor:
            out[(a, b)] = min(1.0, max(0.0, (acc[a][b] - acc[REFERENCE][b]) / gain))
    return out
