"""The `.imz` container: a header, framed blocks, a trailer. It is written front to back, so
`imo zip - < in > out.imz` works without knowing the length first.

    magic  b"IMOZ"  | format version (1 byte) | header length (u32) | header (JSON, UTF-8, zlib)
    block: raw length n (u32, 1..block_size) | payload size w (u32) | the coded payload
           (w = 0xFFFFFFFF: a stored block, n raw bytes follow; used when coding would expand it)
    ...
    end:   0 (u32) | original length (u64) | SHA-256 of the original (32 bytes) | b"ZOMI"

Versions: 2 (this one) counts the payload in bytes (the integer `cm` coder writes bytes); 1
counted it in u32 range-coder words. Version 1 files still decode; any other version is refused
by number.

The JSON header names the mode, the settings, what exactness depends on (threads, dtype, library
versions) and the model fingerprint on the fixed probe (imo.zip.predictor.fingerprint).
All integers little-endian. Any inconsistency raises `ZipFormatError` (one line, exit code 2).
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any, BinaryIO

from imo.errors import ImoError

MAGIC = b"IMOZ"
END_MAGIC = b"ZOMI"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_HEADER = 1 << 20


class ZipFormatError(ImoError):
    """The input is not an .imz file this version can read, or it is corrupt or truncated."""


def read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    """Exactly n bytes (looping over short reads from pipes), or a truncation error."""
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            raise ZipFormatError(f"truncated input: it ends inside the {what}")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def read_up_to(f: BinaryIO, n: int) -> bytes:
    """Up to n bytes; fewer only at the end of the input."""
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def write_header(f: BinaryIO, header: dict[str, Any]) -> int:
    header = {k: v for k, v in header.items() if k != "format"}  # the version byte says that
    body = zlib.compress(json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8"), 9)
    f.write(MAGIC + bytes([FORMAT_VERSION]) + struct.pack("<I", len(body)) + body)
    return 9 + len(body)


def read_header(f: BinaryIO) -> dict[str, Any]:
    start = f.read(4)
    if start != MAGIC:
        raise ZipFormatError("not an imo zip file (missing the IMOZ signature)")
    version = read_exact(f, 1, "header")[0]
    if version not in READABLE_VERSIONS:
        raise ZipFormatError(f"imz format version {version} is not supported; this imo reads versions "
                             f"{', '.join(map(str, READABLE_VERSIONS))} (a newer imo wrote it?)")
    (size,) = struct.unpack("<I", read_exact(f, 4, "header"))
    if size > MAX_HEADER:
        raise ZipFormatError(f"corrupt header: length {size} exceeds {MAX_HEADER}")
    body = read_exact(f, size, "header")
    try:
        inflate = zlib.decompressobj()
        text = inflate.decompress(body, MAX_HEADER)
        if inflate.unconsumed_tail or not inflate.eof:
            raise ZipFormatError("corrupt header: it does not inflate to a complete JSON document")
        header = json.loads(text.decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError):
        raise ZipFormatError("corrupt header: it is not compressed JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("settings"), dict):
        raise ZipFormatError("corrupt header: no settings")
    header["format"] = version  # not stored in the JSON: the byte above is the version
    return header


STORED = 0xFFFFFFFF


def write_block(f: BinaryIO, n: int, payload: bytes, stored: bool = False) -> int:
    f.write(struct.pack("<II", n, STORED if stored else len(payload)) + payload)
    return 8 + len(payload)


def read_block(f: BinaryIO, block_size: int, version: int = FORMAT_VERSION) -> tuple[int, bytes, bool]:
    """(n, payload, stored) of the next block; n == 0 at the end marker."""
    (n,) = struct.unpack("<I", read_exact(f, 4, "block header"))
    if n == 0:
        return 0, b"", False
    if n > block_size:
        raise ZipFormatError(f"corrupt input: a block of {n} bytes exceeds the block size {block_size}")
    (w,) = struct.unpack("<I", read_exact(f, 4, "block header"))
    if w == STORED:
        return n, read_exact(f, n, "stored block"), True
    size = 4 * w if version == 1 else w  # version 1 counted u32 words
    if size > n + 64:  # a longer coding would have been stored instead
        raise ZipFormatError(f"corrupt input: {size} payload bytes for a block of {n} bytes")
    return n, read_exact(f, size, "block data"), False


def write_trailer(f: BinaryIO, length: int, digest: bytes) -> int:
    f.write(struct.pack("<IQ", 0, length) + digest + END_MAGIC)
    return 4 + 8 + 32 + 4


def read_trailer(f: BinaryIO) -> tuple[int, bytes]:
    """After the end marker: (original length, SHA-256); checks that nothing follows."""
    (length,) = struct.unpack("<Q", read_exact(f, 8, "trailer"))
    digest = read_exact(f, 32, "trailer")
    if read_exact(f, 4, "trailer") != END_MAGIC:
        raise ZipFormatError("corrupt trailer: missing the end signature")
    if f.read(1):
        raise ZipFormatError("corrupt input: data after the trailer")
    return length, digest
