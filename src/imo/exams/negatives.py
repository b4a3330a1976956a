"""True negatives: does a model know what it does not know?

A byte model is trained on a generated fact base (`imo.tasks.facts`): lines `bora color: red`,
and, for some missing facts, `bora pet: unknown`, so the stated default is part of what it
learns. It is then asked about every present fact (true-positive rate: the right value) and
about missing facts it never saw in any form (true-negative rate: `unknown`). The notes hold that
true negatives are much harder than true positives: recalling a stored fact is memory, while
saying "unknown" needs the model to notice the *absence* of one. The exam reports both rates
for each model size and training length.

The corpus file ends with a copy of its first lines, at least a tenth of it, so that the
trainer's validation split (the file's last 10%) holds only repeated facts and every fact is in
the training split.

    rows = negatives_exam(NegativesSize(sizes=((2, 64),), steps=(300, 600)), seed=0)
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from imo.errors import ConfigError
from imo.exams.textmodel import RunSize, answer, check_expressible, corpus_file, train_run
from imo.tasks.facts import UNKNOWN, FactBase


@dataclass(frozen=True)
class NegativesSize:
    sizes: tuple[tuple[int, int], ...] = ((1, 32), (2, 64), (4, 128))  # (n_layer, n_embd)
    steps: tuple[int, ...] = (300, 1000)
    n_entities: int = 40
    n_head: int = 4
    context_length: int = 64
    batch_size: int = 32
    lr: float = 3e-3


def corpus_text(base: FactBase) -> str:
    """The training lines, then a copy of the first lines making up at least a ninth of them
    (so the trainer's last-10% validation split only repeats facts)."""
    lines = base.training_lines()
    body = "\n".join(lines) + "\n"
    tail, size = [], 0
    for line in lines:
        if size > len(body) / 9 + 2:
            break
        tail.append(line)
        size += len(line) + 1
    return body + "\n".join(tail) + "\n"


def rates(model, base: FactBase) -> dict[str, float]:
    """True-positive rate (present facts answered with their value), true-negative rate (held-out
    missing facts answered `unknown`), and how often a present fact is wrongly called unknown."""
    pos, neg = base.questions()
    check_expressible(model, [p.prompt + " " + p.answer for p in pos + neg], "the fact base")
    width = max(len(p.answer) for p in pos + neg) + 3
    out_pos = [o.strip() for o in answer(model, [p.prompt for p in pos], max_new=width)]
    out_neg = [o.strip() for o in answer(model, [p.prompt for p in neg], max_new=width)]
    return {
        "tpr": sum(o == p.answer for o, p in zip(out_pos, pos, strict=True)) / len(pos),
        "tnr": sum(o == UNKNOWN for o in out_neg) / len(neg),
        "positives_called_unknown": sum(o == UNKNOWN for o in out_pos) / len(pos),
        "n_positive": len(pos), "n_negative": len(neg),
    }


def negatives_exam(size: NegativesSize = NegativesSize(), seed: int = 0, store=None,
                   quiet: bool = True, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Train one model per (size, steps) on the fact base of `seed` and measure TPR and TNR."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    if not size.sizes or not size.steps:
        raise ConfigError("give at least one model size and one training length")
    for n_layer, n_embd in size.sizes:
        if n_layer < 1 or n_embd < size.n_head or n_embd % size.n_head:
            raise ConfigError(f"size {n_layer}x{n_embd}: layers must be >= 1 and the width a "
                              f"multiple of {size.n_head} heads")
    store = store or RunStore.open()
    base = FactBase.generate(seed, size.n_entities)
    corpus = corpus_file(corpus_text(base), "facts")
    rows = []
    for n_layer, n_embd in size.sizes:
        for steps in size.steps:
            log(f"model {n_layer}x{n_embd}, {steps} steps")
            run = RunSize(n_layer, n_embd, size.n_head, size.context_length, steps, size.batch_size, size.lr)
            run_id = train_run(corpus, run, seed, store, quiet)
            model, _ = load_model(store.run_dir(run_id))
            rows.append({"run": run_id, "n_layer": n_layer, "n_embd": n_embd, "steps": steps,
                         "params": model.num_params(), **rates(model, base)})
    return {"seed": seed, "size": asdict(size), "rows": rows,
            "n_present": len(base.present), "n_taught_absent": len(base.taught_absent),
            "n_held_absent": len(base.held_absent)}


def with_sizes(size: NegativesSize, sizes: Sequence[tuple[int, int]] | None = None,
               steps: Sequence[int] | None = None) -> NegativesSize:
    return replace(size, sizes=tuple(sizes) if sizes else size.sizes,
                   steps=tuple(steps) if steps else size.steps)
