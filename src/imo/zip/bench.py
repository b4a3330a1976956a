"""`imo zip --bench`: imo zip beside the classic compressors on the same files, in one run.

Baselines: every compressor of `imo.baselines` (gzip -9, bzip2 -9, xz -9e, zstd -19, brotli 11,
PPMd H through pyppmd; zpaq -m5 and 7-Zip's PPMd where those programs are installed), each
decompressed and checked. imo's
rows are its four predictors: the integer cm coder (a row per level: fast, full, max), context
statistics alone, the online network alone, and the mix.
Speeds are KB/s of original bytes (1 KB = 1000 bytes), single-threaded, from wall time on whatever
load the machine has and from the process's CPU time (what an otherwise idle core would give, up to
cache sharing): compare ratios measured in the same run, not absolute figures.

    rows = bench_files([Path("alice29.txt")], predictors=("stats", "net", "mix"))
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imo.baselines import COMPRESSORS, get
from imo.zip.codec import compress_bytes, decompress_bytes
from imo.zip.predictor import Predictor
from imo.zip.settings import ZipSettings

# the rows, by label, from the one table in imo.baselines; external programs (zpaq, 7zz) are
# skipped where they are not installed
BASELINES = tuple(c.label for c in COMPRESSORS.values())


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


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the external archivers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Timer:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Timer:
        self.w, self.c = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w, _cpu() - self.c


def bench_baseline(name: str, data: bytes, file: str = "") -> BenchRow:
    c = get(name)
    comp, decomp = c.compress, c.decompress
    with Timer() as tc:
        blob = comp(data)
    with Timer() as td:
        back = decomp(blob)
    if back != data:
        raise RuntimeError(f"{name} did not round-trip {file}")
    return BenchRow(file, name, len(data), len(blob), tc.wall, td.wall, None, tc.cpu, td.cpu)


def bench_imo(data: bytes, settings: ZipSettings, file: str = "") -> BenchRow:
    """imo zip's row for one online predictor."""
    with Timer() as tc:
        blob = compress_bytes(data, settings)
    with Timer() as td:
        back = decompress_bytes(blob)
    if back != data:
        raise RuntimeError(f"imo zip ({settings.predictor}) did not round-trip {file}")
    flops = None if settings.predictor == "cm" else Predictor(settings).flops_per_byte()  # cm: integer ops
    return BenchRow(file, tool_name(settings), len(data), len(blob), tc.wall, td.wall, flops, tc.cpu, td.cpu)


def bench_lm(data: bytes, model: dict, lm_settings, file: str = "") -> BenchRow:
    """Pretrained mode's row (imo.zip.lm): `model_bytes` is set, so the size shows with and
    without the model; FLOPs/byte: 2 x parameters per token over the bytes per token."""
    import io

    from imo.zip import container as C
    from imo.zip.lm import compress_lm, decompress_lm

    out, back = io.BytesIO(), io.BytesIO()
    with Timer() as tc:
        st = compress_lm(io.BytesIO(data), out, model, lm_settings)
    with Timer() as td:
        src = io.BytesIO(out.getvalue())
        decompress_lm(src, back, C.read_header(src))
    if back.getvalue() != data:
        raise RuntimeError(f"imo zip pretrained did not round-trip {file}")
    flops = 2 * st.parameters * st.tokens / max(len(data), 1)
    return BenchRow(file, "imo pretrained (KV cache)", len(data), st.compressed, tc.wall, td.wall, flops,
                    tc.cpu, td.cpu, model_bytes=model["model_bytes"])


def tool_name(settings: ZipSettings) -> str:
    """A row's label: "imo stats", or for cm its model by level ("imo cm fast" is --level 1)."""
    if settings.predictor == "cm":
        return f"imo cm {settings.cm_model} (level {settings.level})"
    return f"imo {settings.predictor}"


def bench_files(files: Sequence[Path], predictors: Sequence[str] = ("cm", "stats", "net", "mix"), level: int = 2,
                baselines: Sequence[str] = BASELINES, log: Callable[[str], None] | None = None,
                model: dict | None = None, cm_levels: Sequence[int] = (1, 2, 3),
                lm_settings=None) -> list[BenchRow]:
    """Rows for every file: the baselines, imo's predictors (cm at each of `cm_levels`, the
    others at `level`), and with `model` (imo.zip.lm.model_info) imo's pretrained mode."""
    rows: list[BenchRow] = []
    for path in files:
        data = path.read_bytes()
        for name in baselines:
            if not get(name).available():
                continue
            rows.append(bench_baseline(name, data, path.name))
            if log:
                log("\t".join(rows[-1].cells()))
        imo_rows = [(lv, "cm") for lv in cm_levels] if "cm" in predictors else []
        imo_rows += [(level, p) for p in predictors if p != "cm"]
        for lv, pred in imo_rows:
            rows.append(bench_imo(data, ZipSettings.build(level=lv, predictor=pred), path.name))
            if log:
                log("\t".join(rows[-1].cells()))
        if model is not None:
            from imo.zip.lm import LMSettings

            rows.append(bench_lm(data, model, lm_settings or LMSettings(), path.name))
            if log:
                log("\t".join(rows[-1].cells()))
    return rows
