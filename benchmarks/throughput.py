"""Training throughput (tokens/s) and MFU: imo at its default precision against imo in fp32 and
against Hugging Face's GPT2LMHeadModel of the identical shape at HF's best, in the same process.

Models: the preset's shape, learned positions, biases, tied embeddings, exact GELU, dropout 0,
SDPA attention (imo attn="sdpa", HF attn_implementation="sdpa"), the same weights (HF gets imo's
initial weights through the hf-gpt2 export mapping, and the first losses are checked equal).
A step is what `imo train` does: forward under the run's autocast, backward, gradient clipping at
1.0, AdamW (nanoGPT's decay groups, lr 1e-3), zero_grad. Variants, per preset:

  imo fp32 foreach   the step before issue 14 (fp32, foreach AdamW)
  imo fp32           --dtype float32 (fused AdamW)
  imo auto           --dtype auto: bf16 mixed precision where the CPU has native bf16, else fp32
  HF best            HF with the same dtype as imo auto, sdpa, fused AdamW

After warm-up steps the variants are timed in alternating rounds (forward and reversed order),
each reporting the median of its rounds and its best round, so drift in machine speed hits all
alike. MFU = tokens/s x FLOPs per token (imo.train.flops: 6N + 12LCT) / the peak matmul FLOP/s
that `imo doctor` measures at the model's own matmul shapes for that dtype and thread count.
`--threads 1 2` repeats imo auto at each thread count (interleaved) for the 1-vs-2 row.

On a shared 2-core machine other processes only ever slow a round down, and with 2 OpenMP threads
every parallel op waits for a descheduled thread: run it under `flock /tmp/imo-heavy.lock`.

Targets (native bf16): imo auto / imo fp32 >= 1.5 (small), >= 1.3 (tiny); imo auto / HF best
>= 1.2; MFU of small >= 50% in fp32, >= 30% in bf16.

    python benchmarks/throughput.py --markdown                  # tiny, small (+ base MFU rows)
    python benchmarks/throughput.py --profile tiny --dtype auto # top ops of imo's step
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from imo.runs.store import short_commit

ROOT = Path(__file__).resolve().parent.parent
try:
    from imo.doctor import machine, peak
    from imo.model import GPT, ModelConfig
    from imo.model.export import gpt2_config, gpt2_state_dict
    from imo.train.flops import flops_per_token
    from imo.train.precision import autocast, resolve_dtype
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
    from imo.doctor import machine, peak
    from imo.model import GPT, ModelConfig
    from imo.model.export import gpt2_config, gpt2_state_dict
    from imo.train.flops import flops_per_token
    from imo.train.precision import autocast, resolve_dtype

THREADS = 1
LR = 1e-3
BATCH = {"tiny": 16, "small": 16, "base": 2}  # the train default (16); base at 2 x 1024 keeps a step to seconds


class HFLoss(nn.Module):
    """GPT2LMHeadModel with imo's loss: mean cross-entropy over all B*T positions (HF's own
    `labels=` loss shifts by one and drops the last position, a different amount of work)."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.hf(input_ids=idx, use_cache=False).logits  # (B, T, vocab)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def build(preset: str) -> tuple[nn.Module, nn.Module]:
    """(imo GPT, HF GPT2LMHeadModel wrapped in HFLoss) with identical shape and weights."""
    from transformers import AutoModelForCausalLM, GPT2Config

    cfg = ModelConfig.preset(preset, pos="learned", attn="sdpa", bias=True, tie_weights=True, dropout=0.0)
    torch.manual_seed(0)
    imo = GPT(cfg)
    hf_cfg = {k: v for k, v in gpt2_config(cfg).items() if k not in ("architectures", "model_type", "torch_dtype")}
    hf = AutoModelForCausalLM.from_config(GPT2Config(**hf_cfg), attn_implementation="sdpa")
    assert hf.config._attn_implementation == "sdpa", hf.config._attn_implementation
    missing, unexpected = hf.load_state_dict(gpt2_state_dict(imo), strict=False)
    assert set(missing) <= {"lm_head.weight"} and not unexpected, (missing, unexpected)
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr(), "HF lm_head not tied"
    return imo.train(), HFLoss(hf).train()


def batches(preset: str, n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    B, T = BATCH[preset], ModelConfig.preset(preset).context_length
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x = torch.randint(0, 256, (B, T + 1), generator=g)
        out.append((x[:, :-1].contiguous(), x[:, 1:].contiguous()))
    return out


class Trainer:
    """One model as `imo train` steps it; `run(n)` returns seconds per step."""

    def __init__(self, model: nn.Module, data: list, dtype: str, fused: bool) -> None:
        self.model, self.data, self.i, self.dtype = model, data, 0, dtype
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        kind = {"fused": True} if fused else {"foreach": True}
        self.opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.99), **kind)

    def step(self) -> torch.Tensor:
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        with autocast(self.dtype, "cpu"):
            _, loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss

    def run(self, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            loss = self.step()
        loss.item()
        return (time.perf_counter() - t0) / n


def interleaved(trainers: dict[str, Trainer], rounds: int, steps: int, tokens: int,
                threads: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Tokens/s of each trainer in each of `rounds` rounds, the order reversed every other round."""
    rates: dict[str, list[float]] = {k: [] for k in trainers}
    for r in range(rounds):
        for name in (list(trainers) if r % 2 == 0 else list(trainers)[::-1]):
            if threads:
                torch.set_num_threads(threads[name])
            rates[name].append(tokens / trainers[name].run(steps))
    return rates


def variants(preset: str, auto: str, with_hf: bool, compile: bool) -> dict[str, tuple[nn.Module, str, bool]]:
    """name -> (model, dtype, fused); every imo variant starts from the same weights."""
    imo, hf = build(preset)
    out = {"imo fp32 foreach": (imo, "float32", False)}
    for name in ("imo fp32", "imo auto"):
        m = copy.deepcopy(imo)
        out[name] = (m, "float32" if name == "imo fp32" else auto, True)
    if with_hf:
        out["HF best"] = (hf, auto, True)
    if compile:
        out["imo auto compiled"] = (torch.compile(copy.deepcopy(imo)), auto, True)
        if with_hf:
            out["HF best compiled"] = (torch.compile(copy.deepcopy(hf)), auto, True)
    return out


def measure(preset: str, auto: str, rounds: int, steps: int, warmup: int, with_hf: bool, compile: bool) -> dict:
    vs = variants(preset, auto, with_hf, compile)
    data = batches(preset)
    tokens = data[0][0].numel()
    if with_hf:  # same weights, same batch: the first losses must agree, or the models differ
        with torch.no_grad():
            l_imo, l_hf = vs["imo fp32"][0](*data[0])[1].item(), vs["HF best"][0](*data[0])[1].item()
        if abs(l_imo - l_hf) > 1e-4:
            raise SystemExit(f"{preset}: imo loss {l_imo:.6f} != HF loss {l_hf:.6f}; not the same model")
    trainers = {k: Trainer(m, data, dtype, fused) for k, (m, dtype, fused) in vs.items()}
    compile_s = {}
    for k, tr in trainers.items():
        t0 = time.perf_counter()
        tr.run(warmup)
        compile_s[k] = time.perf_counter() - t0
    rates = interleaved(trainers, rounds, steps, tokens)
    cfg = ModelConfig.preset(preset)
    fpt = flops_per_token(cfg)
    peaks = {d: peak(d, "cpu", cfg, tokens) for d in {"float32", auto}}
    return {"preset": preset, "B": BATCH[preset], "T": data[0][0].size(1), "rates": rates,
            "dtype": {k: v[1] for k, v in vs.items()}, "fpt": fpt, "peaks": peaks,
            "warmup_s": {k: v for k, v in compile_s.items() if "compiled" in k}}


def threads_row(preset: str, auto: str, rounds: int, steps: int, warmup: int, counts: list[int]) -> dict:
    imo, _ = build(preset)
    data = batches(preset)
    trainers = {f"{n} thread(s)": Trainer(copy.deepcopy(imo), data, auto, True) for n in counts}
    threads = {f"{n} thread(s)": n for n in counts}
    for k, tr in trainers.items():
        torch.set_num_threads(threads[k])
        tr.run(warmup)
    rates = interleaved(trainers, rounds, steps, data[0][0].numel(), threads)
    return {"preset": preset, "rates": rates}


def profile(preset: str, dtype: str, steps: int = 3, rows: int = 10) -> str:
    """The top ops (self CPU time) of imo's step over `steps` steps, as a Markdown table."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    cfg = ModelConfig.preset(preset)  # imo's own default model (RoPE), as `imo train` runs it
    torch.manual_seed(0)
    tr = Trainer(GPT(cfg).train(), batches(preset), dtype, fused=True)
    tr.run(2)
    with prof(activities=[ProfilerActivity.CPU]) as p:
        tr.run(steps)
    ops = sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops)
    lines = [f"{preset}, {dtype}, B x T = {BATCH[preset]} x {cfg.context_length}, {steps} steps, "
             f"{torch.get_num_threads()} thread(s); self CPU total {total / 1e3 / steps:.0f} ms/step", "",
             "| op | calls/step | self ms/step | share |", "|:--|--:|--:|--:|"]
    for e in ops[:rows]:
        lines.append(f"| `{e.key}` | {e.count / steps:.0f} | {e.self_cpu_time_total / 1e3 / steps:.1f} | "
                     f"{e.self_cpu_time_total / total:.0%} |")
    return "\n".join(lines)


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["preset", "B x T", "variant", "dtype", "tok/s (median)", "tok/s (best)", "vs imo fp32",
              "MFU (at its shapes)"]
    lines = []
    for r in rows:
        med = {k: statistics.median(v) for k, v in r["rates"].items()}
        for k, rate in med.items():
            d = r["dtype"][k]
            lines.append([r["preset"], f"{r['B']} x {r['T']}", k, d, fmt_rate(rate), fmt_rate(max(r["rates"][k])),
                          f"{rate / med['imo fp32']:.2f}x", f"{rate * r['fpt'] / r['peaks'][d]:.0%}"])
    return header, lines


def markdown(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join([":--"] * 4 + ["--:"] * (len(header) - 4)) + "|"]
    return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=sorted(BATCH))
    ap.add_argument("--mfu-presets", nargs="*", default=["base"], choices=sorted(BATCH),
                    help="presets measured for MFU only (imo variants, no HF)")
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds per variant (median)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the rounds")
    ap.add_argument("--steps", type=int, default=1, help="steps per round")
    ap.add_argument("--compile", action="store_true", help="add torch.compile variants (slow to compile)")
    ap.add_argument("--threads", type=int, nargs="+", default=[THREADS],
                    help="torch threads; with two counts, also a row of imo auto at each (tiny)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="imo auto's dtype")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables for RESULTS.md")
    ap.add_argument("--profile", metavar="PRESET", nargs="+", choices=sorted(BATCH),
                    help="print the top-10 ops of imo's step (torch.profiler) instead of benchmarking")
    args = ap.parse_args()

    torch.set_num_threads(args.threads[0])
    auto = resolve_dtype(args.dtype, "cpu")
    if args.profile:
        for preset in args.profile:
            print(profile(preset, auto), end="\n\n", flush=True)
        return
    try:
        import transformers
    except ImportError:
        raise SystemExit("transformers is not installed: pip install -e '.[bench]'") from None
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, flags {' '.join(m['flags'])}; {platform.platform()}; "
          f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}; "
          f"git {short_commit()}; {args.threads[0]} thread(s); imo auto = {auto}")
    print(f"{args.rounds} interleaved rounds of {args.steps} step(s), median; {args.warmup} warm-up steps; "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    rows = []
    t_start = time.perf_counter()
    for preset in args.presets + [p for p in args.mfu_presets if p not in args.presets]:
        t0 = time.perf_counter()
        full = preset in args.presets
        rows.append(measure(preset, auto, args.rounds if full else max(2, args.rounds // 2), args.steps,
                            args.warmup if full else 1, with_hf=full, compile=args.compile and full))
        print(f"  {preset}: done in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    header, lines = table(rows)
    if args.markdown:
        print("\n" + markdown(header, lines))
    else:
        for line in [header, *lines]:
            print("  ".join(line))
    for r in rows:
        if r["warmup_s"]:
            print(f"{r['preset']}: compile + {args.warmup} warm-up steps: "
                  + ", ".join(f"{k} {v:.0f}s" for k, v in r["warmup_s"].items()))
    if len(args.threads) > 1:
        tr = threads_row("tiny", auto, args.rounds, args.steps, args.warmup, args.threads)
        med = {k: statistics.median(v) for k, v in tr["rates"].items()}
        print("threads (tiny, imo auto): " + ", ".join(f"{k} {fmt_rate(v)} tok/s (best {fmt_rate(max(tr['rates'][k]))})"
                                                     for k, v in med.items()))
        torch.set_num_threads(args.threads[0])
    verdicts = []
    for r in rows:
        med = {k: statistics.median(v) for k, v in r["rates"].items()}
        if "HF best" in med:
            verdicts.append(f"{r['preset']}: auto/fp32 {med['imo auto'] / med['imo fp32']:.2f}x, "
                            f"auto/HF {med['imo auto'] / med['HF best']:.2f}x")
    print("; ".join(verdicts) + f"; total {time.perf_counter() - t_start:.0f}s; load average "
          f"{os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
