"""Shrinking the `small` preset: bytes on disk, bits/byte and CPU tokens/s, float32 vs int8/int4/pruned.

Targets (issue 5): every weight matrix quantized (the embedding and output head are tied in
imo's GPT, so they are one matrix here and are quantized together):
  int8        bits/byte within 1% of float32, checkpoint <= 30% of the float32 one
  int4 (g64)  within 5%, <= 18%
  50% pruning + int8: >= 6x smaller, within 3% (fine-tuning steps after pruning are reported)
  int8 CPU kernels: tokens/s ratio vs float32 in the same process (aim >= 1.5x)
Variants that keep the embedding/head in float are measured beside them. Every row goes through
the real path: `prune_run` / `quantize_run` write a new run, and the figures are of the model
loaded back from its checkpoint.

    python benchmarks/quantization.py [--steps 200] [--markdown]
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from imo import paths
from imo.compress.quantize import QuantConfig
from imo.compress.runs import checkpoint_bytes, prune_run, quantize_run, scored
from imo.runs.store import RunStore, short_commit
from imo.train.checkpoint import load_model
from imo.train.config import RunConfig
from imo.train.trainer import train_or_reuse

KEEP = ("transformer.wte", "lm_head")


def config(steps: int) -> RunConfig:
    # the `small` preset's width and depth (6 x 256, 8 heads) at context 256, so that a brief
    # training fits a shared 2-core machine
    return RunConfig.build(preset="small", model={"context_length": 256},
                           train={"steps": steps, "batch_size": 8, "warmup": 20, "eval_every": 100,
                                  "seed": 1337, "device": "cpu"})


@torch.no_grad()
def tokens_per_s(models: dict[str, torch.nn.Module], batch: int, length: int, repeats: int) -> dict[str, float]:
    """Forward throughput of each model on the same input, the models interleaved round by round
    (so load on a shared machine hits them alike); median over rounds."""
    x = torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():
        m(x)  # warm up (fbgemm packs its weights on the first call)
    for _ in range(repeats):
        for k, m in models.items():
            t = time.perf_counter()
            m(x)
            times[k].append(time.perf_counter() - t)
    return {k: batch * length / statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="training steps of the float32 model")
    ap.add_argument("--finetune-steps", type=int, default=40, help="steps after 50%% pruning (batch 8)")
    ap.add_argument("--eval-bytes", type=int, default=32_768)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--store", default="/tmp/compress/bench/store.sqlite")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths.set_store(Path(args.store))
    store = RunStore.open()
    t0 = time.perf_counter()
    base = train_or_reuse(config(args.steps), store=store, quiet=False)
    print(f"float32 run {base} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.train_only:
        return
    eb = dict(eval_bytes=args.eval_bytes)
    runs = {"float32": base}
    runs["int8 (fbgemm)"], _ = quantize_run(store, base, QuantConfig(bits=8, kernel="fbgemm"), **eb)
    runs["int8 (weight-only)"], _ = quantize_run(store, base, QuantConfig(bits=8, kernel="weight-only"), **eb)
    runs["int8, emb/head float"], _ = quantize_run(store, base, QuantConfig(bits=8, kernel="fbgemm"), keep=KEEP, **eb)
    runs["int4 g64"], _ = quantize_run(store, base, QuantConfig(bits=4, group_size=64), **eb)
    runs["int4 g32"], _ = quantize_run(store, base, QuantConfig(bits=4, group_size=32), **eb)
    runs["int4 g64, emb/head float"], _ = quantize_run(store, base, QuantConfig(bits=4, group_size=64), keep=KEEP, **eb)
    runs["prune 50%"], _ = prune_run(store, base, "magnitude", 0.5, finetune_steps=0, **eb)
    runs[f"prune 50% + {args.finetune_steps} ft"], _ = prune_run(
        store, base, "magnitude", 0.5, finetune_steps=args.finetune_steps, batch_size=8, **eb)
    runs[f"prune 50% + {args.finetune_steps} ft + int8"], _ = quantize_run(
        store, runs[f"prune 50% + {args.finetune_steps} ft"], QuantConfig(bits=8, kernel="fbgemm"), **eb)
    runs["prune 50% (no ft) + int8"], _ = quantize_run(store, runs["prune 50%"], QuantConfig(bits=8, kernel="fbgemm"), **eb)

    # every figure from the model as loaded back from its checkpoint
    models = {k: load_model(store.run_dir(r))[0] for k, r in runs.items()}
    corpus = config(args.steps).train.corpus
    bpb = {k: scored(m, corpus, args.eval_bytes) for k, m in models.items()}
    size = {k: checkpoint_bytes(store.run_dir(r)) for k, r in runs.items()}
    speed_keys = ["float32", "int8 (fbgemm)", "int8 (weight-only)", "int4 g64"]
    speed_long = tokens_per_s({k: models[k] for k in speed_keys}, 4, 256, args.repeats)
    speed_short = tokens_per_s({k: models[k] for k in speed_keys}, 1, 16, args.repeats * 4)

    fig = store.get(base)["figures"]
    print(f"\nfloat32: {fig['steps']} steps, val {fig['val_bpb']:.3f} bits/byte (whole split); "
          f"{sum(p.numel() for p in models['float32'].parameters()):,} parameters, tied embedding/head")
    head = "| variant | bytes on disk | size vs float32 | bits/byte | delta vs float32 |"
    lines = [head, "|---|---:|---:|---:|---:|"]
    for k in runs:
        lines.append(f"| {k} | {size[k]:,} | {size[k] / size['float32']:.1%} | {bpb[k]:.4f} | "
                     f"{bpb[k] / bpb['float32'] - 1:+.2%} |")
    lines += ["", "| forward tokens/s (1 thread) | batch 4 x 256 | ratio | batch 1 x 16 | ratio |",
              "|---|---:|---:|---:|---:|"]
    for k in speed_keys:
        lines.append(f"| {k} | {speed_long[k]:,.0f} | {speed_long[k] / speed_long['float32']:.2f}x | "
                     f"{speed_short[k]:,.0f} | {speed_short[k] / speed_short['float32']:.2f}x |")
    print("\n".join(lines))
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"torch {torch.__version__}, {args.threads} thread(s), commit {short_commit()}, "
               f"load average {os.getloadavg()[0]:.1f}")
    print(f"\n{machine}; bits/byte on the first {args.eval_bytes:,} validation bytes; runs in {args.store}")


if __name__ == "__main__":
    main()
