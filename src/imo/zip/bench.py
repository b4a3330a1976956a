"""`imo zip --bench`: imo zip beside the classic compressors on the same files, in one run.

Baselines (all through their Python packages, each decompressed and checked): gzip -9, bzip2 -9,
xz -9e (the standard library's zlib/bz2/lzma, the same as `imo.baselines`), zstd -19 (`zstandard`),
brotli 11 (`brotli`), PPMd variant H (7-Zip's PPMd7; `pyppmd`), order 6, 16 MB of memory. imo's
rows are its three predictors: context statistics alone, the online network alone, and the mix.
Speeds are KB/s of original bytes (1 KB = 1000 bytes), single-threaded, from wall time on whatever
load the machine has and from the process's CPU time (what an otherwise idle core would give, up to
cache sharing): compare ratios measured in the same run, not absolute figures.

    rows = bench_files([Path("alice29.txt")], predictors=("stats", "net", "mix"))
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imo.zip.codec import compress_bytes, decompress_bytes
from imo.zip.predictor import Predictor
from imo.zip.settings import ZipSettings


def _baselines() -> dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    import brotli
    import zstandard

    zc, zd = zstandard.ZstdCompressor(level=19), zstandard.ZstdDecompressor()
    return {
        "gzip -9": (lambda b: gzip.compress(b, compresslevel=9, mtime=0), gzip.decompress),
        "bzip2 -9": (lambda b: bz2.compress(b, compresslevel=9), bz2.decompress),
        "xz -9e": (lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
        "zstd -19": (zc.compress, lambda b: zd.decompress(b)),
        "brotli 11": (lambda b: brotli.compress(b, quality=11), brotli.decompress),
        "PPMd H o6 16MB": (_ppmd_compress, _ppmd_decompress),
    }


# 7-Zip's PPMd (variant H, Ppmd7) keeps the original length in the archive header; here it
# travels beside the stream (8 bytes, counted in the size).
def _ppmd_compress(data: bytes) -> bytes:
    import pyppmd

    enc = pyppmd.Ppmd7Encoder(6, 16 << 20)
    return len(data).to_bytes(8, "little") + enc.encode(data) + enc.flush()


def _ppmd_decompress(blob: bytes) -> bytes:
    import pyppmd

    n = int.from_bytes(blob[:8], "little")
    return pyppmd.Ppmd7Decoder(6, 16 << 20).decode(blob[8:], n)


BASELINES = ("gzip -9", "bzip2 -9", "xz -9e", "zstd -19", "brotli 11", "PPMd H o6 16MB")


@dataclass
class BenchRow:
    file: str
    tool: str
    original: int
    compressed: int
    compress_s: float
    decompress_s: float
    flops_per_byte: float | None = None
    compress_cpu_s: float = 0.0
    decompress_cpu_s: float = 0.0
    model_bytes: int = 0  # pretrained mode: the size of the model, not in `compressed`

    @property
    def bpb(self) -> float:
        return 8 * self.compressed / self.original if self.original else 0.0

    def kbps(self, seconds: float) -> float:
        return self.original / seconds / 1e3 if seconds > 0 else float("inf")

    def cells(self) -> list[str]:
        flops = "" if self.flops_per_byte is None else f"{self.flops_per_byte:.3g}"
        size = f"{self.compressed:,}" + (f" (+{self.model_bytes:,} model)" if self.model_bytes else "")
        bpb = f"{self.bpb:.3f}" + (f" ({8 * (self.compressed + self.model_bytes) / self.original:.3f})"
                                   if self.model_bytes else "")
        return [self.file, self.tool, size, bpb,
                f"{self.kbps(self.compress_s):,.1f}", f"{self.kbps(self.decompress_s):,.1f}",
                f"{self.kbps(self.compress_cpu_s):,.1f}", f"{self.kbps(self.decompress_cpu_s):,.1f}",
                f"{self.compress_s / max(self.original, 1) * 1e6:.2f}", flops]


COLUMNS = ["file", "tool", "bytes", "bits/byte", "compress KB/s", "decompress KB/s",
           "compress KB/s (CPU)", "decompress KB/s (CPU)", "µs/byte", "FLOPs/byte"]


class Timer:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Timer:
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def bench_baseline(name: str, data: bytes, file: str = "") -> BenchRow:
    comp, decomp = _baselines()[name]
    with Timer() as tc:
        blob = comp(data)
    with Timer() as td:
        back = decomp(blob)
    if back != data:
        raise RuntimeError(f"{name} did not round-trip {file}")
    return BenchRow(file, name, len(data), len(blob), tc.wall, td.wall, None, tc.cpu, td.cpu)


def bench_imo(data: bytes, settings: ZipSettings, file: str = "", model: dict | None = None) -> BenchRow:
    """imo zip's row; with `model` (pretrained mode) the tool name says so and `model_bytes` is set."""
    with Timer() as tc:
        blob = compress_bytes(data, settings, model)
    with Timer() as td:
        back = decompress_bytes(blob)
    if back != data:
        raise RuntimeError(f"imo zip ({settings.predictor}) did not round-trip {file}")
    if model is None:
        flops = Predictor(settings).flops_per_byte()
        return BenchRow(file, f"imo {settings.predictor}", len(data), len(blob), tc.wall, td.wall, flops, tc.cpu, td.cpu)
    from imo.zip.pretrained import load_pretrained

    net = load_pretrained(model, settings.streams, settings.net_window)
    flops = Predictor(settings, net=net).flops_per_byte()
    return BenchRow(file, f"imo pretrained {settings.predictor}", len(data), len(blob), tc.wall, td.wall, flops,
                    tc.cpu, td.cpu, model_bytes=model["model_bytes"])


def bench_files(files: Sequence[Path], predictors: Sequence[str] = ("stats", "net", "mix"), level: int = 2,
                baselines: Sequence[str] = BASELINES, log: Callable[[str], None] | None = None,
                model: dict | None = None) -> list[BenchRow]:
    """Rows for every file: the baselines, imo's predictors, and with `model` imo's pretrained
    mode (network alone and mixed with the statistics)."""
    rows: list[BenchRow] = []
    for path in files:
        data = path.read_bytes()
        for name in baselines:
            rows.append(bench_baseline(name, data, path.name))
        for pred in predictors:
            rows.append(bench_imo(data, ZipSettings.build(level=level, predictor=pred), path.name))
            if log:
                log("\t".join(rows[-1].cells()))
        for pred in ("net", "mix") if model is not None else ():
            rows.append(bench_imo(data, ZipSettings.build(level=level, predictor=pred), path.name, model))
            if log:
                log("\t".join(rows[-1].cells()))
    return rows
