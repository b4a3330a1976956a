"""`imo zip` beside gzip -9, bzip2 -9, xz -9e, zstd -19, brotli 11, PPMd, zpaq -m5 and 7-Zip's PPMd.

For every file: the classic compressors (the table in imo.baselines; zpaq and 7zz rows only where
those programs are installed: `apt-get install zpaq 7zip`), then imo's predictors (cm, the integer
coder, at each of --cm-levels; context statistics alone, the online network alone, the mix), each
compressed, decompressed and checked. --processes also times `imo zip FILE --level L` and
`imo unzip` as a user runs them: fresh processes, start-up included (CPU time of the child).
Columns: bytes, bits/byte, compress and decompress KB/s (1 KB = 1000 bytes, one thread), µs per
byte and FLOPs per byte (imo's model arithmetic, estimated from its shapes). Speeds are measured in
the same run as xz -9e's, and the ratio to xz is printed too: the machine is shared and noisy.

Targets (issues 4 and 16): imo (default predictor) smaller than xz -9e, bzip2 -9, PPMd and
zpaq -m5 on every file; at least 10 KB/s compressing and decompressing.

    python benchmarks/compression.py                       # the five texts in ../shared/data
    python benchmarks/compression.py --markdown FILES...   # rows for benchmarks/RESULTS.md
    python benchmarks/compression.py --predictors cm --processes --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
try:
    from imo.zip import bench
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
    from imo.zip import bench
from imo.runs.store import short_commit  # noqa: E402

TEXTS = ["alice29.txt", "asyoulik.txt", "lcet10.txt", "plrabn12.txt", "tinyshakespeare.txt"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="files to measure [default: the five texts]")
    ap.add_argument("--predictors", default="cm,stats,net,mix", help="imo rows, comma-separated")
    ap.add_argument("--level", type=int, default=2, help="level of the float predictors")
    ap.add_argument("--cm-levels", default="1,2,3", help="levels of the cm rows, comma-separated")
    ap.add_argument("--processes", action="store_true",
                    help="also time imo zip / imo unzip in fresh processes (start-up included)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = args.files or [ROOT.parent / "shared" / "data" / t for t in TEXTS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"compression.py: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"torch {torch.__version__}, 1 thread; git {short_commit()}; load average at start {load:.1f}")
    t0 = time.time()
    cm_levels = [int(x) for x in args.cm_levels.split(",")]
    rows = bench.bench_files(files, predictors=args.predictors.split(","), level=args.level, cm_levels=cm_levels,
                             log=lambda line: print("  " + line, file=sys.stderr, flush=True))
    print(f"measured in {time.time() - t0:.0f} s; load average at end {os.getloadavg()[0]:.1f}")
    columns = bench.COLUMNS + ["wall speed / xz -9e's (c, d)", "wall speed / zpaq -m5's (c, d)"]
    table = []
    for r in rows:
        ratios = []
        for ref in ("xz -9e", "zpaq -m5"):
            x = next((x for x in rows if x.file == r.file and x.tool == ref), None)
            ratios.append("" if x is None else f"{x.compress_s / r.compress_s:.4f}, {x.decompress_s / r.decompress_s:.4f}")
        table.append(r.cells() + ratios)
    if args.markdown:
        print("| " + " | ".join(columns) + " |")
        print("|:--|:--|" + "|".join("--:" for _ in columns[2:]) + "|")
        for line in table:
            print("| " + " | ".join(line) + " |")
    else:
        for line in [columns, *table]:
            print("\t".join(line))
    if args.json:
        args.json.write_text(json.dumps([{**r.__dict__, "bpb": r.bpb} for r in rows], indent=1))
    for tool in dict.fromkeys(r.tool for r in rows if r.tool.startswith("imo ")):
        print(verdict(rows, tool))
    if args.processes:
        print(fresh_processes(files, cm_levels, rows))
    return 0


def _child_run(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one imo command in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "imo", *args], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fresh_processes(files: list[Path], levels: list[int], rows: list[bench.BenchRow]) -> str:
    """`imo zip FILE --level L` then `imo unzip` as a user runs them, each a fresh process; the
    output is compared with the original. KB/s of CPU time and of wall time, start-up included;
    beside them zpaq -m5's CPU KB/s from the same run, where it was measured, and zpaq's CPU time over
    this level's (above 1: this level is faster than zpaq)."""
    lines = ["| file | level | bits/byte | compress KB/s CPU (wall) | decompress KB/s CPU (wall) | zpaq -m5 KB/s CPU (c, d) "
             "| zpaq CPU time / level's (c, d) |",
             "|:--|--:|--:|--:|--:|--:|--:|"]
    zpaq = {r.file: r for r in rows if r.tool == "zpaq -m5"}
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            data = f.read_bytes()
            for lv in levels:
                packed, back = Path(tmp) / f"{f.name}.imz", Path(tmp) / f"{f.name}.out"
                cw, cc = _child_run(["zip", str(f), "-o", str(packed), "--level", str(lv), "-q", "--force"])
                dw, dc = _child_run(["unzip", str(packed), "-o", str(back), "-q", "--force"])
                if back.read_bytes() != data:
                    raise RuntimeError(f"imo zip --level {lv} did not round-trip {f.name}")
                n = len(data) / 1e3
                z = zpaq.get(f.name)
                zs = "" if z is None else f"{z.kbps(z.compress_cpu_s):,.0f}, {z.kbps(z.decompress_cpu_s):,.0f}"
                zr = "" if z is None else f"{z.compress_cpu_s / cc:.2f}, {z.decompress_cpu_s / dc:.2f}"
                lines.append(f"| {f.name} | {lv} | {8 * packed.stat().st_size / len(data):.3f} | "
                             f"{n / cc:,.1f} ({n / cw:,.1f}) | {n / dc:,.1f} ({n / dw:,.1f}) | {zs} | {zr} |")
    return "\n".join(lines)


def verdict(rows: list[bench.BenchRow], tool: str) -> str:
    """The issue's targets for one imo row, with the gaps."""
    lines = []
    by = {(r.file, r.tool): r for r in rows}
    files = sorted({r.file for r in rows}, key=[r.file for r in rows].index)
    for ref in ("bzip2 -9", "xz -9e", "PPMd H o6 16MB", "7z PPMd o16 256MB", "zpaq -m5"):
        gaps = [by[f, tool].bpb - by[f, ref].bpb for f in files if (f, ref) in by and (f, tool) in by]
        if not gaps:  # an external program that is not installed here
            lines.append(f"{tool} against {ref}: no rows (not installed)")
            continue
        ok = all(g < 0 for g in gaps)
        lines.append(f"{tool} smaller than {ref} on every file: {'MET' if ok else 'NOT MET'} "
                     f"(bits/byte difference {', '.join(f'{g:+.3f}' for g in gaps)})")
    ours = [by[f, tool] for f in files if (f, tool) in by]
    for what, c, d in (("wall", "compress_s", "decompress_s"), ("CPU", "compress_cpu_s", "decompress_cpu_s")):
        cmin = min(r.kbps(getattr(r, c)) for r in ours)
        dmin = min(r.kbps(getattr(r, d)) for r in ours)
        lines.append(f"{tool} >= 10 KB/s ({what} time): compress min {cmin:.1f}, decompress min {dmin:.1f} KB/s: "
                     f"{'MET' if min(cmin, dmin) >= 10 else 'NOT MET'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
