"""Peak memory of one attention forward + backward, one (backend, length) point per fresh process.

Each point runs in a new Python process (`python -m imo.exams.memory BACKEND T`), so that one
measurement's allocations cannot hide in another's peak. The child builds q, k, v of the `tiny`
preset's attention shape (B=1, 4 heads, head size 32, fp32), runs a warm-up at T // 8 (so that
first-use costs, such as kernel code paged in and the thread pool, are not counted), resets the
kernel's peak-RSS mark (`/proc/self/clear_refs`), runs forward + `.sum().backward()` and reports
the growth of the peak (`VmHWM`) over the resident size before: the peak extra resident memory
attention needed. glibc's malloc is pinned to its static mmap threshold (128 KiB) in the child, so
large freed buffers go back to the system instead of staying resident, and the high-water mark is
that of live memory. The backends are imo's registered ones (imo.model.attention): `naive`
materialises the (T, T) scores, `tiled` does not.

Why not `ru_maxrss`: Linux carries the parent's peak RSS into a child across fork + exec, so a
child of a large process (a claim runner that has trained models) reports no growth at all below
the parent's peak. It is only the fallback where /proc is missing.

    peak_mib("tiled", 4096)                     # one point, in a child process -> MiB
    python -m imo.exams.memory tiled 4096      # the child: prints one JSON line
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

B, N_HEAD, HEAD_SIZE = 1, 4, 32  # the `tiny` preset's attention: width 128, 4 heads
TILE = 64
THREADS = 2


def maxrss_mib() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes; this measurement targets Linux)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise OSError(f"no {key} in /proc/self/status")


def reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where Linux can't."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_mib("VmHWM")
        return True
    except OSError:
        return False


def measure_here(backend: str, T: int, tile: int = TILE, threads: int = THREADS,
                 seed: int = 0) -> dict:
    """In this process: peak RSS growth (MiB) and seconds of forward + backward at length T.
    Meaningful only in a fresh process (see run_point)."""
    import torch

    from imo.model.attention import BACKENDS

    torch.set_num_threads(threads)
    fn = BACKENDS.get(backend)

    def step(n: int, gen: torch.Generator) -> float:
        q, k, v = (torch.randn(B, N_HEAD, n, HEAD_SIZE, generator=gen).requires_grad_() for _ in range(3))
        t0 = time.perf_counter()
        fn(q, k, v, tile=tile).sum().backward()
        return time.perf_counter() - t0

    gen = torch.Generator().manual_seed(seed)
    step(max(8, T // 8), gen)  # warm-up: first-use costs are not attention's memory
    q, k, v = (torch.randn(B, N_HEAD, T, HEAD_SIZE, generator=gen).requires_grad_() for _ in range(3))
    hwm = reset_peak()
    baseline = _status_mib("VmRSS") if hwm else maxrss_mib()
    t0 = time.perf_counter()
    fn(q, k, v, tile=tile).sum().backward()
    seconds = time.perf_counter() - t0
    peak = (_status_mib("VmHWM") if hwm else maxrss_mib()) - baseline
    return {"backend": backend, "T": T, "peak_mib": peak, "seconds": seconds,
            "method": "VmHWM" if hwm else "ru_maxrss"}


def run_point(backend: str, T: int, tile: int = TILE, threads: int = THREADS,
              seed: int = 0, timeout: float | None = 600) -> dict:
    """One point in a fresh process: {"backend", "T", "peak_mib", "seconds"}."""
    src = str(Path(__file__).resolve().parents[2])  # the child imports this very imo
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
           "MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "imo.exams.memory", backend, str(T), "--tile", str(tile),
           "--threads", str(threads), "--seed", str(seed)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"memory measurement {backend} T={T} failed (exit {res.returncode}): "
                           f"{res.stderr.strip().splitlines()[-1:] or ['no output']}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def peak_mib(backend: str, T: int, **kw) -> float:
    """Peak extra resident memory (MiB) of one forward + backward at length T, in a fresh process."""
    return run_point(backend, T, **kw)["peak_mib"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="one attention memory point (prints one JSON line)")
    ap.add_argument("backend")
    ap.add_argument("T", type=int)
    ap.add_argument("--tile", type=int, default=TILE, help="key/value tile of the tiled backend")
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(measure_here(args.backend, args.T, args.tile, args.threads, args.seed)))


if __name__ == "__main__":
    main()
