"""`--predictor cm`: a bitwise context-mixing model and binary arithmetic coder in integer
arithmetic only, so a file decodes to the same bytes on every machine (PAQ's and lpaq's way,
Mahoney 2002-2007; this is a small model of that family written for imo, not a port).

Each byte is coded as 8 binary decisions, high bit first. For each bit:

* ten context models give a probability that the bit is 1: order 0 (the bits of the current
  byte so far), orders 1-6 and 8 (the previous bytes, hashed into 2^table_bits slots together
  with the partial byte), and two word contexts (a hash of the letters of the current word, and
  of the current and the previous word).
  Each hashed slot is 32 bits: a 16-bit probability, an 8-bit check of the context's hash and an
  8-bit count; slots come in two-way buckets, so a slot that holds another context is never read
  as this one's (a new context takes the less-used slot of its bucket). The probability moves by
  p += (bit - p) / (count + 1.5) (an integer reciprocal table), the count capped at `LIMIT`;
  order 0 and the match model use unchecked slots (22-bit probability, 10-bit count);
* a match model: the byte that followed the last occurrence of the current 6-byte context
  predicts this byte; its bit's probability is learned per (match length, predicted bit);
* two mixers add the models' stretched probabilities (stretch(p) = ln(p / (1 - p)), from a
  table) with weights chosen by (how many of orders 2-6 have seen their context, the partial
  byte) and by (the match state, the previous byte); each squashes its sum back and takes one
  integer gradient step on its coding cost (logistic mixing); their sums are averaged;
* two adaptive probability maps (SSE) refine the mix in the order-1 and a hashed order-2
  context, and the three are blended with fixed integer weights.

That is the `full` model (level 2). `fast` (level 1) drops orders 5 and 8, the two-word context,
the second mixer and the second SSE; `max` (level 3) adds four mixers (chosen by the hashed order-2
context, the match's predicted bit, the current word, the column) and a second mixing layer that
learns how to weigh the six mixers' outputs (a two-layer network of logistic mixers, as in paq8)
instead of averaging two.

The coder is a 32-bit carry-less binary arithmetic coder with 12-bit probabilities. Every
quantity is an integer with explicit masks, so the numba-compiled kernel and the same function
run by the Python interpreter (`py_func`, used by the tests) give identical bytes; nothing reads
a float, a vector unit's rounding or a thread count.

    state = State.new(table_bits=22, model=MODELS["full"])
    payload = encode(state, data)          # the decoder: decode(State.new(22), payload, len(data))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    from numba import njit
except ImportError:  # the same code, interpreted: identical bytes, about 1000x slower
    def njit(*args, **kwargs):
        return (lambda f: f) if not args or not callable(args[0]) else args[0]

M32 = 0xFFFFFFFF
N_CTX = 10  # order 0, orders 1 2 3 4 5 6, word, word + previous word, order 8
N_IN = N_CTX + 2  # + match model + bias
LIMIT = 20  # counter count cap: higher adapts slower, predicts stationary text better


def _squash_table() -> np.ndarray:
    """squash(d) = 4096 / (1 + e^(-d/256)) for d in -2047..2047, by linear interpolation between
    33 integer knots (the knots are the rounded function itself)."""
    knots = [int(round(4096 / (1 + np.exp(-(i - 16) * 128 / 256)))) for i in range(33)]
    knots = [min(max(k, 1), 4095) for k in knots]
    out = np.zeros(4095, dtype=np.int64)
    for d in range(-2047, 2048):
        w, i = d & 127, (d >> 7) + 16
        out[d + 2047] = (knots[i] * (128 - w) + knots[i + 1] * w + 64) >> 7
    return out


SQUASH = _squash_table()


def _stretch_table() -> np.ndarray:
    """The inverse of squash: the smallest d with squash(d) >= p, for p in 0..4095."""
    out = np.zeros(4096, dtype=np.int64)
    pi = 0
    for d in range(-2047, 2048):
        v = int(SQUASH[d + 2047])
        for j in range(pi, v + 1):
            out[j] = d
        pi = v + 1
    out[pi:] = 2047
    return out


STRETCH = _stretch_table()
APM_ROW = np.array([SQUASH[min(max((j - 16) * 128, -2047), 2047) + 2047] * 16 for j in range(33)], dtype=np.int32)
RECIP = np.array([(1 << 17) // (2 * n + 3) for n in range(1024)], dtype=np.int64)  # 65536 / (n + 1.5)


@dataclass
class State:
    """Everything the model has learned; the encoder and the decoder each start from `new`."""

    tables: np.ndarray  # (N_CTX - 1, 2^bits) uint32 counters for the hashed contexts
    order0: np.ndarray  # (256,) counters for order 0
    match_sm: np.ndarray  # (64,) counters for the match model
    weights: np.ndarray  # (6 * 256, N_IN) int64 mixer weights (16.16 fixed point), chosen by how many
    # of orders 2-6 have seen their context and by the partial byte
    weights2: np.ndarray  # (3 * 256, N_IN) the second mixer's, chosen by the match state and the previous byte
    apm: np.ndarray  # (2 * 65536 * 33,) int32 SSE tables (16-bit probabilities)
    buf: np.ndarray  # (2^22,) uint8 history ring for the match model
    match_table: np.ndarray  # (2^20,) int64 last position of each 6-byte context hash
    regs: np.ndarray  # (8,) int64: position, match pointer, match length, c4, c8, word hash,
    # previous word hash, column (bytes since the last newline)
    bits: int
    model: int = 0  # MODELS: 0 full, 1 fast (orders 5 and 8 and the two-word context off, one
    # mixer, one SSE), 2 max (full + four more mixers and a second mixing layer), 3 ONE_LAYER
    layer2: np.ndarray | None = None  # max: (17152, N_IN) the weights of mixers 3-6, then the (6, 6)
    # second layer's (flat)

    @classmethod
    def new(cls, table_bits: int, model: int = 0) -> State:
        half = np.uint32((1 << 31) | 0)  # p = 0.5, count 0
        w = np.zeros((256, N_IN), dtype=np.int64)
        w[:, :] = (1 << 16) * 3 // 10
        # order 1, then order 2 hashed to 8 bits; each context's 33 buckets start at squash(bucket)
        apm = np.tile(APM_ROW, 2 * 65536)
        return cls(np.full((N_CTX - 1, 1 << table_bits), half, dtype=np.uint32),
                   np.full(256, half, dtype=np.uint32), np.full(64, half, dtype=np.uint32), np.concatenate([w] * 6), np.concatenate([w, w, w]), apm,
                   np.zeros(1 << 22, dtype=np.uint8), np.zeros(1 << 20, dtype=np.int64),
                   np.zeros(8, dtype=np.int64), table_bits, int(model),
                   np.concatenate([np.concatenate([w] * 67).ravel(), np.full(6 * 6, (1 << 16) // 6, dtype=np.int64)]))

    def arrays(self) -> tuple:
        return (self.tables, self.order0, self.match_sm, self.weights, self.weights2, self.apm, self.buf, self.match_table,
                self.regs, self.bits, SQUASH, STRETCH, RECIP, self.model, self.layer2)


@njit(cache=True, nogil=True)
def _update_counter(t, i, y, recip):
    v = int(t[i])
    n = v & 1023
    p = v >> 10
    target = y << 22
    p += ((target - p) >> 3) * int(recip[n]) >> 13
    if p < 0:
        p = 0
    if p > (1 << 22) - 1:
        p = (1 << 22) - 1
    if n < LIMIT:
        n += 1
    t[i] = (p << 10) | n


@njit(cache=True, nogil=True)
def _update_counter16(t, i, y, recip):
    """A checked slot: 16-bit probability, 8-bit check, 8-bit count."""
    v = int(t[i])
    n = v & 0xFF
    p = v >> 16
    p += ((y << 16) - p) * int(recip[n]) >> 16
    if p < 0:
        p = 0
    if p > 0xFFFF:
        p = 0xFFFF
    if n < LIMIT:
        n += 1
    t[i] = (p << 16) | (v & 0xFF00) | n


@njit(cache=True, nogil=True)
def _squash(d, sq):
    if d > 2047:
        d = 2047
    if d < -2047:
        d = -2047
    return int(sq[d + 2047])


@njit(cache=True, nogil=True)
def _code(encode, inp, n_in, out, n_out, tables, order0, match_sm, weights, weights2, apm, buf, match_table, regs,
          bits, sq, st, recip, model, layer2):
    """THE coding loop for encoder (encode=1: inp holds the n_in bytes, out receives the payload)
    and decoder (encode=0: inp is the payload, out receives n_out bytes). Returns the number of
    bytes written to `out`. model 1 (fast): orders 5 and 8 and the two-word context are off, the
    second mixer and the order-2 SSE too; model 2 (max): four more mixers (weights chosen by the
    order-2 context hashed to 12 bits; by the match's predicted bit with the partial byte; by the
    current word hashed to 12 bits; by the column with the partial byte) and a second layer that
    mixes the six mixers' outputs with weights chosen by how many of orders 2-6 have seen their
    context, in place of averaging two; max's mixers learn at 2^-10 instead of 2^-12. Model 3
    (ONE_LAYER, an ablation) is the full model at max's rate. The same code path otherwise, so the full model's bytes are unchanged."""
    x1, x2, x = 0, M32, 0
    ip, op = 0, 0
    if encode == 0:
        for _ in range(4):
            c = int(inp[ip]) if ip < n_in else 0
            ip += 1
            x = ((x << 8) | c) & M32
    # Python ints in the interpreter (numpy scalars would warn on the hashes' wrap-around)
    pos, mptr, mlen, c4, c8 = int(regs[0]), int(regs[1]), int(regs[2]), int(regs[3]), int(regs[4])
    word, pword, col = int(regs[5]), int(regs[6]), int(regs[7])
    n_bytes = n_in if encode == 1 else n_out
    idx = np.zeros(N_CTX, dtype=np.int64)
    hashes = np.zeros(N_CTX, dtype=np.int64)
    stv = np.zeros(N_IN, dtype=np.int64)
    xs = np.zeros(6, dtype=np.int64)
    for k in range(n_bytes):
        # byte boundary: context hashes from the previous bytes
        hashes[1] = (c4 & 0xFF) + 0x100
        hashes[2] = (c4 & 0xFFFF) + 0x20000
        hashes[3] = ((c4 & 0xFFFFFF) * 0x2F0B3A49) & M32
        hashes[4] = ((c4 & M32) * 0x6F4F2A35 + 0x1B873593) & M32
        hashes[5] = (((c4 & M32) * 0x9E3779B1) ^ ((c8 & 0xFF) * 0x85EBCA77 + 0x165667B1)) & M32
        hashes[6] = (((c4 & M32) * 0x9E3779B1) ^ ((c8 & 0xFFFF) * 0x85EBCA77)) & M32
        hashes[7] = (word * 0xC2B2AE3D + 0x27D4EB2F) & M32
        hashes[8] = ((word * 0xC2B2AE3D) ^ (pword * 0x165667B1 + 0x3C6EF372)) & M32
        hashes[9] = (((c4 & M32) * 0x2545F491) ^ ((c8 & M32) * 0x9E3779B1 + 0x7F4A7C15)) & M32
        expected = int(buf[mptr & 0x3FFFFF]) + 256 if mlen > 0 else 0
        c0 = 1
        byte = int(inp[k]) if encode == 1 else 0
        for b in range(8):
            # predictions of the bit
            idx[0] = c0
            stv[0] = int(st[int(order0[idx[0]]) >> 20])
            seen = 0  # how many of orders 2-6 have seen this context: the mixer's confidence selector
            for i in range(1, N_CTX):
                if model == 1 and (i == 5 or i == 8 or i == 9):
                    stv[i] = 0
                    continue
                h = ((int(hashes[i]) ^ (c0 * 0x2545F491)) * 0x9E3779B1) & M32
                # two-way bucket with an 8-bit check: a slot holding another context is not
                # read as this one's statistics; a new context takes the less-used slot
                j = h >> (32 - bits)
                chk = (h >> 3) & 0xFF
                t = tables[i - 1]
                v = int(t[j])
                if ((v >> 8) & 0xFF) != chk:
                    v2 = int(t[j ^ 1])
                    if ((v2 >> 8) & 0xFF) == chk:
                        j = j ^ 1
                        v = v2
                    else:
                        if (v2 & 0xFF) < (v & 0xFF):
                            j = j ^ 1
                        v = (1 << 31) | (chk << 8)
                        t[j] = v
                idx[i] = j
                stv[i] = int(st[v >> 20])
                if 2 <= i <= 6 and (v & 0xFF) > 0:
                    seen += 1
            ms = -1
            if mlen > 0 and (expected >> (8 - b)) == c0:
                ebit = (expected >> (7 - b)) & 1
                ln = mlen if mlen < 31 else 31
                ms = ln * 2 + ebit
                stv[N_CTX] = int(st[int(match_sm[ms]) >> 20])
            else:
                stv[N_CTX] = 0
            stv[N_CTX + 1] = 256
            msel = 0 if ms < 0 else (1 if mlen < 16 else 2)
            dot1 = 0
            dot2 = 0
            c1 = c4 & 0xFF
            if model == 1:
                for i in range(N_IN):
                    dot1 += int(weights[seen * 256 + c0, i]) * stv[i]
                dot2 = dot1
            else:
                for i in range(N_IN):
                    dot1 += int(weights[seen * 256 + c0, i]) * stv[i]
                    dot2 += int(weights2[msel * 256 + c1, i]) * stv[i]
            p1 = _squash(dot1 >> 16, sq)
            p2 = _squash(dot2 >> 16, sq)
            dot = (dot1 + dot2) >> 1
            if model == 2:  # four more mixers, then a second layer over the six
                r3 = ((((c4 & 0xFFFF) * 0x9E3779B1) & M32) >> 20) * N_IN
                r4 = (4096 + (0 if ms < 0 else 256 + 256 * (ms & 1)) + c0) * N_IN
                r5 = (4864 + (((word * 0x9E3779B1) & M32) >> 20)) * N_IN
                r6 = (8960 + (col if col < 31 else 31) * 256 + c0) * N_IN
                dot3 = 0
                dot4 = 0
                dot5 = 0
                dot6 = 0
                for i in range(N_IN):
                    dot3 += int(layer2[r3 + i]) * stv[i]
                    dot4 += int(layer2[r4 + i]) * stv[i]
                    dot5 += int(layer2[r5 + i]) * stv[i]
                    dot6 += int(layer2[r6 + i]) * stv[i]
                p3 = _squash(dot3 >> 16, sq)
                p4 = _squash(dot4 >> 16, sq)
                p5 = _squash(dot5 >> 16, sq)
                p6 = _squash(dot6 >> 16, sq)
                for i in range(6):
                    v = (dot1, dot2, dot3, dot4, dot5, dot6)[i] >> 16
                    xs[i] = -2047 if v < -2047 else (2047 if v > 2047 else v)
                rf = 17152 * N_IN + seen * 6
                dot = 0
                for i in range(6):
                    dot += int(layer2[rf + i]) * xs[i]
                pf = _squash(dot >> 16, sq)
            pm = _squash(dot >> 16, sq)
            # SSE in the order-1 context: interpolate between the two nearest of 33 buckets
            s = dot >> 16
            if s > 2047:
                s = 2047
            if s < -2047:
                s = -2047
            s += 2048
            lo = s >> 7
            wgt = s & 127
            actx = ((c4 & 0xFF) * 256 + c0) * 33 + lo
            pa = (int(apm[actx]) * (128 - wgt) + int(apm[actx + 1]) * wgt) >> 11
            actx2 = ((((c4 & 0xFFFF) * 0x9E3779B1) & M32) >> 24) * 256 + c0
            actx2 = (65536 + actx2) * 33 + lo
            if model == 1:
                p = (pm + 3 * pa) >> 2
            else:
                pb = (int(apm[actx2]) * (128 - wgt) + int(apm[actx2 + 1]) * wgt) >> 11
                p = (2 * pm + 3 * pa + 3 * pb) >> 3
            if p < 1:
                p = 1
            if p > 4095:
                p = 4095
            # code the bit
            xmid = x1 + ((x2 - x1) >> 12) * p
            if encode == 1:
                y = (byte >> (7 - b)) & 1
            else:
                y = 1 if x <= xmid else 0
            if y == 1:
                x2 = xmid
            else:
                x1 = xmid + 1
            while ((x1 ^ x2) & 0xFF000000) == 0:
                if encode == 1:
                    out[op] = x2 >> 24
                    op += 1
                else:
                    c = int(inp[ip]) if ip < n_in else 0
                    ip += 1
                    x = ((x << 8) | c) & M32
                x1 = (x1 << 8) & M32
                x2 = ((x2 << 8) & M32) | 255
            # learn from it
            err1 = (y << 12) - p1
            err2 = (y << 12) - p2
            sh = 10 if model >= 2 else 12  # max learns faster (fast: 2^-12 beat 2^-10, 2^-11; full keeps its bytes)
            for i in range(N_IN):
                weights[seen * 256 + c0, i] += (stv[i] * err1) >> sh
                if model != 1:
                    weights2[msel * 256 + c1, i] += (stv[i] * err2) >> sh
            if model == 2:
                err3 = (y << 12) - p3
                err4 = (y << 12) - p4
                err5 = (y << 12) - p5
                err6 = (y << 12) - p6
                for i in range(N_IN):
                    layer2[r3 + i] += (stv[i] * err3) >> 10
                    layer2[r4 + i] += (stv[i] * err4) >> 10
                    layer2[r5 + i] += (stv[i] * err5) >> 10
                    layer2[r6 + i] += (stv[i] * err6) >> 10
                errf = (y << 12) - pf
                for i in range(6):
                    layer2[rf + i] += (xs[i] * errf) >> 14
            target = y << 16
            j = actx if wgt < 64 else actx + 1
            apm[j] += (target - int(apm[j])) >> 6
            if model != 1:
                j = actx2 if wgt < 64 else actx2 + 1
                apm[j] += (target - int(apm[j])) >> 6
            _update_counter(order0, idx[0], y, recip)
            for i in range(1, N_CTX):
                if model == 1 and (i == 5 or i == 8 or i == 9):
                    continue
                _update_counter16(tables[i - 1], idx[i], y, recip)
            if ms >= 0:
                _update_counter(match_sm, ms, y, recip)
            c0 = (c0 << 1) | y
        byte = c0 & 0xFF
        if encode == 0:
            out[k] = byte
        # byte boundary: histories, word hash, match model
        c8 = ((c8 << 8) | (c4 >> 24)) & M32
        c4 = ((c4 << 8) | byte) & M32
        if (65 <= byte <= 90) or (97 <= byte <= 122):
            lower = byte | 32
            word = ((word + lower) * 0x01000193) & M32
        elif word != 0:
            pword = word
            word = 0
        col = 0 if byte == 10 else (col + 1 if col < 255 else 255)
        buf[pos & 0x3FFFFF] = byte
        pos += 1
        if mlen > 0 and expected - 256 == byte:
            mlen += 1
            mptr += 1
        else:
            mlen = 0
        if pos >= 6:
            h6 = (((c4 & M32) * 0x2E3779B1 + (c8 & 0xFFFF) * 0x7FEB352D) & M32) >> 12
            if mlen == 0:
                cand = int(match_table[h6])
                if cand > 0 and pos - cand < 0x3FFFFF:
                    ln = 0
                    while ln < 32 and ln < cand and buf[(cand - 1 - ln) & 0x3FFFFF] == buf[(pos - 1 - ln) & 0x3FFFFF]:
                        ln += 1
                    if ln >= 6:
                        mlen = ln
                        mptr = cand
            match_table[h6] = pos
    if encode == 1:
        for _ in range(4):  # enough of x1 to pin the final interval
            out[op] = (x1 >> 24) & 0xFF
            op += 1
            x1 = (x1 << 8) & M32
    regs[0], regs[1], regs[2], regs[3], regs[4], regs[5], regs[6], regs[7] = pos, mptr, mlen, c4, c8, word, pword, col
    return op if encode == 1 else n_bytes


MODELS = {"full": 0, "fast": 1, "max": 2}
ONE_LAYER = 3  # not a level: the full model's two mixers, averaged, at max's rate; max without
# its second layer and four extra mixers (benchmarks/zip_profile.py's "statistics, one layer" row)


def encode(state: State, data: bytes, interpreted: bool = False) -> bytes:
    """The payload for `data`; `state` learns from it (the next block continues from there)."""
    inp = np.frombuffer(data, dtype=np.uint8)
    out = np.zeros(len(data) + len(data) // 8 + 64, dtype=np.uint8)
    fn = _code.py_func if interpreted and hasattr(_code, "py_func") else _code
    size = fn(1, inp, len(data), out, 0, *state.arrays())
    return out[:size].tobytes()


def decode(state: State, payload: bytes, n: int, interpreted: bool = False) -> bytes:
    inp = np.frombuffer(payload, dtype=np.uint8)
    out = np.zeros(n, dtype=np.uint8)
    fn = _code.py_func if interpreted and hasattr(_code, "py_func") else _code
    fn(0, inp, len(payload), out, n, *state.arrays())
    return out.tobytes()
