"""Where `imo zip`'s cm predictor spends its time: µs per byte by component, and start-up.

The kernel (imo.zip.cm) is one compiled loop, so its parts are timed by difference between its
three models, which differ only in what they switch on:

* fast (level 1): order 0, orders 1-4 and 6, the word context, the match model, one mixer, one SSE;
* full (level 2) adds orders 5 and 8, the two-word context, the second mixer and the second SSE;
* max (level 3) adds four mixers and the second mixing layer, its mixers learn at 2^-10 instead of
  2^-12, and its tables have 2^23 slots instead of 2^22; the full model at 2^23 and ONE_LAYER (the
  full model at max's rate) are timed too, to separate the three.

Outside the kernel: the SHA-256 of the original (the trailer), and start-up: the interpreter and
imo's imports, numba loading its cached machine code, the tables' allocation, the fingerprint.
CPU time of this process (one thread); the machine may be shared, so compare rows of one run.

    python benchmarks/zip_profile.py [FILE]          # default ../shared/data/alice29.txt
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def cpu() -> float:
    return time.process_time()


def timed(fn, repeats: int = 1) -> float:
    """Least CPU seconds of `repeats` calls."""
    best = float("inf")
    for _ in range(repeats):
        t = cpu()
        fn()
        best = min(best, cpu() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "alice29.txt")
    args = ap.parse_args()
    if not args.file.is_file():
        print(f"zip_profile.py: no such file: {args.file}", file=sys.stderr)
        return 2
    data = args.file.read_bytes()
    n = len(data)
    print(f"{args.file.name}, {n:,} bytes; load average {os.getloadavg()[0]:.1f}; CPU time, one thread")

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    startup = {}
    for what, code in [("import", "import imo.zip.codec"),
                       ("kernel", "import imo.zip.codec; from imo.zip import cm; cm.encode(cm.State.new(12), b'x')")]:
        before = os.times()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        after = os.times()
        startup[what] = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    from imo.zip import cm
    from imo.zip.codec import _cm_fingerprint

    cm.encode(cm.State.new(12), b"warm")  # compiled or loaded from numba's cache here
    print("| start-up part | CPU ms |")
    print("|:--|--:|")
    print(f"| python + import imo.zip.codec (a fresh process) | {1e3 * startup['import']:.0f} |")
    print(f"| numba loading the cached kernel (a fresh process, minus the line above) | "
          f"{1e3 * (startup['kernel'] - startup['import']):.0f} |")
    for model, bits in (("fast", 20), ("full", 22), ("max", 23)):
        print(f"| tables of the {model} model (2^{bits} slots x 9) | {1e3 * timed(lambda b=bits, m=model: cm.State.new(b, cm.MODELS[m]), 2):.0f} |")
    t = cpu()
    for m in cm.MODELS:
        _cm_fingerprint(m)
    print(f"| the fingerprints (three models, 2 KB probe each) | {1e3 * (cpu() - t):.0f} |")

    per = {}
    ids = {**cm.MODELS, "full23": cm.MODELS["full"], "one-layer": cm.ONE_LAYER}
    for model, bits in (("fast", 20), ("full", 22), ("full23", 23), ("one-layer", 23), ("max", 23)):
        state = cm.State.new(bits, ids[model])
        t = cpu()
        payload = cm.encode(state, data)
        enc = cpu() - t
        state = cm.State.new(bits, ids[model])
        t = cpu()
        assert cm.decode(state, payload, n) == data
        per[model] = (enc / n * 1e6, (cpu() - t) / n * 1e6, 8 * len(payload) / n)
    sha = timed(lambda: hashlib.sha256(data).digest(), 3) / n * 1e6
    print()
    print("| component | µs/byte encode | µs/byte decode | bits/byte change |")
    print("|:--|--:|--:|--:|")
    print(f"| fast model: 6 hashed contexts, order 0, match, one mixer, one SSE, the coder | "
          f"{per['fast'][0]:.2f} | {per['fast'][1]:.2f} | ({per['fast'][2]:.4f}) |")
    print(f"| + orders 5 and 8, two-word context, second mixer and SSE (full = fast + this) | "
          f"{per['full'][0] - per['fast'][0]:.2f} | {per['full'][1] - per['fast'][1]:.2f} | {per['full'][2] - per['fast'][2]:+.4f} |")
    print(f"| + 2^23 slots instead of 2^22 (the full model) | "
          f"{per['full23'][0] - per['full'][0]:.2f} | {per['full23'][1] - per['full'][1]:.2f} | {per['full23'][2] - per['full'][2]:+.4f} |")
    print(f"| + the mixers' rate 2^-10 instead of 2^-12 (ONE_LAYER: statistics, one mixing layer) | "
          f"{per['one-layer'][0] - per['full23'][0]:.2f} | {per['one-layer'][1] - per['full23'][1]:.2f} | {per['one-layer'][2] - per['full23'][2]:+.4f} |")
    print(f"| + four mixers and the second mixing layer (the network; max = ONE_LAYER + this) | "
          f"{per['max'][0] - per['one-layer'][0]:.2f} | {per['max'][1] - per['one-layer'][1]:.2f} | {per['max'][2] - per['one-layer'][2]:+.4f} |")
    print(f"| SHA-256 of the original (trailer) | {sha:.3f} | {sha:.3f} | |")
    for model in ("fast", "full", "max"):
        print(f"| total kernel, {model} | {per[model][0]:.2f} ({1 / per[model][0] * 1e3:,.0f} KB/s) | "
              f"{per[model][1]:.2f} ({1 / per[model][1] * 1e3:,.0f} KB/s) | {per[model][2]:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
