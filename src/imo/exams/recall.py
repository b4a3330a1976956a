"""Lossy memory: how much of its training text a model can reproduce word for word.

A language model trained on a text is a compressor of that text, but a lossy one: its weights
keep some passages exactly and only the statistics of others. `exact_recall` measures the kept
part directly: pick positions in a text, give the model the `prefix` bytes before each, let it
continue greedily (argmax at every step) for `k` bytes, and count the positions where all `k`
bytes match the text. On text the model was trained on this is memory; on text it never saw,
only what is predictable from the prefix can match, so the difference between the two is what
the weights stored.

`recall_exam` puts this beside bits/byte (training and held-out), the bytes of the weights, and
the fair compressor baseline: xz and bzip2 given the training text as a prefix
(`imo.baselines.conditional_bpb`), since the model has seen the training text too.

    frac = exact_recall(model, train_bytes, prefix=32, k=32, n=64, seed=0)   # 0.0 .. 1.0
    result = recall_exam(run_id, store)
"""

import random
from typing import Any

import numpy as np
import torch

from imo.errors import ConfigError, DataError
from imo.exams.textmodel import RunSize, corpus_file, greedy_continue, train_run


def recall_positions(length: int, prefix: int, k: int, n: int, seed: int) -> list[int]:
    """`n` distinct positions p in a text of `length` bytes, each with `prefix` bytes before it and
    `k` after it, drawn by a seeded generator (all valid positions when there are fewer than n)."""
    first, last = prefix, length - k  # p in [first, last]
    if last < first:
        raise DataError(f"a text of {length} bytes is too short for prefix {prefix} + k {k}; "
                        f"give at least {prefix + k} bytes")
    valid = last - first + 1
    rng = random.Random(seed)
    picks = rng.sample(range(valid), n) if n < valid else range(valid)
    return sorted(first + i for i in picks)


def check_recall_args(prefix: int, k: int, n: int) -> None:
    for name, v in (("prefix", prefix), ("k", k), ("n", n)):
        if v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v}")


@torch.no_grad()
def exact_recall(model, data: bytes, prefix: int = 32, k: int = 32, n: int = 64, seed: int = 0,
                 batch_size: int = 64) -> float:
    """The fraction of `n` seeded positions in `data` where greedy continuation from the `prefix`
    bytes before the position reproduces the next `k` bytes exactly (batched, no grad)."""
    check_recall_args(prefix, k, n)
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    positions = recall_positions(len(arr), prefix, k, n, seed)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits = 0
    try:
        for b in range(0, len(positions), batch_size):
            chunk = positions[b:b + batch_size]
            ctx = torch.from_numpy(np.stack([arr[p - prefix:p] for p in chunk]).astype(np.int64)).to(device)
            want = torch.from_numpy(np.stack([arr[p:p + k] for p in chunk]).astype(np.int64)).to(device)
            got = greedy_continue(model, ctx, k)
            hits += int((got == want).all(dim=1).sum())
    finally:
        model.train(was_training)
    return hits / len(positions)


def weight_bytes(model) -> int:
    """Bytes of the model's distinct parameters as stored (tied weights counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel() * p.element_size()
    return total


def recall_exam(run: str, store=None, prefix: int = 32, k: int = 32, n: int = 64, seed: int = 0,
                max_bytes: int = 65536) -> dict[str, Any]:
    """Exact recall on training text and on held-out text, bits/byte on both, the weights' bytes,
    and xz/bzip2 on the held-out text with and without the training text as a prefix.

    `max_bytes` caps the text each figure reads (the first bytes of each split) so the exam stays
    quick; the compressors get the same training bytes the model is compared on."""
    from imo.baselines import bpb, conditional_bpb
    from imo.data.corpora import load_corpus
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model
    from imo.train.evaluate import evaluate_split

    check_recall_args(prefix, k, n)
    if max_bytes < prefix + k:
        raise ConfigError(f"max-bytes must be at least prefix + k = {prefix + k}, got {max_bytes}")
    store = store or RunStore.open()
    run_id = store.resolve(run)
    model, meta = load_model(store.run_dir(run_id))
    corpus = load_corpus(meta["config"]["train"]["corpus"])
    train = bytes(np.asarray(corpus.train[:max_bytes]))
    val = bytes(np.asarray(corpus.val[:max_bytes]))
    ctx = model.cfg.context_length
    n_weights = weight_bytes(model)
    row: dict[str, Any] = {
        "run": run_id, "params": model.num_params(), "weight_bytes": n_weights,
        "prefix": prefix, "k": k, "n": n, "seed": seed, "max_bytes": max_bytes,
        "recall_train": exact_recall(model, train, prefix, k, n, seed),
        "recall_val": exact_recall(model, val, prefix, k, n, seed),
        "bpb_train": evaluate_split(model, np.frombuffer(train, np.uint8), ctx),
        "bpb_val": evaluate_split(model, np.frombuffer(val, np.uint8), ctx),
    }
    for name in ("xz", "bzip2"):
        row[f"{name}_val"] = bpb(name, val)
        row[f"{name}_val_given_train"] = conditional_bpb(name, train, val)
    # bytes of training text kept verbatim per byte of weights: the recalled fraction of the
    # training text (in excess of what is recalled on unseen text) over the weights' size
    row["kept_bytes_per_weight_byte"] = max(0.0, row["recall_train"] - row["recall_val"]) * len(train) / n_weights
    return row


def recall_sweep(sizes: list[tuple[int, int]], steps: int = 2000, text_bytes: int = 16384, seed: int = 0,
                 store=None, quiet: bool = True, log=lambda m: None, **recall_kw: Any) -> list[dict[str, Any]]:
    """Recall vs model size: byte models of each (n_layer, n_embd) trained for `steps` on the first
    `text_bytes` of python-docs (small, so that memorising is possible), each examined by
    `recall_exam`. Returns one row per size."""
    from imo.data.corpora import CORPORA
    from imo.runs.store import RunStore

    if text_bytes < 1000:
        raise ConfigError(f"text-bytes must be at least 1000, got {text_bytes}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    store = store or RunStore.open()
    text = CORPORA.get("python-docs")()[:text_bytes].decode("utf-8", errors="ignore")
    corpus = corpus_file(text, "recall")
    rows = []
    for n_layer, n_embd in sizes:
        if n_layer < 1 or n_embd < 4 or n_embd % 4:
            raise ConfigError(f"size {n_layer}x{n_embd}: layers must be >= 1 and the width a multiple of 4")
        log(f"model {n_layer}x{n_embd}, {steps} steps on {text_bytes:,} bytes")
        run_id = train_run(corpus, RunSize(n_layer, n_embd, 4, 128, steps, 16, 3e-3), seed, store, quiet)
        rows.append({"n_layer": n_layer, "n_embd": n_embd, "steps": steps, "text_bytes": text_bytes,
                     **recall_exam(run_id, store, seed=seed, **recall_kw)})
    return rows
