"""`imo zip` / `imo unzip`: a language model's next-byte predictions, entropy-coded.

Each block of the input (up to `block_size` bytes, so memory stays bounded on any input) is cut
into `streams` equal segments that are coded side by side: at step t the predictor gives one
distribution per stream for byte t of its segment (one batched call), the range coder
(`constriction`'s queue coder) codes the B bytes with those distributions, and the predictor
learns from them. Decoding runs the very same loop, `_run_block`, with the decoder in place of
the encoder: the same predictor calls, the same shapes (the active streams are always a prefix,
the same on both sides), the same update order. Nothing in the loop depends on which side runs
it, so the probabilities agree bit for bit, provided the arithmetic below is the same: one
torch thread, float32, deterministic algorithms, and the same library versions, all pinned while
coding, written into the header, and checked through the predictor's fingerprint on a fixed probe
before any byte is decoded.

    compress_stream(src, dst, ZipSettings.build())      # file objects opened in binary mode
    decompress_stream(src, dst)
"""

from __future__ import annotations

import functools
import hashlib
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from imo.errors import ConfigError
from imo.zip import container as C
from imo.zip.predictor import Predictor, fingerprint, probe_bytes, quantise
from imo.zip.settings import ZipSettings

StepFn = Callable[[int, int, np.ndarray], np.ndarray]  # (t, m, freq (m, 256)) -> symbols (m,)


@dataclass
class CodingStats:
    """What a compress or decompress run did: sizes, wall time and where it went."""

    original: int = 0
    compressed: int = 0
    seconds: float = 0.0
    header_bytes: int = 0
    blocks: int = 0
    stored_blocks: int = 0
    model_bits: float = 0.0  # ideal code length -log2 p of the coded bytes

    @property
    def bits_per_byte(self) -> float:
        return 8 * self.compressed / self.original if self.original else 0.0


def environment() -> dict[str, Any]:
    """What exact decoding depends on; stored in the header."""
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__,
            "constriction": _version("constriction"), "dtype": "float32", "threads": 1,
            "deterministic": True, "machine": platform.machine()}


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


@contextmanager
def pinned() -> Iterator[None]:
    """One torch thread, deterministic algorithms, float32 default: what the codec's arithmetic
    assumes. Restores the caller's settings afterwards."""
    import torch  # imported here: the cm predictor never needs it, and start-up stays short

    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    dtype = torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.set_default_dtype(dtype)


def segments(n: int, streams: int) -> tuple[int, int]:
    """(segment length L, streams used) for a block of n bytes: stream b codes bytes
    [b*L, min((b+1)*L, n)), so the streams still active at step t are always a prefix."""
    length = -(-n // streams)
    return length, -(-n // length)


def active(n: int, length: int, t: int, streams: int) -> int:
    """How many streams still have a byte at step t: those b with b*L + t < n."""
    return min(streams, -(-(n - t) // length))


def _run_block(pr: Predictor, n: int, step: StepFn, progress: Callable[[int], None] | None) -> np.ndarray:
    """THE coding loop, shared by encoder and decoder: (S, L) bytes of the block, padded."""
    length, used = segments(n, pr.s.streams)
    out = np.zeros((used, length), dtype=np.uint8)
    pr.reset_streams()
    for t in range(length):
        m = active(n, length, t, used)
        freq = quantise(pr.predict(m))
        symbols = step(t, m, freq).astype(np.uint8)
        out[:m, t] = symbols
        pr.update(symbols)
        if progress is not None:
            progress(m)
    return out


def _grid(block: bytes, streams: int) -> np.ndarray:
    """The block as (streams used, L) segments, zero-padded at the end."""
    n = len(block)
    length, used = segments(n, streams)
    padded = np.zeros(used * length, dtype=np.uint8)
    padded[:n] = np.frombuffer(block, dtype=np.uint8)
    return padded.reshape(used, length)


def _encode_block(pr: Predictor, block: bytes, family, progress) -> tuple[bytes, float]:
    """(range-coder words, ideal code length in bits) of one block."""
    import constriction

    grid = _grid(block, pr.s.streams)
    encoder = constriction.stream.queue.RangeEncoder()
    bits = 0.0

    def encode(t: int, m: int, freq: np.ndarray) -> np.ndarray:
        nonlocal bits
        symbols = grid[:m, t]
        encoder.encode(symbols.astype(np.int32), family, freq)
        bits += float(-np.log2(freq[np.arange(m), symbols] / freq.sum(1)).sum())
        return symbols

    _run_block(pr, len(block), encode, progress)
    return encoder.get_compressed().astype("<u4").tobytes(), bits


def _decode_block(pr: Predictor, n: int, payload: bytes, stored: bool, family, progress) -> bytes:
    """The n bytes of one block. A stored block is replayed through the predictor too, so that
    its state stays the encoder's."""
    if stored:
        grid = _grid(payload, pr.s.streams)
        _run_block(pr, n, lambda t, m, freq: grid[:m, t], progress)
        return payload
    import constriction

    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))

    def decode(t: int, m: int, freq: np.ndarray) -> np.ndarray:
        try:
            return decoder.decode(family, freq)
        except (AssertionError, ValueError, RuntimeError):
            # constriction asserts when the words cannot come from these frequencies: a corrupt
            # payload, or predictions that differ from the encoder's
            raise C.ZipFormatError(
                f"corrupt input: the range decoder failed at byte {t} of a block's streams (the file is"
                " corrupt, or this machine's predictions differ from the encoder's)") from None

    grid = _run_block(pr, n, decode, progress)
    return grid.reshape(-1)[:n].tobytes()


def _model_family():
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def _net_maker(settings: ZipSettings, model: dict | None) -> Callable[[], Any]:
    """A function that makes a fresh network for the predictor: None (online mode: the predictor
    makes its own seeded OnlineNet) or the pretrained run named in `model`."""
    if model is None:
        return lambda: None
    from imo.zip.pretrained import load_pretrained

    net = load_pretrained(model, settings.streams, settings.net_window)
    from imo.zip.pretrained import PretrainedNet

    return lambda: PretrainedNet(net.model, settings.streams, net.window)


def header_for(settings: ZipSettings, model: dict | None = None) -> dict[str, Any]:
    if settings.predictor == "cm":  # integer arithmetic: nothing about the machine matters
        return {"mode": "online", "settings": settings.to_header(), "fingerprint": cm_fingerprint(settings)}
    with pinned():
        fp = fingerprint(settings, _net_maker(settings, model)())
    header = {"mode": "online" if model is None else "pretrained", "settings": settings.to_header(),
              "env": environment(), "fingerprint": fp}
    return header if model is None else {**header, "model": model}


def compress_stream(src: BinaryIO, dst: BinaryIO, settings: ZipSettings,
                    progress: Callable[[int], None] | None = None, model: dict | None = None) -> CodingStats:
    """Read src to its end, write the .imz container to dst; memory bounded by the block size.
    `model`: pretrained mode, the run named by imo.zip.pretrained.run_info."""
    if model is not None and settings.predictor in ("stats", "cm"):
        raise ConfigError(f"pretrained mode needs the network: use predictor net or mix, not {settings.predictor}")
    t0 = time.perf_counter()
    if settings.predictor == "cm":
        return _compress_cm(src, dst, settings, progress, t0)
    st = CodingStats()
    st.header_bytes = C.write_header(dst, header_for(settings, model))
    st.compressed = st.header_bytes
    digest = hashlib.sha256()
    family = _model_family()
    with pinned():
        pr = Predictor(settings, net=_net_maker(settings, model)())
        while True:
            block = C.read_up_to(src, settings.block_size)
            if not block:
                break
            digest.update(block)
            n = len(block)
            words, bits = _encode_block(pr, block, family, progress)
            stored = len(words) >= n
            st.compressed += C.write_block(dst, n, block if stored else words, stored)
            st.original += n
            st.blocks += 1
            st.stored_blocks += stored
            st.model_bits += bits
        st.compressed += C.write_trailer(dst, st.original, digest.digest())
    st.seconds = time.perf_counter() - t0
    return st


def check_header(header: dict[str, Any]) -> tuple[ZipSettings, Callable[[], Any]]:
    """Settings (and the network maker) from a header, after checking that this machine computes
    the same predictions."""
    mode, model = header.get("mode"), header.get("model")
    if mode not in ("online", "pretrained") or (mode == "pretrained") != isinstance(model, dict):
        raise C.ZipFormatError(f"unknown mode {mode!r} in the header; this imo reads online and pretrained files")
    settings = ZipSettings.from_header(header["settings"])
    if settings.predictor == "cm":
        if mode != "online":
            raise C.ZipFormatError("corrupt header: the cm predictor has no pretrained mode")
        if cm_fingerprint(settings) != header.get("fingerprint"):
            raise C.ZipFormatError("model fingerprint mismatch: this imo's cm model differs from the encoder's"
                                   " (a different imo version)")
        return settings, lambda: None
    make_net = _net_maker(settings, model)
    with pinned():
        here = fingerprint(settings, make_net())
    if here != header.get("fingerprint"):
        theirs = header.get("env", {})
        mine = environment()
        diff = ", ".join(f"{k} {theirs.get(k)} vs {mine[k]}" for k in mine if theirs.get(k) != mine[k])
        raise C.ZipFormatError(
            "model fingerprint mismatch: this machine would not reproduce the encoder's predictions"
            f" ({diff or 'same library versions; different arithmetic'}); decode with the encoder's versions"
        )
    return settings, make_net


def decompress_stream(src: BinaryIO, dst: BinaryIO, progress: Callable[[int], None] | None = None) -> CodingStats:
    """Decode an .imz container from src to dst; raises ZipFormatError on any inconsistency
    (bad signature, settings, fingerprint, truncation, length or checksum)."""
    t0 = time.perf_counter()
    st = CodingStats()
    header = C.read_header(src)
    settings, make_net = check_header(header)
    if settings.predictor == "cm":
        return _decompress_cm(src, dst, settings, header["format"], progress, t0)
    digest = hashlib.sha256()
    family = _model_family()
    with pinned():
        pr = Predictor(settings, net=make_net())
        while True:
            n, payload, stored = C.read_block(src, settings.block_size, header["format"])
            if n == 0:
                break
            block = _decode_block(pr, n, payload, stored, family, progress)
            digest.update(block)
            dst.write(block)
            st.original += n
            st.compressed += 8 + len(payload)
            st.blocks += 1
        length, expected = C.read_trailer(src)
    if length != st.original:
        raise C.ZipFormatError(f"corrupt input: the trailer says {length} bytes, the blocks hold {st.original}")
    if digest.digest() != expected:
        raise C.ZipFormatError("checksum mismatch: the decoded bytes are not the original (corrupt input)")
    st.seconds = time.perf_counter() - t0
    return st


# --- the integer cm predictor (imo.zip.cm): one sequential stream per file, compiled -----------

def cm_fingerprint(settings: ZipSettings) -> str:
    """Hash of the cm coder's output on the fixed probe: checks the model (full or fast) and its
    version, not the CPU (its arithmetic is integer, the same everywhere). Computed once per
    process and model."""
    return _cm_fingerprint(settings.cm_model)


@functools.cache
def _cm_fingerprint(model: str) -> str:
    from imo.zip import cm

    state = cm.State.new(12, cm.MODELS[model])
    return hashlib.sha256(cm.encode(state, probe_bytes(2048))).hexdigest()[:16]


def _cm_state(settings: ZipSettings):
    from imo.zip import cm

    return cm.State.new(cm_table_bits(settings), cm.MODELS[settings.cm_model])


def cm_table_bits(settings: ZipSettings) -> int:
    """Slots per hashed context for cm: 2^20 at level 1, 2^22 at level 2 (9 x 16 MB), 2^23 at 3."""
    return min(settings.table_bits + 4, 23)


def _compress_cm(src: BinaryIO, dst: BinaryIO, settings: ZipSettings, progress, t0: float) -> CodingStats:
    from imo.zip import cm

    st = CodingStats()
    st.header_bytes = st.compressed = C.write_header(dst, header_for(settings))
    digest = hashlib.sha256()
    state = _cm_state(settings)
    while block := C.read_up_to(src, settings.block_size):
        digest.update(block)
        payload = cm.encode(state, block)  # a stored block was still learnt from, as the decoder will
        stored = len(payload) >= len(block)
        st.compressed += C.write_block(dst, len(block), block if stored else payload, stored)
        st.original += len(block)
        st.blocks += 1
        st.stored_blocks += stored
        if progress is not None:
            progress(len(block))
    st.compressed += C.write_trailer(dst, st.original, digest.digest())
    st.seconds = time.perf_counter() - t0
    return st


def _decompress_cm(src: BinaryIO, dst: BinaryIO, settings: ZipSettings, version: int, progress,
                   t0: float) -> CodingStats:
    from imo.zip import cm

    st = CodingStats()
    digest = hashlib.sha256()
    state = _cm_state(settings)
    while True:
        n, payload, stored = C.read_block(src, settings.block_size, version)
        if n == 0:
            break
        if stored:
            cm.encode(state, payload)  # learn from it exactly as the encoder did
            block = payload
        else:
            block = cm.decode(state, payload, n)
        digest.update(block)
        dst.write(block)
        st.original += n
        st.compressed += 8 + len(payload)
        st.blocks += 1
        if progress is not None:
            progress(n)
    length, expected = C.read_trailer(src)
    if length != st.original:
        raise C.ZipFormatError(f"corrupt input: the trailer says {length} bytes, the blocks hold {st.original}")
    if digest.digest() != expected:
        raise C.ZipFormatError("checksum mismatch: the decoded bytes are not the original (corrupt input)")
    st.seconds = time.perf_counter() - t0
    return st


def compress_bytes(data: bytes, settings: ZipSettings | None = None, model: dict | None = None) -> bytes:
    import io

    out = io.BytesIO()
    compress_stream(io.BytesIO(data), out, settings or ZipSettings.build(), model=model)
    return out.getvalue()


def decompress_bytes(blob: bytes) -> bytes:
    import io

    out = io.BytesIO()
    decompress_stream(io.BytesIO(blob), out)
    return out.getvalue()
