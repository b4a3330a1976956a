"""`imo import gguf` into the run store, its refusals, and `imo chat` on the imported run."""

import hashlib

import numpy as np
import pytest
import torch
from tiny_gguf import cli, write_tiny_gguf

from imo.errors import DataError
from imo.importers.gguf import import_gguf, read_gguf
from imo.model.llama import Llama
from imo.runs.store import RunStore
from imo.train.checkpoint import load_model

pytest.importorskip("gguf")


@pytest.fixture
def tiny(tmp_path):
    return write_tiny_gguf(tmp_path / "tiny.gguf")


def test_import_writes_a_run_with_source_and_weights(tiny, capsys):
    code, out, _ = cli(capsys, "import", "gguf", str(tiny), "--name", "t")
    assert code == 0 and "imported tiny.gguf as run" in out and "Q4_1 x6" in out
    with RunStore.open() as store:
        r = store.get(store.resolve("t"))
        run_dir = store.run_dir(r["id"])
    src = r["config"]["source"]
    assert src["sha256"] == hashlib.sha256(tiny.read_bytes()).hexdigest()
    assert src["quant_types"] == {"F32": 7, "Q4_1": 6, "Q8_0": 7} and r["kind"] == "import"
    assert not list(run_dir.rglob("*.pt")) and not list(run_dir.rglob("*.pkl"))  # never pickle
    model, _ = load_model(run_dir)
    assert isinstance(model, Llama)
    g = read_gguf(tiny)
    for k, v in model.state_dict_for_save().items():
        assert np.array_equal(v.numpy(), g.weights[k]), k  # the dequantized values, exactly


def test_chat_once_is_greedy_and_repeatable(tiny, capsys):
    import_gguf(tiny, name="t")
    code, first, err = cli(capsys, "chat", "t", "--once", "hello world", "--max-tokens", "12")
    assert code == 0, err
    _, second, _ = cli(capsys, "chat", "t", "--once", "hello world", "--max-tokens", "12")
    assert first == second and first.strip()


def test_chat_session_rejection_gives_other_answers(tiny):
    from imo.data.tokenizer import chat_spec, load_tokenizer
    from imo.importers.chat import ChatSession

    run_id = import_gguf(tiny, name="t")
    with RunStore.open() as store:
        run_dir = store.run_dir(run_id)
    model, meta = load_model(run_dir)
    tok, spec = load_tokenizer(run_dir, meta), chat_spec(run_dir)
    s = ChatSession(model, tok, spec, [{"role": "user", "content": "the world"}], max_tokens=10, temperature=5.0)
    greedy = s.answers
    a0 = s.next_answer()
    # the greedy answer is the argmax continuation of the full forward pass (no cache)
    ids = list(s.prompt)
    with torch.no_grad():
        for t in greedy[0]:
            assert int(model(torch.tensor([ids]))[0][0, -1].argmax()) == t
            ids.append(t)
    assert isinstance(a0, str)
    for _ in range(3):
        s.next_answer()
    assert len(s.answers) == 4 and len({tuple(a) for a in s.answers}) > 1  # random models print U+FFFDs: compare ids


def test_chat_refuses_a_byte_model_without_template(tiny, capsys):
    from imo.importers.chat import ChatSession

    with pytest.raises(Exception, match="chat template"):
        ChatSession(None, None, None, [])


@pytest.mark.parametrize("damage", ["truncate", "magic", "arch", "missing", "empty"])
def test_bad_files_get_one_line_and_exit_2(tmp_path, tiny, capsys, damage):
    bad = tmp_path / "bad.gguf"
    data = tiny.read_bytes()
    if damage == "truncate":
        bad.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "magic":
        bad.write_bytes(b"XXXX" + data[4:])
    elif damage == "arch":
        write_tiny_gguf(bad, arch="gpt2")
    elif damage == "empty":
        bad.write_bytes(b"")
    code, out, err = cli(capsys, "import", "gguf", str(bad if damage != "missing" else tmp_path / "nope.gguf"))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("imo: error:"), err
    if damage == "arch":
        assert "architecture 'gpt2'" in err
    with RunStore.open() as store:
        assert store.list() == []  # nothing half-written


def test_read_gguf_raises_data_error_on_truncated_tensor_data(tmp_path, tiny):
    bad = tmp_path / "short.gguf"
    bad.write_bytes(tiny.read_bytes()[:-100])
    with pytest.raises(DataError):
        read_gguf(bad)


def test_bits_per_byte_is_total_bits_over_scored_bytes(tiny):
    import math

    from imo.data.tokenizer import load_tokenizer
    from imo.importers.evaluate import bits_per_byte

    run_id = import_gguf(tiny, name="t")
    with RunStore.open() as store:
        run_dir = store.run_dir(run_id)
    model, meta = load_model(run_dir)
    tok = load_tokenizer(run_dir, meta)
    text = "hello world, the cat and the dog def return print 12 " * 5
    bpb, n = bits_per_byte(model, tok, text, context=16, batch=3)
    ids = tok.encode(text)
    bits, nbytes = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids), 16):
            w = ids[i : i + 16]
            logp = torch.log_softmax(model(torch.tensor([w]))[0][0], -1)
            for j in range(1, len(w)):
                bits -= float(logp[j - 1, w[j]]) / math.log(2)
                nbytes += len(tok.token_bytes(w[j]))
    assert n == nbytes and abs(bpb - bits / nbytes) < 1e-4
    assert nbytes < len(text.encode()) and bpb > 0


def test_eval_scores_an_imported_run_per_byte(tiny, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("hello world, the cat and the dog. def f(): return print(12)\n" * 60)
    import_gguf(tiny, name="t")
    code, out, err = cli(capsys, "eval", "t", "--corpus", f"file:{text}", "--context", "32", "--max-bytes", "1500")
    assert code == 0, err
    assert "bits/byte" in out and 0 < float(out.split()[0]) < 40
    code, out, err = cli(capsys, "eval", "t")
    assert code == 2 and "--corpus" in err


def test_same_name_needs_force(tiny, capsys):
    assert cli(capsys, "import", "gguf", str(tiny), "--name", "t")[0] == 0
    code, _, err = cli(capsys, "import", "gguf", str(tiny), "--name", "t")
    assert code == 2 and "exists" in err
    assert cli(capsys, "import", "gguf", str(tiny), "--name", "t", "--force")[0] == 0
    with RunStore.open() as store:
        assert [r["name"] for r in store.list()] == ["t"]
