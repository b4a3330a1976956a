"""Classic compressors as baselines, in bits per byte.

`conditional_bpb` is the fair comparison with a language model: the model has seen the training
text, so the compressor gets it too, as a prefix, and only the extra bytes count:
bits(train + held_out) - bits(train), per held-out byte.

    conditional_bpb("xz", train_bytes, val_bytes)
"""

import bz2
import gzip
import lzma

from imo.errors import ConfigError

COMPRESSORS = {
    "gzip": lambda b: gzip.compress(b, compresslevel=9, mtime=0),
    "bzip2": lambda b: bz2.compress(b, compresslevel=9),
    "xz": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
}


def compressed_size(name: str, data: bytes) -> int:
    if name not in COMPRESSORS:
        raise ConfigError(f"unknown compressor {name!r}; choose one of: {', '.join(COMPRESSORS)}")
    return len(COMPRESSORS[name](data))


def bpb(name: str, data: bytes) -> float:
    return 8 * compressed_size(name, data) / len(data)


def conditional_bpb(name: str, prefix: bytes, data: bytes) -> float:
    return 8 * (compressed_size(name, prefix + data) - compressed_size(name, prefix)) / len(data)
