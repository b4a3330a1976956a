"""What `imo eval` shows an imported model's bits/byte beside: xz -9e and the store's best byte
model on the same split (imo/importers/evaluate.py)."""

import lzma

from imo.importers.evaluate import beside, best_byte_model, same_corpus
from imo.runs.store import RunStore


def byte_run(store, corpus: str, val_bpb: float, status: str = "finished") -> str:
    run = store.create_run("train", "tiny", {"model": {"family": "gpt"}, "train": {"corpus": corpus}})
    store.finish(run, {"val_bpb": val_bpb, "steps": 100}, status=status)
    return run


def test_the_lowest_byte_model_on_the_same_split_is_picked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("x")
    with RunStore.open() as store:
        assert best_byte_model(store, "python-docs", "val", None) is None
        byte_run(store, "python-docs", 1.9)
        best = byte_run(store, "python-docs", 1.7)
        byte_run(store, "python-docs", 1.1, status="failed")  # not a finished run
        byte_run(store, "python-docstrings", 1.0)  # another corpus
        token = store.create_run("import", "bpe", {"model": {"family": "llama"}, "tokenizer": {"kind": "bpe"}})
        store.put_result("eval", token, {"corpus": "python-docs", "split": "val", "max_bytes": None, "bpb": 0.8}, [token])
        assert best_byte_model(store, "python-docs", "val", None)["run"] == best  # the BPE model is not a byte model
        ev = byte_run(store, f"file:{tmp_path / 't.txt'}", 3.0)
        store.put_result("eval", ev, {"corpus": "file:t.txt", "split": "val", "max_bytes": 500, "bpb": 2.5,
                                      "context": 256}, [ev])
        found = best_byte_model(store, "file:./t.txt", "val", 500)  # the same file by another path
        assert found["bpb"] == 2.5 and "imo eval" in found["how"]
        assert best_byte_model(store, "file:./t.txt", "val", None)["bpb"] == 3.0  # whole split: the run's own figure
        assert best_byte_model(store, "python-docs", "train", None) is None


def test_xz_figures_are_of_the_same_bytes():
    data, train = b"the quick brown fox " * 50, b"jumps over the lazy dog " * 50
    with RunStore.open() as store:
        b = beside(store, "python-docs", "val", data, train, None)
    assert b["xz"] == 8 * len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) / len(data)
    assert b["xz_given_train"] < b["xz"] and b["byte_model"] is None
    assert same_corpus("python-docs", "python-docs") and not same_corpus(None, None)
