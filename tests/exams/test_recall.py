"""Exact recall: a model fitted to a text reproduces it; text it never saw is not recalled; the
positions are seeded; the exam stores bits/byte and compressor baselines beside recall."""

import random

import pytest
import torch

from imo.errors import ConfigError, DataError
from imo.exams.recall import exact_recall, recall_exam, recall_positions
from imo.model import GPT, ModelConfig
from imo.runs.store import RunStore
from imo.train.config import RunConfig
from imo.train.trainer import train_or_reuse


def random_text(seed: int, n: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(97, 123) for _ in range(n))


@pytest.fixture(scope="module")
def memorised():
    """A tiny model trained until it knows one 96-byte random text by heart."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_embd=48, n_head=4, context_length=16, pos="learned"))
    text = random_text(1, 96)
    data = torch.tensor(list(text))
    windows = torch.stack([data[i:i + 17] for i in range(len(text) - 16)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        _, loss = model(windows[:, :-1], windows[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), text


def test_recall_of_trained_text_beats_unseen_text(memorised):
    model, text = memorised
    seen = exact_recall(model, text, prefix=8, k=6, n=40, seed=0)
    unseen = exact_recall(model, random_text(2, 96), prefix=8, k=6, n=40, seed=0)
    assert seen >= 0.9
    assert unseen == 0.0


def test_recall_is_seeded_and_leaves_mode(memorised):
    model, text = memorised
    model.train()
    a = exact_recall(model, text, prefix=4, k=4, n=20, seed=3)
    assert model.training  # restored
    model.eval()
    assert exact_recall(model, text, prefix=4, k=4, n=20, seed=3) == a
    assert recall_positions(100, 5, 5, 10, 1) == recall_positions(100, 5, 5, 10, 1)


def test_positions_leave_room_for_prefix_and_continuation():
    pos = recall_positions(50, 10, 7, 1000, 0)
    assert pos == list(range(10, 44))  # fewer valid positions than asked: all of them
    assert all(10 <= p <= 50 - 7 for p in recall_positions(50, 10, 7, 5, 0))


def test_bad_input():
    model = GPT(ModelConfig(n_layer=1, n_embd=16, n_head=2, context_length=8))
    with pytest.raises(DataError, match="too short"):
        exact_recall(model, b"abc", prefix=4, k=4)
    with pytest.raises(ConfigError, match="k must be"):
        exact_recall(model, b"abcdefghijkl", prefix=4, k=0)


def test_recall_exam_on_a_run():
    store = RunStore.open()
    cfg = RunConfig.build(preset=None, model=dict(n_layer=1, n_embd=32, n_head=4, context_length=16),
                          train=dict(steps=2, batch_size=4, warmup=1, seed=0))
    row = recall_exam(train_or_reuse(cfg, store=store), store, prefix=8, k=4, n=8, max_bytes=4096)
    for key in ("recall_train", "recall_val"):
        assert 0.0 <= row[key] <= 1.0
    assert row["weight_bytes"] == 4 * row["params"]
    assert row["xz_val_given_train"] < row["xz_val"]  # the prefix helps the compressor too


def test_recall_sweep_one_row_per_size():
    from imo.exams.recall import recall_sweep

    rows = recall_sweep([(1, 16), (1, 32)], steps=2, text_bytes=4000, prefix=8, k=4, n=4)
    assert [(r["n_layer"], r["n_embd"]) for r in rows] == [(1, 16), (1, 32)]
    assert rows[0]["params"] < rows[1]["params"]
    with pytest.raises(ConfigError, match="multiple of 4"):
        recall_sweep([(1, 30)], steps=2, text_bytes=4000)
