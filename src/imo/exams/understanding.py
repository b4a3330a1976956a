"""Understanding after compression: recall of stored facts vs operations on them, as a model shrinks.

The notes: "best way to measure understanding is operation/alteration after compression". A byte
model is trained on the true-negatives exam's fact base (`imo.tasks.facts`) with a relational
layer and altered questions for half of the entities (`imo.tasks.relations`). It is then asked,
about the other half (whose altered questions it never saw), both plain recall (`bora color:`,
`bora friend:`) and the altered questions: negations, swapped roles, two hops. Then the same
model is compressed with imo's own tools (`imo.compress.prune.prune_`, magnitude and global as
`imo prune` does by default; `imo.compress.quantize.quantize_`, as `imo quantize`), at growing
strength, and asked again.

Each form's score is its accuracy above chance, (acc - chance) / (1 - chance) (every answer is
scored whole, worked step included, so chance is 0 and the score is the accuracy), and its *retention* at a compression level is the score there divided by
the uncompressed score. A form counts as learnt when its uncompressed score is at least `LEARNT`;
the altered retention is the mean over the learnt altered forms (undefined if none is learnt).

    out = understanding_exam(UnderstandingSize(), seed=0)
    out["levels"][3]    # {"level": "prune 0.7", "recall": 0.93, "negation": 0.61, ...}
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from imo.errors import ConfigError
from imo.exams.textmodel import RunSize, answer, check_expressible, corpus_file, train_run
from imo.tasks.facts import FactBase
from imo.tasks.relations import CHANCE, FORMS, Relations

LEARNT = 0.25  # a form's uncompressed above-chance score must reach this for its retention to count
# compression levels, weakest to strongest: ("prune", sparsity), ("int", bits), or both at once
LEVELS: tuple[tuple[str, float, int], ...] = (
    ("none", 0.0, 0), ("int8", 0.0, 8), ("int4", 0.0, 4), ("prune", 0.1, 0), ("prune", 0.2, 0),
    ("prune", 0.3, 0), ("prune", 0.4, 0), ("prune+int4", 0.4, 4), ("prune", 0.5, 0), ("prune", 0.6, 0))
PRUNE_SKIP = ("lm_head",)  # the output head is the (tied) byte embedding: pruned, every byte would suffer


@dataclass(frozen=True)
class UnderstandingSize:
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    context_length: int = 64
    steps: int = 3000
    batch_size: int = 16
    lr: float = 3e-3
    n_entities: int = 40
    group_size: int = 32  # int4: input weights per scale (must divide n_embd and 4 n_embd)
    levels: tuple[tuple[str, float, int], ...] = LEVELS


def level_name(kind: str, sparsity: float, bits: int) -> str:
    if kind == "none":
        return "none"
    if kind == "prune":
        return f"prune {sparsity:g}"
    if kind.startswith("int"):
        return f"int{bits}"
    return f"prune {sparsity:g} + int{bits}"


def check_levels(levels: Sequence[tuple[str, float, int]]) -> None:
    from imo.compress.prune import check_sparsity

    if not levels or levels[0][0] != "none":
        raise ConfigError("the compression levels must start with 'none' (the uncompressed model)")
    for kind, sparsity, bits in levels:
        if kind not in ("none", "prune", "int8", "int4", "prune+int4", "prune+int8"):
            raise ConfigError(f"unknown compression level {kind!r}; use none, prune, int8, int4, prune+int4, prune+int8")
        if "prune" in kind:
            check_sparsity(sparsity)
        if "int" in kind and bits not in (4, 8):
            raise ConfigError(f"quantization bits must be 8 or 4, got {bits}")


def corpus_text(rel: Relations) -> str:
    """The training lines, then a copy of the first lines making up at least a ninth of them, so
    that the trainer's validation split (the file's last 10%) only repeats lines it trains on."""
    lines = rel.training_lines()
    body = "\n".join(lines) + "\n"
    tail, size = [], 0
    for line in lines:
        if size > len(body) / 9 + 2:
            break
        tail.append(line)
        size += len(line) + 1
    return body + "\n".join(tail) + "\n"


def compressed(model, kind: str, sparsity: float, bits: int, group_size: int, seed: int):
    """A compressed copy of `model` (the original is left as it is)."""
    from imo.compress.prune import linear_filter, prune_
    from imo.compress.quantize import QuantConfig, quantize_

    m = copy.deepcopy(model)
    if "prune" in kind:
        prune_(m, "magnitude", sparsity, filter_fn=linear_filter(PRUNE_SKIP), scope="global", seed=seed)
    if "int" in kind:
        quantize_(m, QuantConfig(bits=bits, group_size=group_size))
    return m.eval()


def accuracies(model, tests: dict[str, list]) -> dict[str, float]:
    """Exact-answer accuracy of greedy answers, by form."""
    width = max(len(p.answer) for ps in tests.values() for p in ps) + 3
    out = {}
    for form, problems in tests.items():
        got = [o.strip() for o in answer(model, [p.prompt for p in problems], max_new=width)]
        out[form] = sum(g == p.answer for g, p in zip(got, problems, strict=True)) / len(problems)
        if form == "negation":  # a diagnostic beside the whole answer: the yes/no verdict alone
            out["negation_verdict"] = sum(g.rsplit(" ", 1)[-1] == p.answer.rsplit(" ", 1)[-1]
                                          for g, p in zip(got, problems, strict=True)) / len(problems)
    return out


def score(form: str, acc: float) -> float:
    """Accuracy above chance, 0 at chance and 1 when every answer is right."""
    return (acc - CHANCE[form]) / (1.0 - CHANCE[form])


def retention_gap(levels: list[dict[str, Any]], learnt: float = LEARNT) -> dict[str, Any]:
    """Retention of recall and of the learnt altered forms at each compressed level, and their
    gap (recall minus altered) averaged over the levels: > 0 when operations fade faster."""
    base = levels[0]
    counted = [f for f in FORMS if score(f, base[f]) >= learnt]
    rows = []
    for lv in levels[1:]:
        rec = score("recall", lv["recall"]) / score("recall", base["recall"]) if score("recall", base["recall"]) > 0 else math.nan
        alt = (sum(score(f, lv[f]) / score(f, base[f]) for f in counted) / len(counted)) if counted else math.nan
        rows.append({"level": lv["level"], "recall_retention": rec, "altered_retention": alt, "gap": rec - alt})
    gap = (sum(r["gap"] for r in rows) / len(rows)) if rows and counted and score("recall", base["recall"]) >= learnt else math.nan
    return {"learnt_forms": counted, "retention": rows, "retention_gap": gap}


def understanding_exam(size: UnderstandingSize = UnderstandingSize(), seed: int = 0, store=None,
                       quiet: bool = True, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Train one model on the relational fact base of `seed`, then score recall and each altered
    form at every compression level."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    check_levels(size.levels)
    if size.n_layer < 1 or size.n_embd < size.n_head or size.n_embd % size.n_head:
        raise ConfigError(f"size {size.n_layer}x{size.n_embd}: layers must be >= 1 and the width a "
                          f"multiple of {size.n_head} heads")
    if any("int4" in k for k, _, _ in size.levels) and size.n_embd % size.group_size:
        raise ConfigError(f"int4 group size {size.group_size} must divide the width {size.n_embd}")
    store = store or RunStore.open()
    rel = Relations.generate(FactBase.generate(seed, size.n_entities))
    tests = rel.tests()
    corpus = corpus_file(corpus_text(rel), "relations")
    log(f"model {size.n_layer}x{size.n_embd}, {size.steps} steps on {len(rel.training_lines())} lines")
    run = RunSize(size.n_layer, size.n_embd, size.n_head, size.context_length, size.steps, size.batch_size, size.lr)
    run_id = train_run(corpus, run, seed, store, quiet)
    model, _ = load_model(store.run_dir(run_id))
    check_expressible(model, [p.prompt + " " + p.answer for ps in tests.values() for p in ps], "the fact base")
    levels = []
    for kind, sparsity, bits in size.levels:
        name = level_name(kind, sparsity, bits)
        log(f"compression {name}")
        m = model if kind == "none" else compressed(model, kind, sparsity, bits, size.group_size, seed)
        levels.append({"level": name, "kind": kind, "sparsity": sparsity, "bits": bits, **accuracies(m, tests)})
    return {"seed": seed, "run": run_id, "size": asdict(size), "params": model.num_params(),
            "n_tests": {f: len(ps) for f, ps in tests.items()}, "n_shown": len(rel.shown),
            "n_held": len(rel.held), "levels": levels, **retention_gap(levels)}
