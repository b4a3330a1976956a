"""The CUDA paths, on a machine with a GPU: bf16 detection, training on the GPU in both dtypes,
seeded repeatability, a GPU checkpoint opening on the CPU, the engine's cached decode, `imo doctor
--device cuda` and a one-process NCCL launch. They skip where torch sees no GPU (CI has none); the
device check in benchmarks/RESULTS.md ("CUDA paths") runs them on one."""

import os
import subprocess
import sys

import pytest
import torch

from imo.runs.store import RunStore
from imo.train.checkpoint import load_model
from imo.train.config import RunConfig
from imo.train.precision import hardware_bf16, resolve_dtype
from imo.train.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch sees none here")

TINY = dict(n_layer=2, n_embd=64, n_head=4, context_length=64)


def cfg(**train_kw) -> RunConfig:
    t = dict(steps=30, batch_size=8, eval_every=10, eval_batches=2, log_every=1, ckpt_every=100, warmup=3,
             device="cuda", lr=3e-3)
    t.update(train_kw)
    return RunConfig.build(preset=None, model=dict(TINY, pos="rope"), train=t)


def curve(rid: str, key: str = "train/bpb") -> list[float]:
    return [v for _, _, v in RunStore.open().metrics(rid, key)]


def test_bf16_detection_on_the_gpu_decides_auto():
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    assert hardware_bf16("cuda") is native
    assert resolve_dtype("auto", "cuda") == ("bfloat16" if native else "float32")
    assert resolve_dtype("float32", "cuda") == "float32"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_training_on_the_gpu_learns_and_its_checkpoint_opens_on_the_cpu(dtype):
    if dtype == "bfloat16" and not hardware_bf16("cuda"):
        pytest.skip("this GPU has no native bf16")
    rid = train(cfg(dtype=dtype), quiet=True)
    run = RunStore.open().get(rid)
    assert run["status"] == "finished"
    bpb = curve(rid)
    assert len(bpb) == 30 and sum(bpb[-5:]) / 5 < sum(bpb[:5]) / 5 - 0.5  # it learned
    model, meta = load_model(RunStore.open().run_dir(rid))
    assert all(p.device.type == "cpu" for p in model.parameters())
    x = torch.randint(0, 256, (2, 48))
    with torch.no_grad():
        cpu_logits = model(x)[0]
        gpu_logits = model.to("cuda")(x.to("cuda"))[0].cpu()
    torch.testing.assert_close(gpu_logits, cpu_logits, atol=2e-3, rtol=2e-3)


def test_seeded_gpu_runs_repeat_exactly():
    a, b = train(cfg(steps=12), quiet=True), train(cfg(steps=12), quiet=True)
    assert curve(a) == curve(b)


def test_cached_decode_on_the_gpu_equals_the_full_forward():
    from imo.engine.decode import Engine

    rid = train(cfg(steps=20, dtype="float32"), quiet=True)
    model, _ = load_model(RunStore.open().run_dir(rid))
    model = model.to("cuda").eval()
    prompt = list(b"def main(")
    got = Engine(model).generate([bytes(prompt)], max_tokens=24, temperature=0.0)[0][0].tokens
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(24):
            logits = model(torch.tensor([seq], device="cuda"))[0]
            seq.append(int(logits[0, -1].argmax()))
    assert got == seq[len(prompt):]


def _imo(*args: str, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(launcher or [sys.executable]), "-m", "imo", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ))


def test_doctor_measures_the_gpu():
    res = _imo("doctor", "--device", "cuda", "--preset", "tiny")
    assert res.returncode == 0, res.stderr[-2000:]
    assert torch.cuda.get_device_name(0) in res.stdout and "on cuda" in res.stdout, res.stdout


def test_one_process_torchrun_on_the_gpu_uses_nccl_and_finishes():
    args = ["train", "--preset", "tiny", "--layers", "2", "--width", "64", "--context", "64", "--steps", "8",
            "--eval-every", "4", "--batch-size", "8", "--device", "cuda", "--quiet"]
    res = _imo(*args, launcher=[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"])
    assert res.returncode == 0, res.stderr[-3000:]
    runs = RunStore.open().list()
    assert len(runs) == 1 and runs[0]["status"] == "finished"
