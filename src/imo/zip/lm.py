"""Pretrained mode of `imo zip`: a trained imo run (a byte GPT, or an imported BPE model such as
SmolLM2) predicts the next token through the engine's KV cache (imo.engine), several segments
coded side by side as one batch (NNCP's and ts_zip's parallel streams).

What is coded. A block is cut into `streams` equal segments; each segment is turned into tokens
and the tokens are range-coded one by one with the model's next-token distribution. For a byte
model a token is a byte, so the distribution *is* the exact next-byte distribution. For a BPE
model the segment's **canonical tokenization** is coded (the tokenizer's own encoding of each
run of valid UTF-8; any byte outside valid UTF-8 as its single-byte token), token by token. This
is lossless for a byte-level BPE: every token stands for fixed bytes, the encoder checks that
the tokens' bytes are exactly the segment, and the decoder rebuilds the bytes and checks the
SHA-256 in the trailer. It is *not* the exact byte marginal (the sum over every tokenization
consistent with each next byte): the probability the model gives to non-canonical spellings of
the same bytes is wasted, a small cost in bits.

The loop is the same in the encoder and the decoder (`run_block`): one prefill of a start token
for every live segment, then one cached decode step per token; a segment leaves the batch
(`KVCache.select`) after its last token; when a row's context reaches `window` tokens the cache is
rebuilt from the last window/4 tokens (the engine's slide keeps half; a quarter re-computes a third
as much and still leaves 192-768 tokens of context at the default window). Same calls, same shapes, so the same
float arithmetic on the same machine. Float kernels are not portable across CPUs, so the header
says `portable: false` and records what the arithmetic depends on (CPU, vector capability,
library versions, threads) beside a fingerprint of the model's logits on a fixed probe; a decoder
where any of them differs refuses in one line.

Block payload: u32 token count per segment, then the range coder's u32 words.

    info = model_info("smollm2"); compress_lm(src, dst, info, LMSettings(streams=16))
    decompress_lm(src, dst, header)      # header = container.read_header(src)
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import struct
import time
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

import numpy as np

from imo.errors import CheckpointError, ConfigError
from imo.zip import container as C
from imo.zip.codec import CodingStats, environment, pinned
from imo.zip.predictor import probe_bytes

MODE = "lm"
MAX_STREAMS = 256


@dataclass(frozen=True)
class LMSettings:
    streams: int = 16  # segments coded side by side per block (the batch)
    window: int = 768  # tokens of context at most; then the cache restarts from the last quarter
    block_size: int = 1 << 20  # bytes per block

    def check(self) -> LMSettings:
        if not 1 <= self.streams <= MAX_STREAMS:
            raise ConfigError(f"--streams must be 1..{MAX_STREAMS} in pretrained mode, got {self.streams}")
        if self.window < 4:
            raise ConfigError(f"the context window must be >= 4 tokens, got {self.window}")
        if not 1 <= self.block_size <= 1 << 26:
            raise ConfigError(f"block size must be 1..{1 << 26} bytes, got {self.block_size}")
        return self

    @classmethod
    def from_header(cls, d: dict) -> LMSettings:
        try:
            return cls(**{k: int(d[k]) for k in ("streams", "window", "block_size")}).check()
        except (KeyError, TypeError, ValueError, ConfigError):
            raise C.ZipFormatError("corrupt header: bad pretrained-mode settings") from None


# --- the model, named by hash ---------------------------------------------------------------------

def _sha256(path) -> str:
    st = os.stat(path)
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:  # once per process and file version
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def model_info(run: str, store=None) -> dict[str, Any]:
    """What the header says of the model: run id, config hash, SHA-256 of the weights and of the
    tokenizer file (if any), and the model's bytes (reported as counted and not counted)."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import checkpoint_dir

    store = store or RunStore.open()
    run_id = store.resolve(run)
    folder = store.run_dir(run_id)
    weights = checkpoint_dir(folder) / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"run {run_id} has no model.safetensors")
    tok = folder / "tokenizer.json"
    return {"run": run_id, "config_hash": store.get(run_id).get("config_hash"), "sha256": _sha256(weights),
            "tokenizer_sha256": _sha256(tok) if tok.is_file() else None,
            "model_bytes": weights.stat().st_size + (tok.stat().st_size if tok.is_file() else 0)}


class LM:
    """A frozen run behind the engine: its tokens' bytes, a start token, cached forward passes."""

    def __init__(self, info: dict[str, Any], run: str | None = None):
        from imo.data.tokenizer import load_tokenizer
        from imo.engine.decode import Engine
        from imo.engine.text import TokenText
        from imo.runs.store import RunStore
        from imo.train.checkpoint import load_model

        here = model_info(run or info["run"])
        for key, what in (("sha256", "weights"), ("tokenizer_sha256", "tokenizer")):
            if here[key] != info.get(key):
                raise CheckpointError(f"run {here['run']} is not the model this file was compressed with "
                                      f"(its {what}' SHA-256 differs); decode with that model")
        folder = RunStore.open().run_dir(here["run"])
        model, meta = load_model(folder)
        self.tokenizer = load_tokenizer(folder, meta)
        self.text = TokenText(self.tokenizer)
        self.engine = Engine(model, text=self.text)
        self.context = model.cfg.context_length
        self.vocab = model.cfg.vocab_size  # the logits' width
        pieces = list(self.text.pieces[: self.vocab]) + [b""] * max(0, self.vocab - len(self.text.pieces))
        self.byte_level = self.text.byte_level
        self.single: dict[int, int] = {}  # byte -> its one-byte token (for bytes outside valid UTF-8)
        for i, p in enumerate(pieces):
            if len(p) == 1:
                self.single.setdefault(p[0], i)
        # bytes the vocabulary has no token for (SmolLM2 lacks some that valid UTF-8 never holds, such
        # as 0xff): escape symbols after the vocabulary, coded with the coder's smallest probability
        # and fed to the model as the start token
        missing = [] if self.byte_level else [b for b in range(256) if b not in self.single]
        self.escapes = len(missing)
        for b in missing:
            self.single[b] = len(pieces)
            pieces.append(bytes([b]))
        self.pieces = pieces
        # such bytes are cut out before the tokenizer sees the text (it would drop them silently)
        self._cut = re.compile(b"([" + b"".join(re.escape(bytes([b])) for b in missing) + b"])") if missing else None
        special = getattr(self.tokenizer, "special", {})
        self.start = int(special.get("<|endoftext|>", 0)) if not self.byte_level else ord("\n")

    def tokens(self, data: bytes) -> list[int]:
        """The canonical tokens of `data`, whose bytes join to exactly `data`."""
        if self.byte_level:
            return list(data)
        out: list[int] = []
        for part in self._cut.split(data) if self._cut else [data]:
            if len(part) == 1 and self.single[part[0]] >= self.vocab:
                out.append(self.single[part[0]])
            elif part:
                out += self._text_tokens(part)
        if b"".join(self.pieces[t] for t in out) != data:
            raise ConfigError("the model's tokenizer does not reproduce these bytes exactly; it cannot code them")
        return out

    def _text_tokens(self, data: bytes) -> list[int]:
        """Tokens of bytes the vocabulary covers: the tokenizer's on each run of valid UTF-8, the
        one-byte token for each byte outside it."""
        out: list[int] = []
        rest = data
        while rest:
            try:
                text, bad, rest = rest.decode("utf-8"), b"", b""
            except UnicodeDecodeError as e:
                text, bad, rest = rest[: e.start].decode("utf-8"), rest[e.start : e.end], rest[e.end :]
            if text:
                out += self.tokenizer.hf.encode(text, add_special_tokens=False).ids
            out += [self.single[b] for b in bad]
        return out

    def new_cache(self, rows: int, window: int):
        return self.engine.new_cache(rows, window)

    def forward(self, ids: list[list[int]], cache) -> np.ndarray:
        """(rows, V) float32 logits of the token after each row of `ids`, through the cache."""
        import torch

        x = torch.tensor(ids, dtype=torch.long)
        x[x >= self.vocab] = self.start  # an escaped byte reads as the start token
        return self.engine.forward(x, cache)[:, -1].numpy()

    def probs(self, logits: np.ndarray) -> np.ndarray:
        """The coded distribution: the model's tokens, then the escapes at probability 0 (which the
        range coder raises to its smallest non-zero quantum)."""
        p = probabilities(logits)
        return np.concatenate([p, np.zeros((len(p), self.escapes))], 1) if self.escapes else p


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax in float64 (numpy: the same on every machine given the same logits)."""
    z = logits.astype(np.float64)
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


# --- the coding loop, shared by encoder and decoder -----------------------------------------------

def run_block(lm: LM, counts: list[int], window: int, step) -> list[list[int]]:
    """Tokens of every segment; step(t, rows, probs (len(rows), V)) -> one token per live row."""
    out: list[list[int]] = [[] for _ in counts]
    live = [b for b, c in enumerate(counts) if c > 0]
    if not live:
        return out
    seqs = [[lm.start] for _ in live]
    cache = lm.new_cache(len(live), window)
    logits = lm.forward(seqs, cache)
    t = 0
    while True:
        toks = [int(x) for x in step(t, live, lm.probs(logits))]
        keep = []
        for i, b in enumerate(live):
            out[b].append(toks[i])
            seqs[i].append(toks[i])
            if len(out[b]) < counts[b]:
                keep.append(i)
        if not keep:
            return out
        if len(keep) < len(live):
            cache = cache.select(keep)
            live, seqs, toks = [live[i] for i in keep], [seqs[i] for i in keep], [toks[i] for i in keep]
        if cache.length + 1 > window:  # full: restart from the last quarter of every row
            cache = lm.new_cache(len(live), window)
            logits = lm.forward([s[-(window // 4):] for s in seqs], cache)
        else:
            logits = lm.forward([[x] for x in toks], cache)
        t += 1


def segments(n: int, streams: int) -> list[tuple[int, int]]:
    """(start, end) of each segment of a block of n bytes (imo.zip.codec's split)."""
    length = -(-n // streams)
    return [(s, min(s + length, n)) for s in range(0, n, length)]


def _family():
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def encode_block(lm: LM, block: bytes, s: LMSettings) -> tuple[bytes, float, int]:
    """(payload, ideal bits, tokens) of one block."""
    import constriction

    toks = [lm.tokens(block[a:b]) for a, b in segments(len(block), s.streams)]
    encoder = constriction.stream.queue.RangeEncoder()
    family, bits = _family(), 0.0

    def encode(t, rows, probs):
        nonlocal bits
        sym = np.array([toks[b][t] for b in rows], dtype=np.int32)
        encoder.encode(sym, family, probs)
        bits += float(-np.log2(np.maximum(probs[np.arange(len(rows)), sym], 2.0**-24)).sum())  # escapes: ~2^-24
        return sym

    counts = [len(x) for x in toks]
    run_block(lm, counts, _window(lm, s), encode)
    payload = struct.pack(f"<{len(counts)}I", *counts) + encoder.get_compressed().astype("<u4").tobytes()
    return payload, bits, sum(counts)


def decode_block(lm: LM, n: int, payload: bytes, s: LMSettings) -> bytes:
    import constriction

    spans = segments(n, s.streams)
    head = 4 * len(spans)
    if len(payload) < head or (len(payload) - head) % 4:
        raise C.ZipFormatError("corrupt input: a block's payload is malformed")
    counts = list(struct.unpack(f"<{len(spans)}I", payload[:head]))
    if any(c > b - a for c, (a, b) in zip(counts, spans, strict=True)):
        raise C.ZipFormatError("corrupt input: a segment claims more tokens than it has bytes")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(payload[head:], dtype="<u4").astype(np.uint32))
    family = _family()
    got = [0] * len(spans)

    def decode(t, rows, probs):
        try:
            sym = decoder.decode(family, probs)
        except (AssertionError, ValueError, RuntimeError):
            raise C.ZipFormatError(f"corrupt input: the range decoder failed at token {t} of a block's segments"
                                   " (the file is corrupt, or this machine's predictions differ)") from None
        for b, x in zip(rows, sym, strict=True):
            got[b] += len(lm.pieces[int(x)])
            if got[b] > spans[b][1] - spans[b][0]:
                raise C.ZipFormatError("corrupt input: a segment decodes to more bytes than it holds")
        return sym

    toks = run_block(lm, counts, _window(lm, s), decode)
    parts = [b"".join(lm.pieces[t] for t in row) for row in toks]
    if any(len(p) != b - a for p, (a, b) in zip(parts, spans, strict=True)):
        raise C.ZipFormatError("corrupt input: a segment decodes to the wrong length")
    return b"".join(parts)


def _window(lm: LM, s: LMSettings) -> int:
    return min(s.window, lm.context)


# --- what exact decoding depends on ---------------------------------------------------------------

def machine() -> dict[str, Any]:
    """The float arithmetic's dependencies: libraries, threads, CPU model and vector capability."""
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {**environment(), "cpu": cpu, "capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS", "")}


def fingerprint(lm: LM, s: LMSettings) -> str:
    """Hash of the raw float32 logits of a prefill and eight cached steps on the fixed probe (up to
    4 rows): a change of weights, kernels or library that alters these bits shows here."""
    toks = lm.tokens(probe_bytes(512))
    rows = max(1, min(s.streams, 4))
    steps = min(8, len(toks) // rows - 1, _window(lm, s) - 1)
    seqs = [toks[r * (steps + 1):(r + 1) * (steps + 1)] for r in range(rows)]
    h = hashlib.sha256()
    cache = lm.new_cache(rows, _window(lm, s))
    h.update(lm.forward([[lm.start]] * rows, cache).tobytes())
    for t in range(steps):
        h.update(lm.forward([[q[t]] for q in seqs], cache).tobytes())
    return h.hexdigest()[:16]


def header_for(lm: LM, info: dict, s: LMSettings) -> dict[str, Any]:
    with pinned():
        fp = fingerprint(lm, s)
    return {"mode": MODE, "settings": asdict(s), "model": info, "start": lm.start, "portable": False,
            "note": ("float kernels: decodes only on a machine with the same CPU, vector capability, "
                     "library versions and model"),
            "coding": "byte" if lm.byte_level else "canonical BPE tokens",
            "env": machine(), "fingerprint": fp}


def check_machine(header: dict, lm: LM, s: LMSettings) -> None:
    theirs, mine = header.get("env") or {}, machine()
    diff = [f"{k} {theirs.get(k)!r} here {mine[k]!r}" for k in mine if theirs.get(k) != mine[k]]
    if diff:
        raise C.ZipFormatError("not portable: this pretrained-mode file was made with float kernels on another "
                               f"machine ({'; '.join(diff)}); decode it where it was made")
    if header.get("start") != lm.start:
        raise C.ZipFormatError("corrupt header: the start token differs from the model's")
    with pinned():
        fp = fingerprint(lm, s)
    if fp != header.get("fingerprint"):
        raise C.ZipFormatError("not portable: this machine's float arithmetic gives other logits than the "
                               "encoder's on the probe (fingerprint mismatch); decode it where it was made")


# --- streams ----------------------------------------------------------------------------------------

def compress_lm(src: BinaryIO, dst: BinaryIO, info: dict, s: LMSettings, progress=None,
                run: str | None = None) -> CodingStats:
    t0 = time.perf_counter()
    lm = LM(info, run)
    st = CodingStats()
    st.header_bytes = st.compressed = C.write_header(dst, header_for(lm, info, s.check()))
    digest = hashlib.sha256()
    st.tokens = 0  # tokens coded (bytes, for a byte model)
    st.parameters = sum(p.numel() for p in lm.engine.model.parameters())
    with pinned():
        while block := C.read_up_to(src, s.block_size):
            digest.update(block)
            payload, bits, ntok = encode_block(lm, block, s)
            stored = len(payload) >= len(block)
            st.compressed += C.write_block(dst, len(block), block if stored else payload, stored)
            st.original += len(block)
            st.blocks += 1
            st.stored_blocks += stored
            st.model_bits += bits
            st.tokens += ntok
            if progress is not None:
                progress(len(block))
    st.compressed += C.write_trailer(dst, st.original, digest.digest())
    st.seconds = time.perf_counter() - t0
    return st


def decompress_lm(src: BinaryIO, dst: BinaryIO, header: dict, progress=None, run: str | None = None) -> CodingStats:
    """Decode the blocks after `header` (already read from src)."""
    t0 = time.perf_counter()
    info = header.get("model")
    if not isinstance(info, dict) or not isinstance(info.get("run"), str):
        raise C.ZipFormatError("corrupt header: pretrained mode without a model")
    s = LMSettings.from_header(header["settings"])
    lm = LM(info, run)
    check_machine(header, lm, s)
    st = CodingStats()
    digest = hashlib.sha256()
    with pinned():
        while True:
            n, payload, stored = C.read_block(src, s.block_size, header["format"])
            if n == 0:
                break
            block = payload if stored else decode_block(lm, n, payload, s)
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
