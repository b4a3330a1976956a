"""`imo doctor`: what this machine is (CPU model, flags, threads, torch build) and how fast it
multiplies matrices, per dtype: the peak FLOP/s that training's MFU is measured against.

Two peaks per dtype: the best of large square matmuls (what the hardware can do), and the
throughput at a model's own weight-matmul shapes (imo.train.flops.step_matmuls: forward, input
gradient and weight gradient of every linear layer at B*T rows), which is the fair ceiling for a
small model whose matmuls are too thin to reach the square peak. Both are cached per machine,
torch version and thread count (in the cache dir beside prepared corpora), so training runs look
them up instead of measuring.

    imo doctor --preset tiny --preset small
"""

import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import torch
import typer

from imo import atomic, paths
from imo.model.config import ModelConfig
from imo.train.flops import step_matmuls
from imo.train.precision import cpu_flags, hardware_bf16, native_bf16

# flags that decide matmul speed (x86 and Arm names); the rest of /proc/cpuinfo is noise here
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
         "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "bf16", "i8mm")
SQUARE = (512, 1024, 2048)
CACHE_VERSION = 2  # 2: shapes timed in autograd's layouts


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def machine() -> dict[str, object]:
    """The facts a benchmark row needs (CPU model, flags, threads, torch build)."""
    cfg = torch.__config__.show()
    blas = next((p.split("=", 1)[1] for p in cfg.replace(",", " ").split() if p.startswith("BLAS_INFO=")), "?")
    return {
        "cpu": cpu_model(),
        "flags": [f for f in FLAGS if f in cpu_flags()],
        "cores": usable_cores(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "bf16": {"cpu": hardware_bf16("cpu"), "cuda": hardware_bf16("cuda")},
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_matmul(m: int, k: int, n: int, dtype: torch.dtype, device: str, budget_s: float,
                 ta: bool = False, tb: bool = False) -> float:
    """Best seconds of one (m, k) @ (k, n) matmul over repeats filling about budget_s; ta/tb: the
    operand is a transposed view (as autograd hands them to the BLAS)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(k, m, generator=g).to(device, dtype).t() if ta else torch.randn(m, k, generator=g).to(device, dtype)
    b = torch.randn(n, k, generator=g).to(device, dtype).t() if tb else torch.randn(k, n, generator=g).to(device, dtype)
    out = torch.empty(m, n, dtype=dtype, device=device)
    torch.matmul(a, b, out=out)  # warm-up: first call picks kernels / packs
    _sync(device)
    best, spent, reps = float("inf"), 0.0, 0
    while reps < 5 or (spent < budget_s and reps < 200):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        _sync(device)
        dt = time.perf_counter() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return best


def square_peak(dtype: torch.dtype, device: str = "cpu", budget_s: float = 0.3) -> float:
    """FLOP/s of the fastest square matmul among SQUARE sizes."""
    return max(2 * s**3 / _time_matmul(s, s, s, dtype, device, budget_s) for s in SQUARE)


def shapes_peak(shapes: list[tuple[int, int, int, bool, bool]], dtype: torch.dtype, device: str = "cpu",
                budget_s: float = 0.1) -> float:
    """FLOP/s over a step's matmuls: total FLOPs / total best time (each distinct shape timed once)."""
    flops = seconds = 0.0
    for (m, k, n, ta, tb), count in Counter(shapes).items():
        flops += count * 2 * m * k * n
        seconds += count * _time_matmul(m, k, n, dtype, device, budget_s, ta, tb)
    return flops / seconds


def cache_file() -> Path:
    return paths.corpus_cache_dir().parent / "peak_flops.json"


def _key(dtype: str, device: str, what: str) -> str:
    where = torch.cuda.get_device_name(0) if device.startswith("cuda") else cpu_model()
    return f"v{CACHE_VERSION}|{where}|torch {torch.__version__}|threads {torch.get_num_threads()}|{dtype}|{what}"


def _load() -> dict[str, float]:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _store(key: str, value: float) -> None:
    cached = _load()  # re-read: another process may have added entries meanwhile
    cached[key] = value
    cache_file().parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(cache_file(), json.dumps(cached, indent=1, sort_keys=True))


def _shape_key(cfg: ModelConfig, tokens: int) -> str:
    return f"C{cfg.n_embd} V{cfg.vocab_size} L{cfg.n_layer} F{cfg.n_future} M{tokens}"


def peak(dtype: str, device: str = "cpu", cfg: ModelConfig | None = None, tokens: int | None = None,
         refresh: bool = False) -> float:
    """Peak matmul FLOP/s for `dtype` ('float32' | 'bfloat16'): at the model's shapes when cfg and
    tokens (B*T per micro-batch) are given, else the square peak. Cached; measured when missing."""
    what = "square" if cfg is None else _shape_key(cfg, tokens)
    key = _key(dtype, device, what)
    if not refresh and key in (cached := _load()):
        return cached[key]
    tdtype = getattr(torch, dtype)
    value = square_peak(tdtype, device) if cfg is None else shapes_peak(step_matmuls(cfg, tokens), tdtype, device)
    _store(key, value)
    return value


def doctor_command(
    preset: Annotated[list[str] | None, typer.Option(
        help="Also measure the peak at this preset's matmul shapes (repeatable). [default: tiny, small]")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per step for the shape peaks (B of B*T).")] = 16,
    threads: Annotated[int | None, typer.Option(help="torch threads to measure with. [default: torch's]")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    refresh: Annotated[bool, typer.Option("--refresh", help="Measure again instead of using the cache.")] = False,
) -> None:
    """This machine's CPU, flags, threads and torch build, and its peak matmul FLOP/s per dtype
    (square, and at the presets' own shapes); the peaks are cached for training's MFU."""
    from imo.errors import ConfigError

    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    if batch_size < 1:
        raise ConfigError(f"batch-size must be >= 1, got {batch_size}")
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise ConfigError(f"device {device!r} is not available here; choose cpu"
                          + (" or cuda" if torch.cuda.is_available() else ""))
    presets = preset or ["tiny", "small"]
    cfgs = {p: ModelConfig.preset(p) for p in presets}  # unknown names refused before measuring
    m = machine()
    print(f"cpu        {m['cpu']} ({m['cores']} usable cores)")
    print(f"flags      {' '.join(m['flags']) or '-'}")
    print(f"torch      {m['torch']}  capability {m['capability']}  BLAS {m['blas']}  "
          f"mkldnn {'yes' if m['mkldnn'] else 'no'}  cuda {m['cuda'] or 'no'}")
    print(f"threads    {m['threads']} torch threads")
    bf16 = native_bf16(device)
    print(f"bf16       {'native' if hardware_bf16(device) else 'not native'} on {device}"
          + ("" if bf16 == hardware_bf16(device) else f" (IMO_BF16 makes it {'native' if bf16 else 'not native'})")
          + f"; --dtype auto trains in {'bfloat16 (mixed)' if bf16 else 'float32'}")
    dtypes = ["float32"] + (["bfloat16"] if bf16 else [])
    print(f"cache      {cache_file()}")
    print(f"{'peak matmul GFLOP/s':<34}" + "".join(f"{d:>12}" for d in dtypes))
    rows = [("square (best of 512..2048)", None, None)]
    rows += [(f"{p} at its shapes ({batch_size} x {c.context_length} rows)", c, batch_size * c.context_length)
             for p, c in cfgs.items()]
    for label, cfg, tokens in rows:
        vals = [peak(d, device, cfg, tokens, refresh=refresh) / 1e9 for d in dtypes]
        print(f"{label:<34}" + "".join(f"{v:>12,.0f}" for v in vals), flush=True)


def default_threads() -> int:
    """torch threads for training when neither --threads nor OMP_NUM_THREADS says: one on a
    machine of two cores or fewer (two OpenMP threads on a busy 2-core machine wait at every
    barrier for a descheduled thread: measured 4x slower than one, benchmarks/RESULTS.md),
    otherwise every usable core."""
    cores = usable_cores()
    return 1 if cores <= 2 else cores


def run_mfu(cfg: ModelConfig, tokens_per_s: float, dtype: str, device: str, tokens: int,
            measure: bool = True) -> tuple[float, float] | None:
    """(MFU, peak FLOP/s) of a training run against the peak at its own matmul shapes (`tokens`
    rows per micro-batch); None when the peak is not cached and `measure` is False."""
    from imo.train.flops import mfu

    key = _key(dtype, device, _shape_key(cfg, tokens))
    if not measure and key not in _load():
        return None
    p = peak(dtype, device, cfg, tokens)
    return mfu(tokens_per_s, cfg, p), p
