"""CUDA checks of imo's attention backends: agreement, training speed, and peak memory.

1. Agreement: for the `tiny` and `small` presets with learned, rope and alibi positions, the
   logits and every parameter gradient of one forward + backward with `naive`, `sdpa` and `tiled`
   attention in fp32 (no TF32), each against the same model in float64 with `naive` attention.
2. Speed: tokens/s of training steps (zero_grad, forward, backward, AdamW step) with `sdpa` and
   `tiled`, in fp32 and under bf16 autocast.
3. Memory: torch.cuda.max_memory_allocated growth over one forward + backward, `tiled` against
   `naive`, at T = 1k..8k: the whole `tiny` model (rope, B=1) and attention alone.

Prints Markdown tables for benchmarks/RESULTS.md. Under 5 minutes on an H200. On a machine
without CUDA it says so and exits 0.

    python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --skip-speed --lengths 1024 2048
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import torch

from imo.runs.store import short_commit

ROOT = Path(__file__).resolve().parent.parent
try:
    from imo.model import GPT, ModelConfig
    from imo.model.attention import BACKENDS
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
    from imo.model import GPT, ModelConfig
    from imo.model.attention import BACKENDS

PRESETS = ("tiny", "small")
POSITIONS = ("learned", "rope", "alibi")
BACKEND_NAMES = ("naive", "sdpa", "tiled")
LENGTHS = [1024, 2048, 4096, 8192]
# fp32 errors against a float64 reference; a wrong mask, scale or gradient is off by O(1)
LOGIT_TOL, GRAD_TOL = 1e-4, 1e-4
MiB = 2**20
DEVICE = "cuda"  # --dry-run-on-cpu switches it, to test this script without a GPU


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:120] if msg else ''}"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def batch(B: int, T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (B, T + 1), generator=g).to(DEVICE)
    return x[:, :-1], x[:, 1:]


# --- 1. agreement -------------------------------------------------------------------------------


def forward_backward(model: GPT, backend: str, x, y) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with model.attention_backend(backend):
        logits, loss = model(x, y)
        loss.backward()
    grads = {n: p.grad.detach().double() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach().double(), grads


def agreement(B: int = 4) -> tuple[list[list[str]], bool]:
    rows, ok = [], True
    for preset in PRESETS:
        for pos in POSITIONS:
            cfg = ModelConfig.preset(preset, pos=pos)
            torch.manual_seed(0)
            model = GPT(cfg).to(DEVICE)
            x, y = batch(B, cfg.context_length)
            ref_logits, ref_grads = forward_backward(copy.deepcopy(model).double(), "naive", x, y)
            for backend in BACKEND_NAMES:
                try:
                    logits, grads = forward_backward(model, backend, x, y)
                except Exception as e:  # noqa: BLE001 - report, keep checking the others
                    rows.append([preset, pos, backend, "error", one_line(e), "FAIL"])
                    ok = False
                    continue
                d_logits = (logits - ref_logits).abs().max().item()
                # per parameter: max |error| relative to that gradient's largest entry
                d_grad = max(
                    ((grads[n] - g).abs().max() / g.abs().max().clamp_min(1e-30)).item()
                    for n, g in ref_grads.items()
                )
                passed = d_logits <= LOGIT_TOL and d_grad <= GRAD_TOL
                ok &= passed
                rows.append([preset, pos, backend, f"{d_logits:.2e}", f"{d_grad:.2e}",
                             "ok" if passed else "FAIL"])
    return rows, ok


# --- 2. speed -----------------------------------------------------------------------------------


def tokens_per_s(preset: str, backend: str, bf16: bool, B: int, warmup: int, steps: int) -> float:
    cfg = ModelConfig.preset(preset, attn=backend)
    torch.manual_seed(0)
    model = GPT(cfg).to(DEVICE).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = batch(B, cfg.context_length)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=bf16):
            _, loss = model(x, y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return B * cfg.context_length * steps / (time.perf_counter() - t0)


def speed(B: int, warmup: int, steps: int) -> list[list[str]]:
    rows = []
    for preset in PRESETS:
        for backend in ("sdpa", "tiled"):
            cells = []
            for bf16 in (False, True):
                try:
                    cells.append(f"{tokens_per_s(preset, backend, bf16, B, warmup, steps):,.0f}")
                except Exception as e:  # noqa: BLE001
                    cells.append(one_line(e))
            T = ModelConfig.preset(preset).context_length
            rows.append([preset, f"{B} x {T}", backend, *cells])
    return rows


# --- 3. memory ----------------------------------------------------------------------------------


def peak_mib(fn) -> float | str:
    """Growth of max_memory_allocated over what is allocated before fn() runs."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    try:
        fn()
    except torch.cuda.OutOfMemoryError:
        return "OOM"
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / MiB


def memory(lengths: list[int]) -> list[list[str]]:
    cfg = ModelConfig.preset("tiny", pos="rope")  # rope: no position table, so T may exceed context_length
    torch.manual_seed(0)
    model = GPT(cfg).to(DEVICE)
    nh, hs = cfg.n_head, cfg.head_size

    def model_step(backend: str, T: int):
        def run():
            x, y = batch(1, T)
            with model.attention_backend(backend):
                _, loss = model(x, y)
            loss.backward()
            model.zero_grad(set_to_none=True)
        return run

    def attention_step(backend: str, T: int):
        def run():
            q, k, v = (torch.randn(1, nh, T, hs, device=DEVICE, requires_grad=True) for _ in range(3))
            BACKENDS.get(backend)(q, k, v, tile=cfg.attn_tile).sum().backward()
        return run

    fmt = lambda m: m if isinstance(m, str) else f"{m:,.0f}"  # noqa: E731
    ratio = lambda a, b: "-" if isinstance(a, str) or isinstance(b, str) else f"{a / max(b, 1e-9):.1f}x"  # noqa: E731
    rows = []
    for T in lengths:
        mn, mt = peak_mib(model_step("naive", T)), peak_mib(model_step("tiled", T))
        an, at = peak_mib(attention_step("naive", T)), peak_mib(attention_step("tiled", T))
        rows.append([str(T), fmt(mn), fmt(mt), ratio(mn, mt), fmt(an), fmt(at), ratio(an, at)])
    return rows



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32, help="batch size of the speed runs")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per speed cell")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--lengths", type=int, nargs="+", default=LENGTHS)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--dry-run-on-cpu", action="store_true",
                    help="run the agreement and speed code on the CPU (slow; tests this script)")
    args = ap.parse_args()

    global DEVICE
    if args.dry_run_on_cpu:
        DEVICE, args.skip_memory = "cpu", True  # memory figures come from the CUDA allocator
    elif not torch.cuda.is_available():
        print("no CUDA device; nothing to check")
        return
    torch.set_float32_matmul_precision("highest")  # no TF32: fp32 means fp32 here
    t_start = time.perf_counter()
    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU DRY RUN"
    print(f"machine: {gpu}, {platform.platform()}; torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}; git {short_commit()}\n")

    rows, ok = agreement()
    print(f"### Agreement with a float64 naive reference (fp32, B=4 x context_length; "
          f"pass: logits <= {LOGIT_TOL:g}, grads <= {GRAD_TOL:g} of each grad's max)\n")
    print(markdown(["preset", "pos", "backend", "max abs diff logits", "max rel diff grads", ""], rows))
    print(f"\n{'PASS' if ok else 'FAIL'}: backends agree\n", flush=True)

    if not args.skip_speed:
        rows = speed(args.batch, args.warmup, args.steps)
        print(f"### Training tokens/s (learned positions, AdamW; {args.warmup} warm-up + {args.steps} "
              "timed steps)\n")
        print(markdown(["preset", "B x T", "backend", "fp32 tok/s", "bf16 autocast tok/s"], rows))
        print(flush=True)

    if not args.skip_memory:
        rows = memory(args.lengths)
        print("### Peak memory of forward + backward, MiB above the resting allocation "
              "(tiny, rope, fp32, B=1; attention alone: 4 heads x 32)\n")
        print(markdown(["T", "model naive", "model tiled", "naive / tiled",
                        "attn naive", "attn tiled", "naive / tiled"], rows))
    print(f"\ntotal {time.perf_counter() - t_start:.0f}s")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
