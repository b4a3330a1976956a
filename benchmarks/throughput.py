"""Training throughput (tokens/s) of imo's GPT against Hugging Face's GPT2LMHeadModel of the
identical shape, measured in the same process.

Both models: the preset's shape, learned positions, biases, tied embeddings, exact GELU, dropout
0, fp32, SDPA attention (imo attn="sdpa", HF attn_implementation="sdpa"), the same AdamW
(lr 1e-3, foreach), the same cross-entropy over all B*T positions, and the same weights (HF gets
imo's initial weights through the hf-gpt2 export mapping, and the first losses are checked
equal). A step is zero_grad + forward + backward + optimizer step. After warm-up steps the two
models are timed in alternating rounds of one step (imo, HF, HF, imo, ...) and each reports the
median of its rounds, so drift in machine speed hits both alike. Then the same for
`torch.compile(model)` (default mode; the compiled module includes the loss for both; an empty
on-disk inductor cache per model unless --warm-cache, so "compile s" is a first compile, though HF,
compiled second in the same process, may reuse kernels built in memory for imo).

On a shared machine, other processes only ever slow a round down, and with 2 OpenMP threads on 2
cores every parallel op waits for a descheduled thread: one busy neighbour has slowed a tiny step
from 0.25 s to 3 s. So the table also gives the ratio of the best rounds, the load average is
printed, `--threads 1` gives numbers a single busy neighbour cannot move, and `--profile` compares
what each model executes (op call counts are exact; self times are the better of a few profiles).

Target: imo / HF >= 1.0.

    python benchmarks/throughput.py                 # both presets, eager + compile
    python benchmarks/throughput.py --markdown      # table for benchmarks/RESULTS.md
    python benchmarks/throughput.py --profile tiny  # op counts and times of imo beside HF
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from imo.runs.store import short_commit

ROOT = Path(__file__).resolve().parent.parent
try:
    from imo.model import GPT, ModelConfig
    from imo.model.export import gpt2_config, gpt2_state_dict
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
    from imo.model import GPT, ModelConfig
    from imo.model.export import gpt2_config, gpt2_state_dict

THREADS = 2
LR = 1e-3
BATCH = {"tiny": 16, "small": 8}  # small at 8 x 512 (not 16) keeps the run short; same tokens/step as tiny


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
    """One model, its optimizer and its batches; `run(n)` returns seconds per step."""

    def __init__(self, model: nn.Module, data: list) -> None:
        self.model, self.data, self.i = model, data, 0
        self.opt = torch.optim.AdamW(model.parameters(), lr=LR, foreach=True)

    def step(self) -> float:
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        _, loss = self.model(x, y)
        loss.backward()
        self.opt.step()
        return loss.item()

    def run(self, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            self.step()
        return (time.perf_counter() - t0) / n


def interleaved(trainers: dict[str, Trainer], rounds: int, steps: int, tokens: int) -> dict[str, list[float]]:
    """Tokens/s of each trainer in each of `rounds` rounds of `steps` steps, who goes first
    alternating (A B B A A B ...)."""
    rates: dict[str, list[float]] = {k: [] for k in trainers}
    for r in range(rounds):
        names = list(trainers) if r % 2 == 0 else list(trainers)[::-1]
        for name in names:
            rates[name].append(tokens / trainers[name].run(steps))
    return rates


def measure(preset: str, rounds: int, steps: int, warmup: int, compile: bool, cache_root: str | None) -> dict:
    imo, hf = build(preset)
    data = batches(preset)
    tokens = data[0][0].numel()
    row: dict = {"preset": preset, "B": BATCH[preset], "T": data[0][0].size(1)}
    # same weights, same batch: the first losses must agree, or the comparison is of different models
    with torch.no_grad():
        l_imo, l_hf = imo(*data[0])[1].item(), hf(*data[0])[1].item()
    if abs(l_imo - l_hf) > 1e-4:
        raise SystemExit(f"{preset}: imo loss {l_imo:.6f} != HF loss {l_hf:.6f}; not the same model")

    eager = {"imo": Trainer(imo, data), "hf": Trainer(hf, data)}
    for t in eager.values():
        t.run(warmup)
    row["eager"] = interleaved(eager, rounds, steps, tokens)
    if not compile:
        return row

    compiled, row["compile_s"], row["compile_error"] = {}, {}, None
    try:
        for name, model in (("imo", imo), ("hf", hf)):
            if cache_root:  # an empty on-disk cache per model, so compile seconds are a first compile's
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache_root, f"{preset}-{name}")
            t0 = time.perf_counter()
            tr = Trainer(torch.compile(model), data)
            tr.run(1)  # first step compiles forward and backward
            row["compile_s"][name] = time.perf_counter() - t0
            tr.run(warmup)
            compiled[name] = tr
    except Exception as e:  # noqa: BLE001 - a compile failure is a result to report, not a crash
        msg = str(e).strip().splitlines()
        row["compile_error"] = f"{type(e).__name__}: {msg[0][:200] if msg else ''}"
        return row
    row["compiled"] = interleaved(compiled, rounds, steps, tokens)
    return row


def profile(preset: str, steps: int = 3, reps: int = 3, rows: int = 40) -> None:
    """Ops of imo beside HF's over `steps` eager training steps: call counts (exact; they show
    any extra work one model does) and self CPU ms (each model's fastest of `reps` profiles)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    imo, hf = build(preset)
    data = batches(preset)
    trainers = {"imo": Trainer(imo, data), "hf": Trainer(hf, data)}
    for tr in trainers.values():
        tr.run(2)
    best: dict[str, dict[str, tuple[int, float]]] = {}
    for r in range(reps):
        for name in (list(trainers) if r % 2 == 0 else list(trainers)[::-1]):
            with prof(activities=[ProfilerActivity.CPU]) as p:
                trainers[name].run(steps)
            ops = {e.key: (e.count, e.self_cpu_time_total / 1e3) for e in p.key_averages()}
            if name not in best or sum(v[1] for v in ops.values()) < sum(v[1] for v in best[name].values()):
                best[name] = ops
    a, b = best["imo"], best["hf"]
    names = sorted(set(a) | set(b), key=lambda k: -max(a.get(k, (0, 0))[1], b.get(k, (0, 0))[1]))
    print(f"{preset}, {steps} steps; load average {os.getloadavg()[0]:.1f}")
    print(f"{'op':64} {'imo calls':>9} {'imo ms':>8} {'HF calls':>9} {'HF ms':>8}")
    for k in names[:rows]:
        (na, ta), (nb, tb) = a.get(k, (0, 0.0)), b.get(k, (0, 0.0))
        print(f"{k[:64]:64} {na:9d} {ta:8.1f} {nb:9d} {tb:8.1f}{'  <- count differs' if na != nb else ''}")
    print(f"{'total self CPU':64} {'':9} {sum(v[1] for v in a.values()):8.1f} {'':9} "
          f"{sum(v[1] for v in b.values()):8.1f}")



def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def ratios(rates: dict[str, list[float]]) -> tuple[float, float, float, float]:
    """(imo median, HF median, ratio of medians, ratio of best rounds). On a shared machine noise
    only ever slows a round down, so the best rounds are a second, contention-free estimate."""
    mi, mh = statistics.median(rates["imo"]), statistics.median(rates["hf"])
    return mi, mh, mi / mh, max(rates["imo"]) / max(rates["hf"])


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["preset", "B x T", "mode", "imo tok/s", "HF tok/s", "imo / HF", "imo / HF (best rounds)",
              "compile / eager (imo, HF)", "compile s (imo / HF)"]
    lines = []
    for r in rows:
        shape = f"{r['B']} x {r['T']}"
        ei, eh, er, eb = ratios(r["eager"])
        lines.append([r["preset"], shape, "eager", fmt_rate(ei), fmt_rate(eh), f"{er:.3f}", f"{eb:.3f}", "-", "-"])
        if "compiled" in r:
            ci, ch, cr, cb = ratios(r["compiled"])
            s = r["compile_s"]
            lines.append([r["preset"], shape, "compile", fmt_rate(ci), fmt_rate(ch), f"{cr:.3f}", f"{cb:.3f}",
                          f"{ci / ei:.2f}, {ch / eh:.2f}", f"{s['imo']:.0f} / {s['hf']:.0f}"])
        elif r.get("compile_error"):
            lines.append([r["preset"], shape, "compile", "failed", "failed", "-", "-", "-", r["compile_error"]])
    return header, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=sorted(BATCH))
    ap.add_argument("--rounds", type=int, default=8, help="alternating rounds per model (median)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the rounds")
    ap.add_argument("--steps", type=int, default=1, help="steps per round")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--warm-cache", action="store_true",
                    help="let torch.compile use its usual on-disk cache (default: an empty one per model)")
    ap.add_argument("--threads", type=int, default=THREADS,
                    help="torch threads (1 is immune to a busy neighbour on a 2-core machine)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table for RESULTS.md")
    ap.add_argument("--profile", metavar="PRESET", choices=sorted(BATCH),
                    help="print imo's and HF's ops side by side (torch.profiler) instead of benchmarking")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    try:
        import transformers
    except ImportError:
        raise SystemExit("transformers is not installed: pip install -e '.[bench]'") from None
    if args.profile:
        profile(args.profile)
        return

    machine = (f"{platform.platform()}, {platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} CPUs, {args.threads} threads; python {platform.python_version()}, "
               f"torch {torch.__version__}, transformers {transformers.__version__}; git {short_commit()}")
    print(f"machine: {machine}")
    print(f"fp32, SDPA, AdamW(lr={LR}, foreach); {args.rounds} interleaved rounds of {args.steps} "
          f"step(s) per model, median; {args.warmup} warm-up steps; load average "
          f"{os.getloadavg()[0]:.1f} at start", flush=True)

    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imo-bench-inductor-") as tmp:
        for preset in args.presets:
            t0 = time.perf_counter()
            row = measure(preset, args.rounds, args.steps, args.warmup, compile=not args.no_compile,
                          cache_root=None if args.warm_cache else tmp)
            rows.append(row)
            print(f"  {preset}: done in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)

    header, lines = table(rows)
    if args.markdown:
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join([":--", ":--", ":--"] + ["--:"] * (len(header) - 3)) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for line in lines:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    eager_ratios = [ratios(r["eager"])[2] for r in rows]
    ok = all(x >= 1.0 for x in eager_ratios)
    print(f"{'PASS' if ok else 'BELOW TARGET'}: eager imo/HF = "
          + ", ".join(f"{r['preset']} {x:.3f}" for r, x in zip(rows, eager_ratios, strict=True))
          + f" (target >= 1.0); total {time.perf_counter() - t_start:.0f}s; load average "
          + f"{os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
