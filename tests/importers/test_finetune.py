"""Fine-tuning an imported run (`imo train --init-from`): LoRA adapters (imo/model/lora.py) and the
full fine-tune on the tiny random Llama GGUF, with a generated instruction set."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_gguf import cli, write_tiny_gguf

from imo.importers.gguf import import_gguf
from imo.importers.instruct import IGNORE, encode_conversation, terse_answers, write_jsonl
from imo.model.config import ModelConfig
from imo.model.llama import Llama
from imo.model.lora import LoRAConfig, LoRALinear, apply_lora_, merge_lora_
from imo.runs.store import RunStore
from imo.train.checkpoint import checkpoint_dir, load_model, read_checkpoint
from imo.train.config import TrainConfig
from imo.train.finetune import finetune, resume

pytest.importorskip("gguf")


@pytest.fixture
def tiny(tmp_path):
    """(imported run id, instruction file) of the tiny random Llama."""
    run = import_gguf(write_tiny_gguf(tmp_path / "tiny.gguf"), name="t")
    return run, write_jsonl(tmp_path / "qa.jsonl", terse_answers(40, seed=0))


def small_llama() -> Llama:
    torch.manual_seed(0)
    return Llama(ModelConfig(family="llama", vocab_size=50, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                             ffn_hidden=48, bias=False, context_length=16))


def weights(run_dir) -> dict[str, torch.Tensor]:
    return read_checkpoint(checkpoint_dir(run_dir), with_state=False)[1]


def test_a_fresh_adapter_changes_nothing_and_only_adapters_get_gradients():
    m = small_llama()
    x = torch.randint(0, 50, (2, 10))
    before = m(x)[0]
    assert apply_lora_(m, LoRAConfig(rank=4, alpha=8)) == 2 * 7  # q k v o gate up down in each block
    assert torch.equal(m(x)[0], before)  # B starts at zero
    m(x, x)[1].backward()
    grads = {n for n, p in m.named_parameters() if p.grad is not None}
    assert grads and all(n.endswith(("lora_A", "lora_B")) for n in grads)
    assert not any(p.requires_grad for n, p in m.named_parameters() if not n.endswith(("lora_A", "lora_B")))


def test_merged_linear_is_base_plus_scaled_BA():
    torch.manual_seed(1)
    base = torch.nn.Linear(12, 7, bias=True)
    w0 = base.weight.detach().clone()
    lora = LoRALinear(base, rank=3, alpha=6.0)
    torch.nn.init.normal_(lora.lora_B)
    x = torch.randn(5, 12)
    merged = lora.merged()
    assert torch.allclose(merged.weight, w0 + 2.0 * lora.lora_B @ lora.lora_A)
    assert torch.allclose(merged(x), lora(x), atol=1e-6)
    assert torch.allclose(merged(x), x @ w0.T + base.bias + 2.0 * (x @ lora.lora_A.T) @ lora.lora_B.T, atol=1e-6)


def test_merge_gives_plain_linears_and_the_same_function():
    m = small_llama()
    apply_lora_(m, LoRAConfig(rank=2, targets=("q", "down")))
    for mod in m.modules():
        if isinstance(mod, LoRALinear):
            torch.nn.init.normal_(mod.lora_B, std=0.1)
    x = torch.randint(0, 50, (1, 8))
    adapted = m(x)[0]
    assert merge_lora_(m) == 4
    assert not any(isinstance(mod, LoRALinear) for mod in m.modules())
    assert torch.allclose(m(x)[0], adapted, atol=1e-5)
    assert set(m.state_dict_for_save()) == set(small_llama().state_dict_for_save())


def test_only_the_answer_is_a_target():
    from tiny_gguf import TEMPLATE, vocab

    from imo.data.tokenizer import BPETokenizer

    tokens, merges, types = vocab()
    tok = BPETokenizer.from_vocab(tokens, merges, "smollm", {t: i for i, (t, ty) in enumerate(zip(tokens, types, strict=True)) if ty == 3})
    spec = {"template": TEMPLATE, "eos_token": "<|im_end|>"}
    ids, targets = encode_conversation(tok, spec, [{"role": "user", "content": "hello"},
                                                   {"role": "assistant", "content": "world"}])
    assert len(ids) == len(targets)
    answer = [t for t in targets if t != IGNORE]
    assert tok.decode(answer).startswith("world") and tok.special["<|im_end|>"] in answer
    assert targets[: len(targets) - len(answer)] == [IGNORE] * (len(targets) - len(answer))
    assert ids[len(ids) - len(answer) + 1:] == answer[:-1]  # each target is the next input


def test_lora_finetune_lowers_the_loss_and_saves_base_plus_BA(tiny):
    parent, qa = tiny
    t = TrainConfig(corpus=f"chat:{qa}", steps=30, lr=1e-2, warmup=3, batch_size=8, dtype="float32", eval_every=30)
    out = finetune(parent, t, context=64, lora=LoRAConfig(rank=4, alpha=8), quiet=True)
    assert not out.stopped
    with RunStore.open() as store:
        r = store.get(out.run_id)
        base_dir, run_dir = store.run_dir(parent), store.run_dir(out.run_id)
    f = r["figures"]
    assert r["kind"] == "finetune" and r["parent"] == parent and r["status"] == "finished"
    assert f["val_bpb"] < 0.5 * f["val_bpb_before"]
    assert f["trainable_params"] == 2 * (4 * (64 + 64) * 2 + 4 * (64 + 32) * 2 + 4 * (64 + 96) * 3)
    base, tuned, adapters = weights(base_dir), weights(run_dir), load_file(run_dir / "lora.safetensors")
    assert set(base) == set(tuned)  # an ordinary checkpoint: no adapter tensors left
    for name, w in base.items():
        prefix = name.removesuffix(".weight")
        if f"{prefix}.lora_A" in adapters:
            delta = 2.0 * adapters[f"{prefix}.lora_B"] @ adapters[f"{prefix}.lora_A"]
            assert delta.abs().max() > 0
            assert torch.allclose(tuned[name], w + delta, atol=1e-6), name
        else:
            assert torch.equal(tuned[name], w), name  # norms and embeddings untouched
    model, _ = load_model(run_dir)
    assert isinstance(model, Llama) and not any(isinstance(m, LoRALinear) for m in model.modules())


def test_the_tuned_run_samples_and_chats(tiny, capsys):
    parent, qa = tiny
    code, out, err = cli(capsys, "train", "--init-from", "t", "--corpus", f"chat:{qa}", "--lora-rank", "4",
                         "--steps", "20", "--lr", "1e-2", "--dtype", "float32", "--name", "tuned")
    assert code == 0, err
    assert "LoRA rank 4 fine-tune" in out and "bits/byte" in out
    code, answer, err = cli(capsys, "chat", "tuned", "--once", "What is the capital of Peru?", "--max-tokens", "8")
    assert code == 0 and answer.strip(), err
    code, sample, err = cli(capsys, "sample", "tuned", "--prompt", "hello", "--tokens", "5")
    assert code == 0, err
    code, ev, err = cli(capsys, "eval", "tuned", "--corpus", "python-docs", "--max-bytes", "2000")
    assert code == 0 and "bits/byte" in ev and "xz -9e" in ev, err


def test_full_finetune_on_a_text_corpus_and_seeded_repeats(tiny, tmp_path):
    parent, _ = tiny
    text = tmp_path / "text.txt"
    text.write_text(" ".join(["hello world and the world", "def print return"] * 300))
    t = TrainConfig(corpus=f"file:{text}", steps=15, lr=3e-3, warmup=2, batch_size=4, dtype="float32", eval_every=15)
    a = finetune(parent, t, context=32, quiet=True)
    b = finetune(parent, t, context=32, quiet=True)
    with RunStore.open() as store:
        fa, fb = store.get(a.run_id)["figures"], store.get(b.run_id)["figures"]
        wa, wb = weights(store.run_dir(a.run_id)), weights(store.run_dir(b.run_id))
    assert fa["val_bpb"] < fa["val_bpb_before"] and fa["trainable_params"] == fa["params"]
    assert fa["val_bpb"] == fb["val_bpb"] and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_an_interrupted_finetune_resumes_to_the_same_weights(tiny):
    parent, qa = tiny
    t = TrainConfig(corpus=f"chat:{qa}", steps=12, lr=1e-2, warmup=2, batch_size=4, dtype="float32", ckpt_every=5)
    lora = LoRAConfig(rank=2, targets=("q", "v"))
    whole = finetune(parent, t, context=64, lora=lora, quiet=True)
    cut = finetune(parent, t, context=64, lora=lora, quiet=True, stop_at=7)
    assert cut.stopped
    with RunStore.open() as store:
        assert store.get(cut.run_id)["status"] == "interrupted"
        saved = weights(store.run_dir(cut.run_id))
    assert saved and all(k.endswith(("lora_A", "lora_B")) for k in saved)  # the base stays in the parent
    assert not resume(cut.run_id, quiet=True).stopped
    with RunStore.open() as store:
        wa, wb = weights(store.run_dir(whole.run_id)), weights(store.run_dir(cut.run_id))
        assert store.get(cut.run_id)["figures"]["val_bpb"] == store.get(whole.run_id)["figures"]["val_bpb"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("args, message", [
    (["--lora-rank", "4"], "give --init-from RUN"),
    (["--init-from", "t", "--layers", "3"], "drop --layers"),
    (["--init-from", "t", "--lora-rank", "4", "--lora-targets", "q,nope"], "unknown LoRA target(s) nope"),
    (["--init-from", "t", "--lora-alpha", "4"], "need --lora-rank R > 0"),
    (["--init-from", "t", "--context", "4096"], "context must be in [2, 128]"),
    (["--init-from", "t", "--corpus", "chat:/nonexistent.jsonl"], "no instruction file"),
])
def test_bad_finetune_flags_exit_2_and_record_nothing(tiny, capsys, args, message):
    code, _, err = cli(capsys, "train", *args)
    assert code == 2 and message in " ".join(err.split()), err
    assert "Traceback" not in err
    with RunStore.open() as store:
        assert [r["kind"] for r in store.list()] == ["import"]


def test_lora_on_a_byte_gpt_run_exits_2(capsys):
    code, out, err = cli(capsys, "train", "--steps", "2", "--layers", "1", "--width", "32", "--heads", "2",
                         "--context", "16", "--batch-size", "2", "-q")
    assert code == 0, err
    run = out.split()[-1]
    code, _, err = cli(capsys, "train", "--init-from", run, "--lora-rank", "4", "--steps", "2")
    assert code == 2 and "LoRA is built for the llama family" in " ".join(err.split())


def test_a_bad_instruction_line_is_one_clear_error(tiny, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "response": "yo"}) + "\n{not json\n")
    code, _, err = cli(capsys, "train", "--init-from", "t", "--corpus", f"chat:{bad}", "--lora-rank", "2")
    assert code == 2 and "bad.jsonl line 2 is not JSON" in " ".join(err.split())
