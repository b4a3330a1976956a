"""Classic compressors as baselines: the one table the package uses (`imo zip --bench`, the
benchmarks, the claims, the exams), each with its settings, a compressor and a decompressor.

In-process (always present, or pulled in by imo's own dependencies): gzip -9, bzip2 -9, xz -9e
(the standard library), zstd -19 (`zstandard`), brotli 11 (`brotli`), PPMd variant H order 6 with
16 MB (`pyppmd`, 7-Zip's Ppmd7). External programs, used where installed and otherwise reported
absent (`available()`; pyppmd too, a dev/bench extra): `zpaq -m5` (Debian `zpaq`) and 7-Zip's PPMd order 16 with 256 MB
(Debian `7zip`, `7zz`); their sizes are whole archives, as a user would store them.

`conditional_bpb` is the fair comparison with a language model: the model has seen the training
text, so the compressor gets it too, as a prefix, and only the extra bytes count:
bits(train + held_out) - bits(train), per held-out byte.

    conditional_bpb("xz", train_bytes, val_bytes)
    COMPRESSORS["zpaq"].available() and COMPRESSORS["zpaq"].compress(data)
"""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import lzma
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imo.errors import ConfigError, DataError


@dataclass(frozen=True)
class Compressor:
    key: str  # short name: "xz"
    label: str  # with its settings, as tables show it: "xz -9e"
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]
    program: str | None = None  # an external executable it needs, if any
    module: str | None = None  # an optional Python package it needs, if any

    def available(self) -> bool:
        if self.module is not None and importlib.util.find_spec(self.module) is None:
            return False
        return self.program is None or shutil.which(self.program) is not None


def _zstd_compress(b: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19).compress(b)


def _zstd_decompress(b: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(b)


def _brotli(b: bytes, inverse: bool = False) -> bytes:
    import brotli

    return brotli.decompress(b) if inverse else brotli.compress(b, quality=11)


# pyppmd's raw Ppmd7 stream does not record the length (7-Zip keeps it in the archive header);
# here it travels in front of the stream: 8 bytes, counted in the size.
def _ppmd_compress(data: bytes) -> bytes:
    import pyppmd

    enc = pyppmd.Ppmd7Encoder(6, 16 << 20)
    return len(data).to_bytes(8, "little") + enc.encode(data) + enc.flush()


def _ppmd_decompress(blob: bytes) -> bytes:
    import pyppmd

    return pyppmd.Ppmd7Decoder(6, 16 << 20).decode(blob[8:], int.from_bytes(blob[:8], "little"))


def _external(pack: Callable[[Path, Path], list[str]], unpack: Callable[[Path, Path], list[str]],
              archive: str) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    """compress/decompress through an archiver run in a private temporary folder."""

    def run(cmd: list[str], where: str) -> None:
        done = subprocess.run(cmd, cwd=where, capture_output=True)
        if done.returncode != 0:
            raise DataError(f"{cmd[0]} failed (exit {done.returncode}): {done.stderr.decode(errors='replace')[-200:]}")

    def compress(data: bytes) -> bytes:
        with tempfile.TemporaryDirectory(prefix="imo-baseline-") as d:
            (Path(d) / "f").write_bytes(data)
            run(pack(Path(archive), Path("f")), d)
            return (Path(d) / archive).read_bytes()

    def decompress(blob: bytes) -> bytes:
        with tempfile.TemporaryDirectory(prefix="imo-baseline-") as d:
            (Path(d) / archive).write_bytes(blob)
            run(unpack(Path(archive), Path("out")), d)
            return (Path(d) / "out" / "f").read_bytes()

    return compress, decompress


_zpaq = _external(lambda a, f: ["zpaq", "a", str(a), str(f), "-m5"],
                  lambda a, out: ["zpaq", "x", str(a), "-to", str(out)], "f.zpaq")
_7z = _external(lambda a, f: ["7zz", "a", "-bd", "-m0=PPMd:mem=256m:o=16", str(a), str(f)],
                lambda a, out: ["7zz", "e", "-bd", f"-o{out}", str(a)], "f.7z")

_TABLE = [
    Compressor("gzip", "gzip -9", lambda b: gzip.compress(b, compresslevel=9, mtime=0), gzip.decompress),
    Compressor("bzip2", "bzip2 -9", lambda b: bz2.compress(b, compresslevel=9), bz2.decompress),
    Compressor("xz", "xz -9e", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
    Compressor("zstd", "zstd -19", _zstd_compress, _zstd_decompress),
    Compressor("brotli", "brotli 11", _brotli, lambda b: _brotli(b, inverse=True)),
    Compressor("ppmd", "PPMd H o6 16MB", _ppmd_compress, _ppmd_decompress, module="pyppmd"),
    Compressor("zpaq", "zpaq -m5", *_zpaq, program="zpaq"),
    Compressor("7z-ppmd", "7z PPMd o16 256MB", *_7z, program="7zz"),
]
COMPRESSORS: dict[str, Compressor] = {c.key: c for c in _TABLE}
BY_LABEL: dict[str, Compressor] = {c.label: c for c in _TABLE}


def get(name: str) -> Compressor:
    """By key ("xz") or label ("xz -9e")."""
    c = COMPRESSORS.get(name) or BY_LABEL.get(name)
    if c is None:
        raise ConfigError(f"unknown compressor {name!r}; choose one of: {', '.join(COMPRESSORS)}")
    return c


def compressed_size(name: str, data: bytes) -> int:
    return len(get(name).compress(data))


def bpb(name: str, data: bytes) -> float:
    return 8 * compressed_size(name, data) / len(data)


def conditional_bpb(name: str, prefix: bytes, data: bytes) -> float:
    return 8 * (compressed_size(name, prefix + data) - compressed_size(name, prefix)) / len(data)
