"""Shrinking the `small` preset: bytes on disk, bits/byte and CPU tokens/s, float32 vs int8/int4/pruned.

Targets (issue 5): every weight matrix quantized (the embedding and output head are tied in
imo's GPT, so they are one matrix here and are quantized together):
  int8        bits/byte within 1% of float32, checkpoint <= 30% of the float32 one
  int4 (g64)  within 5%, <= 18%
  50% pruning + int8: >= 6x smaller, within 3% (fine-tuning steps after pruning are reported)
  int8 CPU kernels: tokens/s ratio vs float32 in the same process (aim >= 1.5x)
With --torchao, torchao's int8/int4 weight-only configs (and its int8 dynamic-activation one) run
beside imo's formats on the same float32 model, the same layers quantized (every Linear of the
blocks; embedding/head float): bits/byte and forward tokens/s (`pip install -e '.[bench]'`).
Variants that keep the embedding/head in float are measured beside them. Every row goes through
the real path: `prune_run` / `quantize_run` write a new run, and the figures are of the model
loaded back from its checkpoint.

    python benchmarks/quantization.py [--steps 200] [--markdown]
    python benchmarks/quantization.py --torchao
"""

import argparse
import copy
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


def torchao_variants(base: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """imo's in-memory formats beside torchao's configs, each on a copy of `base`, the same
    Linears quantized in every variant (the tied embedding/head stays float)."""
    import warnings

    from torchao.prototype.quantization.int4.inference_workflow import PrototypeInt4WeightOnlyConfig
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
    )
    from torchao.quantization import quantize_ as ao_quantize_

    from imo.compress.quantize import quantize_

    def blocks_only(module, fqn):  # torchao's filter: (module, name)
        return isinstance(module, torch.nn.Linear) and fqn != "lm_head"

    out = {"float32": base}
    for name, cfg in (("imo int8 (fbgemm)", QuantConfig(bits=8, kernel="fbgemm")),
                      ("imo int8 (weight-only)", QuantConfig(bits=8, kernel="weight-only")),
                      ("imo int4 g64 (weight-only)", QuantConfig(bits=4, group_size=64)),
                      ("imo int4 g64 (tinygemm)", QuantConfig(bits=4, group_size=64, kernel="tinygemm"))):
        out[name] = copy.deepcopy(base)
        quantize_(out[name], cfg, skip=KEEP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cfg in (("torchao Int8WeightOnlyConfig", Int8WeightOnlyConfig(set_inductor_config=False)),
                          ("torchao Int8DynamicActivationInt8WeightConfig",
                           Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)),
                          ):
            out[name] = copy.deepcopy(base)
            ao_quantize_(out[name], cfg, filter_fn=blocks_only)
        # the CPU int4 path (Int4OpaqueTensor, tinygemm's _weight_int4pack_mm_for_cpu; the plain
        # Int4WeightOnlyConfig formats need CUDA libraries here). Its kernel is written for
        # bfloat16 activations (float32 ran at 0.01x of float32 in a trial), so each quantized
        # Linear takes bfloat16 in and gives float32 back; the rest of the model stays float32.
        name = "torchao int4 g64 (CPU tinygemm, bf16 in the Linears)"
        out[name] = copy.deepcopy(base)
        int4 = PrototypeInt4WeightOnlyConfig(group_size=64, set_inductor_config=False)
        for fqn, module in list(out[name].named_modules()):
            if blocks_only(module, fqn):
                lin = copy.deepcopy(module).to(torch.bfloat16)
                ao_quantize_(lin, int4, filter_fn=lambda m, f: isinstance(m, torch.nn.Linear))
                parent, _, child = fqn.rpartition(".")
                setattr(out[name].get_submodule(parent), child, _InBfloat16(lin))
    return out


class _InBfloat16(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(torch.bfloat16)).float()


def torchao_bench(base: torch.nn.Module, corpus: str, args) -> None:
    import torchao

    models = torchao_variants(base)
    bpb = {k: scored(m, corpus, args.eval_bytes) for k, m in models.items()}
    long = tokens_per_s(models, 4, 256, args.repeats)
    short = tokens_per_s(models, 1, 16, args.repeats * 4)
    lines = [f"torchao {torchao.__version__}; every Linear of the blocks quantized, embedding/head float32",
             "| variant | bits/byte | delta | tokens/s 4 x 256 | vs float32 | tokens/s 1 x 16 | vs float32 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for k in models:
        lines.append(f"| {k} | {bpb[k]:.4f} | {bpb[k] / bpb['float32'] - 1:+.2%} | {long[k]:,.0f} | "
                     f"{long[k] / long['float32']:.2f}x | {short[k]:,.0f} | {short[k] / short['float32']:.2f}x |")
    print("\n".join(lines))


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
    ap.add_argument("--torchao", action="store_true", help="only the comparison with torchao's configs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths.set_store(Path(args.store))
    store = RunStore.open()
    t0 = time.perf_counter()
    base = train_or_reuse(config(args.steps), store=store, quiet=False)
    print(f"float32 run {base} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.train_only:
        return
    if args.torchao:
        torchao_bench(load_model(store.run_dir(base))[0], config(args.steps).train.corpus, args)
        print(machine_line(args))
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
    print(machine_line(args))


def machine_line(args) -> str:
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"torch {torch.__version__}, {args.threads} thread(s), commit {short_commit()}, "
               f"load average {os.getloadavg()[0]:.1f}")
    return f"\n{machine}; bits/byte on the first {args.eval_bytes:,} validation bytes; runs in {args.store}"


if __name__ == "__main__":
    main()
