"""Peak memory of one attention forward + backward: `tiled` (imo.model.tiled) against imo's
`naive` backend, which materialises the (T, T) score matrix.

Each (backend, length) point runs in a fresh subprocess (imo.exams.memory) so that one
measurement's allocations cannot hide in another's peak. (The `tiled-attention` claim now times
speed; "tiled attention is exact, in linear memory" is a verified property, decided by tests.) The child builds q, k, v of the `tiny` preset's attention shape (B=1, 4 heads, head size 32,
fp32), warms up at T // 8, resets the peak-RSS mark, runs forward + `.sum().backward()` and reports
the growth of the peak (`VmHWM`): the peak extra resident memory attention needed. (`ru_maxrss`,
used before, carries the parent's peak into the child and hid growth below it.)

Targets: tiled grows linearly (tiled at 8k / tiled at 4k <= 2.5) and at 4k uses at most 1/4 of
naive's memory.

    python benchmarks/attention_memory.py              # table + verdict
    python benchmarks/attention_memory.py --markdown   # rows for benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    from imo.exams import memory
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
    from imo.exams import memory
from imo.runs.store import short_commit  # noqa: E402

LENGTHS = [1024, 2048, 4096, 8192]
B, N_HEAD, HEAD_SIZE = memory.B, memory.N_HEAD, memory.HEAD_SIZE
TILE = memory.TILE
THREADS = memory.THREADS


def run_child(backend: str, T: int) -> dict:
    return memory.run_point(backend, T, tile=TILE, threads=THREADS)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=2, metavar=("BACKEND", "T"), help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true", help="print the rows as a Markdown table")
    ap.add_argument("--lengths", type=int, nargs="+", default=LENGTHS)
    args = ap.parse_args()

    if args.one:  # child mode: one measurement, one JSON line on stdout
        backend, T = args.one
        if backend not in ("naive", "tiled"):
            ap.error(f"unknown backend {backend!r}")
        print(json.dumps(memory.measure_here(backend, int(T), TILE, THREADS)))
        return

    import torch

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; torch {torch.__version__}, {THREADS} threads; git {short_commit()}")
    print(f"shape: B={B}, heads={N_HEAD}, head size={HEAD_SIZE}, fp32, tiled block={TILE}; "
          "peak = peak-RSS growth (VmHWM) over forward + backward, fresh process per point")

    rows = []
    for T in args.lengths:
        naive, tiled = run_child("naive", T), run_child("tiled", T)
        rows.append((T, naive, tiled))
        if not args.markdown:
            print(f"  T={T:>5}: naive {naive['peak_mib']:8.1f} MiB ({naive['seconds']:.2f}s)  "
                  f"tiled {tiled['peak_mib']:7.1f} MiB ({tiled['seconds']:.2f}s)", flush=True)

    # Seconds stay out of the table: one unrepeated run is too noisy to record as a result.
    header = ["T", "naive MiB", "tiled MiB", "naive / tiled"]
    lines = [[str(T), f"{n['peak_mib']:.1f}", f"{t['peak_mib']:.1f}",
              f"{n['peak_mib'] / max(t['peak_mib'], 1e-9):.1f}x"] for T, n, t in rows]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---:" for _ in header) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        for line in lines:
            print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))

    by_T = {T: (n["peak_mib"], t["peak_mib"]) for T, n, t in rows}
    verdicts = []
    if 4096 in by_T and 8192 in by_T:
        growth = by_T[8192][1] / max(by_T[4096][1], 1e-9)
        verdicts.append((f"tiled 8k/4k = {growth:.2f} (target <= 2.5, linear)", growth <= 2.5))
    if 4096 in by_T:
        frac = by_T[4096][1] / max(by_T[4096][0], 1e-9)
        verdicts.append((f"tiled/naive at 4k = {frac:.3f} (target <= 0.25)", frac <= 0.25))
    if verdicts:
        ok = all(passed for _, passed in verdicts)
        print(("PASS" if ok else "FAIL") + ": " + "; ".join(
            f"{text} {'ok' if passed else 'MISSED'}" for text, passed in verdicts))


if __name__ == "__main__":
    main()
