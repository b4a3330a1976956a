"""Memory runs train from the CLI, store their memory config beside the weights, resume exactly,
and refuse bad input in one line."""

import random

import pytest
import torch
from imo_cli import imo

from imo.memory.train import MemoryBatches, load_memory_model
from imo.runs.store import RunStore
from imo.train.checkpoint import checkpoint_dir, read_checkpoint


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    words = [b"memory", b"block", b"token", b"state", b"layer", b"the", b"of", b"gate"]
    path = tmp_path / "text.txt"
    path.write_bytes(b" ".join(rng.choice(words) for _ in range(4000)))
    return f"file:{path}"


TINY = ["--layers", "1", "--width", "16", "--heads", "2", "--context", "64", "--batch-size", "2",
        "--block", "16", "--eval-every", "2", "--ckpt-every", "2", "-q"]


def test_train_resume_exact(corpus, capsys):
    assert imo("train", "--arch", "fam", "--corpus", corpus, "--steps", "4", "--fam-tokens", "2", *TINY) == 0
    whole = capsys.readouterr().out.strip().splitlines()[-1]
    store = RunStore.open()
    run = store.get(whole)
    assert run["kind"] == "memory" and run["status"] == "finished" and run["config"]["memory"]["fam_tokens"] == 2
    meta, weights, _ = read_checkpoint(checkpoint_dir(store.run_dir(whole)), with_state=False)
    assert meta["config"]["memory"]["arch"] == "fam" and "fam_init" in weights
    model, _ = load_memory_model(store.run_dir(whole))
    assert model.mem.fam_tokens == 2 and not model.training

    from imo.memory.config import MemoryConfig
    from imo.memory.train import train_memory
    from imo.train.config import RunConfig

    cfg = RunConfig.build(preset="tiny", model=dict(n_layer=1, n_embd=16, n_head=2, context_length=64),
                          train=dict(corpus=corpus, steps=4, batch_size=2, eval_every=2, ckpt_every=2))
    part, stopped = train_memory(cfg, MemoryConfig(arch="fam", block=16, fam_tokens=2), quiet=True, stop_at=2)
    assert stopped and store.get(part)["status"] == "interrupted"
    assert imo("train", "--resume", part, "-q") == 0
    resumed, _ = load_memory_model(store.run_dir(part))
    for (k, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_infini_logs_gates(corpus, capsys):
    assert imo("train", "--arch", "infini", "--corpus", corpus, "--steps", "10", *TINY) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    gates = RunStore.open().metrics(run_id, "gate/0.1")
    assert len(gates) == 1 and 0.0 < gates[0][2] < 1.0


def test_passkey_rows():
    data = torch.randint(0, 256, (5000,), generator=torch.Generator().manual_seed(0)).numpy().astype("uint8")
    batches = MemoryBatches(data, 300, 8, 1.0, (240, 301))
    x, y = batches(torch.Generator().manual_seed(1), 0)
    assert x.shape == y.shape == (8, 300) and torch.equal(x[:, 1:], y[:, :-1])
    tail = bytes(y[0, -60:].tolist())
    assert b"pass key is " in tail and tail[-5:].isdigit()


def test_refusals(corpus, capsys):
    cases = [
        (["--arch", "lstm"], "unknown memory arch"),
        (["--fam-tokens", "3"], "need a memory model"),
        (["--arch", "fam", "--minutes", "1"], "do not take --minutes"),
        (["--row-length", "128"], "must be >= the context"),
        (["--row-length", "512"], "plain GPT reads rows of its context"),
        (["--arch", "fam", "--block", "48", "--row-length", "512"], "must divide the context"),
        (["--arch", "bswa", "--passkey", "0.5", "--passkey-bytes", "300-900", "--context", "256"], "row length + 1"),
        (["--arch", "bswa", "--passkey-bytes", "abc"], "MIN-MAX"),
        (["--arch", "infini", "--pos", "alibi"], "pos rope or none"),
        (["--arch", "infini", "--dtype", "bfloat16"], "float32"),
    ]
    for args, msg in cases:
        assert imo("train", "--corpus", corpus, "--steps", "1", *args) == 2, args
        assert msg in capsys.readouterr().err, args
    assert RunStore.open().list() == []  # nothing was recorded


def test_eval_reads_memory_runs(corpus, capsys):
    assert imo("train", "--arch", "bswa", "--corpus", corpus, "--steps", "2", *TINY) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert imo("eval", run_id, "--context", "256", "--max-bytes", "2000") == 0
    out = capsys.readouterr().out
    assert "bits/byte" in out and "context 256" in out


def test_eval_knn_lm(corpus, capsys):
    assert imo("train", "--corpus", corpus, "--steps", "2", "--layers", "1", "--width", "16", "--heads", "2",
               "--context", "64", "--batch-size", "2", "-q") == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert imo("eval", run_id, "--max-bytes", "640", "--retrieval", "knn-lm", "--max-keys", "2048", "--k", "4",
               "--lambdas", "0,0.3") == 0
    out = capsys.readouterr().out
    assert "kNN-LM" in out and "lambda 0.3" in out
    assert RunStore.open().results("eval-knn-lm", run_id)
    assert imo("eval", run_id, "--retrieval", "bogus") == 2 and "choose knn-lm or retro" in capsys.readouterr().err
    # retro is a retrieval of its own now (imo.retrieve.retro); a plain GPT run is not a RETRO run
    assert imo("eval", run_id, "--retrieval", "retro") == 2 and "not a RETRO run" in capsys.readouterr().err
    assert imo("eval", run_id, "--retrieval", "knn-lm", "--lambdas", "2") == 2


def test_exam_passkey_on_runs(corpus, capsys, tmp_path):
    assert imo("train", "--arch", "infini", "--corpus", corpus, "--steps", "2", *TINY) == 0
    mem_run = capsys.readouterr().out.strip().splitlines()[-1]
    assert imo("train", "--corpus", corpus, "--steps", "2", "--layers", "1", "--width", "16", "--heads", "2",
               "--context", "64", "--batch-size", "2", "-q") == 0
    gpt_run = capsys.readouterr().out.strip().splitlines()[-1]
    plot = tmp_path / "p.png"
    assert imo("exam", "passkey", mem_run, gpt_run, "--lengths", "300", "--depths", "0.5", "--trials", "2",
               "--plot", str(plot), "-q") == 0
    out = capsys.readouterr().out
    assert "infini" in out and "gpt" in out and "compressions" in out and plot.stat().st_size > 1000
    (res,) = RunStore.open().results("exam-passkey")
    assert set(res["payload"]["runs"].values()) == {mem_run, gpt_run}
