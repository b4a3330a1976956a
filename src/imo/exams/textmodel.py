"""A byte model trained on a text file, and greedy answers to prompts: what the exams share.

The true-negative, skills, trickability and recall exams all do the same two things: write a
corpus to a file and train (or reuse) a small byte model on it with the ordinary trainer
(`corpus="file:PATH"`), then continue prompts greedily and read the answer off. This module is
that shared part, so the exams depend on it and never on each other's internals:

  * `corpus_file`      a text written once under the store, named by its hash (same text, same
                       path, same runs: `train_or_reuse` finds them again);
  * `RunSize`          the model and training sizes of one such run (`train_run` reads any object
                       with these fields, e.g. an exam's `SkillsSize`);
  * `train_run`        train or reuse the run (keyed on its config and the caller's code
                       fingerprint), refusing one that did not finish;
  * `keyed_on`         the code fingerprint `train_run` uses when its caller passes none (a
                       claim wraps exams it cannot pass one through);
  * `check_expressible` refuse a run whose vocabulary or learned positions cannot hold a task;
  * `greedy_continue`  argmax continuation of a batch of equal-length contexts;
  * `answer`           each prompt continued after a newline up to the next newline.

    run_id = train_run(corpus_file(text, "facts"), RunSize(2, 64, 4, 32, 300, 16, 3e-3), 0, store)
    answer(model, ["bora color:"])   # [" red"]
"""

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from imo import paths
from imo.atomic import write_bytes
from imo.errors import ConfigError, ImoError

LINE_START = "\n"  # every prompt is given after a newline, as each line follows one in training

# the claim's code fingerprint (imo.claims.provenance) for runs trained inside `keyed_on`: an
# exam that does not take one (the negatives exam) still keys its runs on the claim's code
_FINGERPRINT: ContextVar[str | None] = ContextVar("imo_exam_code_fingerprint", default=None)


@contextlib.contextmanager
def keyed_on(code_fingerprint: str | None) -> Iterator[None]:
    """Within the block, `train_run` calls that pass no fingerprint use this one."""
    token = _FINGERPRINT.set(code_fingerprint)
    try:
        yield
    finally:
        _FINGERPRINT.reset(token)


class TrainsModel(Protocol):
    """The fields `train_run` reads (RunSize, SkillsSize, ...)."""

    n_layer: int
    n_embd: int
    n_head: int
    context_length: int
    steps: int
    batch_size: int
    lr: float


@dataclass(frozen=True)
class RunSize:
    """Model and training sizes of one byte-model run on a corpus file."""

    n_layer: int
    n_embd: int
    n_head: int
    context_length: int
    steps: int
    batch_size: int
    lr: float


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


def train_run(corpus: Path, size: TrainsModel, seed: int, store, quiet: bool = True,
              code_fingerprint: str | None = None) -> str:
    """Train (or reuse) a byte model of `size` on a corpus file; the run id of a finished run.
    A run is reused only when its config and code fingerprint match: `code_fingerprint`, else the
    one of the enclosing `keyed_on` block, else None (runs trained outside any claim)."""
    from imo.train.config import RunConfig
    from imo.train.trainer import train_or_reuse

    cfg = RunConfig.build(
        preset=None,
        model=dict(n_layer=size.n_layer, n_embd=size.n_embd, n_head=size.n_head,
                   context_length=size.context_length),
        train=dict(corpus=f"file:{corpus}", steps=size.steps, batch_size=size.batch_size,
                   lr=size.lr, warmup=min(50, size.steps // 10), seed=seed,
                   eval_every=max(1, size.steps), ckpt_every=max(1, size.steps)),
    )
    fingerprint = code_fingerprint if code_fingerprint is not None else _FINGERPRINT.get()
    run_id = train_or_reuse(cfg, store=store, quiet=quiet, code_fingerprint=fingerprint)
    status = store.get(run_id)["status"]
    if status != "finished":  # stopped by Ctrl-C/SIGTERM: never measure a half-trained model
        raise ImoError(f"training run {run_id} is {status}, not finished; run the exam again to train "
                       f"it anew (or continue it: imo train --resume {run_id})")
    return run_id


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
def greedy_continue(model, contexts: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy continuation of a batch of equal-length contexts (B, T) by k tokens -> (B, k).
    The window slides at the model's context length, as `imo.engine.sample` does."""
    x = contexts
    out = []
    for _ in range(k):
        logits, _ = model(x[:, -model.cfg.context_length:])
        nxt = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        out.append(nxt)
        x = torch.cat([x, nxt], dim=1)
    return torch.cat(out, dim=1)


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
