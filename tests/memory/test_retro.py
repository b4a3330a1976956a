"""RETRO-lite: chunked cross-attention is causal across chunks (future neighbours and future text
never change earlier logits), neighbours never come from the query's document nor overlap the
text they help predict beyond the threshold, runs round-trip through the run store, and bad
input is refused in one line."""

import numpy as np
import pytest
import torch
from imo_cli import imo

from imo.errors import ConfigError
from imo.model.config import ModelConfig
from imo.retrieve.retro import (
    Datastore,
    RetroConfig,
    RetroLM,
    causal_neighbours,
    count_params,
    evaluate_run,
    load_retro_model,
    matched_width,
    split_chunks,
    split_neighbours,
)
from imo.runs.store import RunStore
from imo.train.checkpoint import checkpoint_dir

pytest.importorskip("faiss")
pytest.importorskip("bm25s")

WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho".split()
CFG = ModelConfig(n_layer=2, n_embd=32, n_head=2, context_length=64)
RC = RetroConfig(chunk=8, k=2, enc_layers=1, enc_width=16, enc_heads=2, doc_bytes=128)


def text(n_words: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return b" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n_words))


def model() -> RetroLM:
    torch.manual_seed(0)
    return RetroLM(CFG, RC).eval()


def test_future_neighbours_do_not_change_earlier_logits():
    m = model()
    with torch.no_grad():  # the cross-attention is idle at init only if c_proj is; make it matter
        m.cca.c_proj.weight.normal_(0, 0.5)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (2, 64), generator=gen)
    nb = torch.randint(0, 256, (2, 8, 2, 16), generator=gen)
    base = m(x, neighbours=nb)[0]
    m_ = RC.chunk
    for u in (0, 3, 7):  # chunk u's neighbours are first read at its last byte, position (u + 1) m - 1
        other = nb.clone()
        other[:, u] = torch.randint(0, 256, other[:, u].shape, generator=gen)
        out = m(x, neighbours=other)[0]
        first = (u + 1) * m_ - 1
        assert torch.equal(out[:, :first], base[:, :first]), u
        assert not torch.allclose(out[:, first], base[:, first]), u  # and from there on they count
    missing = nb.clone()
    missing[:, 2:] = -1  # no neighbours from chunk 2 on: later positions read none
    assert torch.equal(m(x, neighbours=missing)[0][:, : 3 * m_ - 1], base[:, : 3 * m_ - 1])
    assert torch.isfinite(m(x, neighbours=torch.full_like(nb, -1))[0]).all()


def test_retrieval_end_to_end_is_causal():
    m = model()
    with torch.no_grad():
        m.cca.c_proj.weight.normal_(0, 0.5)
    store = Datastore(np.frombuffer(text(1500, 2), np.uint8), RC)
    x = np.frombuffer(text(40, 3), np.uint8)[:64].copy()

    def logits(row):
        nb = torch.from_numpy(causal_neighbours(store, row))[None]
        return m(torch.from_numpy(row.astype(np.int64))[None], neighbours=nb)[0]

    base = logits(x)
    for p in (5, 20, 40, 63):
        y = x.copy()
        y[p:] = np.frombuffer(text(40, 10 + p), np.uint8)[: 64 - p]
        assert torch.equal(logits(y)[:, :p], base[:, :p]), p


def test_neighbours_never_from_the_same_document_nor_overlapping():
    train = np.frombuffer(text(3000, 4), np.uint8)
    store = Datastore(train, RC)
    nb = split_neighbours(store, train, train=True)
    rows = split_chunks(train, RC.chunk)
    doc = store.chunks.doc[: len(rows)]
    assert nb.dropped_doc > 0  # the same-document filter had work to do
    for t, index in nb.index.items():
        kept = index >= 0
        assert kept.any(), t
        assert (store.chunks.doc[index[kept]] != np.repeat(doc, RC.k).reshape(index.shape)[kept]).all(), t
        assert (nb.alpha[t][kept] <= t).all(), t
    with pytest.raises(ConfigError, match="frozen byte GPT"):
        RetroConfig(retrieval="dense")
    with pytest.raises(ConfigError, match="choose one of"):
        RetroConfig(retrieval="hnsw")


def test_equal_parameters_by_width():
    cfg = ModelConfig.preset("tiny")
    w = matched_width(cfg, RetroConfig())
    base, retro = count_params(cfg.replace(n_embd=w), RetroConfig(retrieval="none")), count_params(cfg, RetroConfig())
    assert w > cfg.n_embd and abs(base - retro) / retro < 0.03


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(text(5000, 5))
    return f"file:{path}"


TINY = ["--layers", "2", "--width", "32", "--heads", "2", "--context", "64", "--batch-size", "2",
        "--eval-every", "2", "--ckpt-every", "2", "--steps", "3", "-q"]


def test_train_save_load_and_eval(corpus, capsys):
    assert imo("train", "--retrieval", "retro", "--corpus", corpus, *TINY) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    store = RunStore.open()
    r = store.get(run_id)
    assert r["kind"] == "retro" and r["status"] == "finished" and r["config"]["retro"]["retrieval"] == "bm25"
    assert (checkpoint_dir(store.run_dir(run_id)) / "model.safetensors").is_file()
    loaded, _ = load_retro_model(store.run_dir(run_id))
    assert isinstance(loaded, RetroLM) and not loaded.training
    again = evaluate_run(store, run_id)  # the reloaded weights give the recorded figures exactly
    assert again["by_overlap"] == r["figures"]["val_bpb_by_overlap"] and set(again["by_overlap"]) == {"0", "0.2", "0.5", "1"}
    assert imo("eval", run_id, "--retrieval", "retro") == 0
    assert "neighbour overlap" in capsys.readouterr().out
    # the base arm on the same rows, then a dense run embedding with its frozen GPT
    assert imo("train", "--retrieval", "retro-none", "--corpus", corpus, *TINY) == 0
    base = capsys.readouterr().out.strip().splitlines()[-1]
    assert imo("train", "--retrieval", "retro-dense", "--embedder", base, "--corpus", corpus, *TINY) == 0
    dense = capsys.readouterr().out.strip().splitlines()[-1]
    assert store.get(dense)["config"]["retro"]["embedder"] == base
    assert imo("eval", dense, "--retrieval", "retro") == 0


def test_bad_input_exits_2(corpus, capsys):
    assert imo("train", "--retrieval", "retro-hnsw", "--corpus", corpus, *TINY) == 2
    err = capsys.readouterr().err
    assert "unknown --retrieval 'retro-hnsw'" in err and "retro-dense" in err and "Traceback" not in err
    assert imo("train", "--retrieval", "retro-dense", "--corpus", corpus, *TINY) == 2
    assert "--embedder" in capsys.readouterr().err
    assert imo("train", "--retrieval", "retro", "--arch", "fam", "--corpus", corpus, *TINY) == 2
    assert imo("train", "--corpus", corpus, *TINY) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert imo("eval", run_id, "--retrieval", "retro-x") == 2
    assert "choose knn-lm or retro" in capsys.readouterr().err
    assert imo("eval", run_id, "--retrieval", "retro") == 2
    assert "not a RETRO run" in capsys.readouterr().err
    assert RunStore.open().list(kind="retro") == []  # nothing half-written


def test_resume_is_exact(corpus, capsys):
    from imo.retrieve.retro import train_retro
    from imo.train.config import RunConfig

    cfg = RunConfig.build(preset="tiny", model=dict(n_layer=2, n_embd=32, n_head=2, context_length=64),
                          train=dict(corpus=corpus, steps=4, batch_size=2, eval_every=2, ckpt_every=2))
    whole, _ = train_retro(cfg, RetroConfig(), quiet=True)
    part, stopped = train_retro(cfg, RetroConfig(), quiet=True, stop_at=2)
    store = RunStore.open()
    assert stopped and store.get(part)["status"] == "interrupted"
    assert imo("train", "--resume", part, "--steps", "9", "-q") == 2  # the saved config is kept
    assert imo("train", "--resume", part, "-q") == 0
    a, _ = load_retro_model(store.run_dir(whole))
    b, _ = load_retro_model(store.run_dir(part))
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k
    assert store.get(part)["figures"]["val_bpb_by_overlap"] == store.get(whole)["figures"]["val_bpb_by_overlap"]
