"""The report's "real model" section: an imported run's source, its recorded bits/byte beside xz and
the best byte model, its fine-tunes and recorded greedy answers; without one, how to import."""

from imo.claims.report import build_report
from imo.claims.report_models import real_model_section
from imo.importers.chat import CHAT_KIND
from imo.runs.store import RunStore

SOURCE = {"file": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": "ab" * 32, "architecture": "llama",
          "name": "SmolLM2 135M Instruct", "quant_types": {"F32": 61, "Q4_1": 210, "Q8_0": 1}}


def fake_import(store) -> str:
    """An import run as `imo import` records it (no weights: the section reads only the store)."""
    run = store.create_run("import", "smollm2", {"model": {"family": "llama"}, "tokenizer": {"kind": "bpe"},
                                                 "source": SOURCE})
    store.finish(run, {"params": 134_515_008, "source_sha256": SOURCE["sha256"]})
    return run


def test_without_an_import_the_section_says_how_to_bring_one_in():
    with RunStore.open() as store:
        html = build_report(store, [])
    assert 'id="real-model"' in html and "imo import smollm2" in html and "No pretrained model" in html


def test_an_import_shows_source_bits_per_byte_finetunes_and_answers():
    with RunStore.open() as store:
        run = fake_import(store)
        store.put_result("eval", run, {"corpus": "python-docs", "split": "val", "context": 512, "max_bytes": None,
                                       "bpb": 0.8123, "beside": {"xz": 1.9, "xz_given_train": 1.41,
                                                                 "byte_model": {"bpb": 1.71, "run": "feed", "how": "x"}}}, [run])
        store.put_result("eval", run, {"corpus": "python-docs", "split": "val", "context": 512, "max_bytes": None,
                                       "bpb": 0.8124, "beside": {"xz": 1.9}}, [run])  # newer: replaces the row
        store.put_result(CHAT_KIND, run, {"question": "What is the capital of France?",
                                          "answer": "The capital of France is <Paris>."}, [run])
        ft = store.create_run("finetune", "smollm2-lora-ft", {"train": {"corpus": "chat:qa.jsonl"},
                                                             "finetune": {"lora": {"rank": 8}}}, parent=run)
        store.finish(ft, {"steps": 60, "val_bpb_before": 1.5, "val_bpb": 0.25})
        html = real_model_section(store)
    assert SOURCE["sha256"] in html and "Q4_1 x210" in html and "134,515,008" in html
    assert "<b>0.8124</b>" in html and "0.8123" not in html  # the newest evaluation per corpus
    assert "python-docs" in html and "none in this store" in html
    assert "LoRA rank 8" in html and "1.5 -&gt; 0.25" in html
    assert "The capital of France is &lt;Paris&gt;." in html  # escaped


def test_an_import_without_evaluations_says_how_to_score_it():
    with RunStore.open() as store:
        fake_import(store)
        html = real_model_section(store)
    assert "no bits/byte recorded" in html and "imo eval RUN --corpus python-docs" in html
