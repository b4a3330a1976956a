"""Context statistics for `imo zip`: order-k byte counts and a match model, vectorised over
parallel streams.

Every table is shared by the B streams that `imo zip` codes side by side; each step looks up
one context per stream (numpy fancy indexing over the batch) and updates the tables with the B
new bytes in one fixed order, so the encoder and the decoder, which call the same methods with
the same bytes, hold the same tables.

* `OrderModels`: for k = 0..N, counts of the next byte after the last k bytes (orders 1 and 2
  indexed directly, higher orders hashed into a table with a 16-bit check per slot; a slot whose
  check differs belongs to another context and is treated as empty, then taken over). Each
  order's counts are turned into a distribution by interpolated absolute discounting
  (Kneser & Ney 1995; Witten-Bell / PPM blending with a fixed discount): the order-k estimate is
  `(max(c - D, 0) + D * distinct * p_{k-1}) / total`, so it leans on the shorter context exactly
  as much as the longer one has been surprised. Every order's estimate is returned; the mixer
  (imo.zip.mixer) weighs them.
* `MatchModel`: the last place where the current 6-byte context occurred (in any stream) predicts
  that the byte that followed it then follows now (LZ77's idea, as in PAQ's match model); its
  confidence is the hit rate observed so far for the current match length.

    om = OrderModels(streams=16, max_order=5, table_bits=18)
    logp = om.predict(m)          # (N+1, m, 256) log-probabilities, float32
    om.update(symbols)            # (m,) uint8 bytes just coded
"""

from __future__ import annotations

import numpy as np

# Odd 64-bit multipliers (from splitmix64's and the golden ratio's constants) used to hash
# contexts; one per order so that equal byte values of different orders land apart.
_MULT = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93,
                  0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3, 0x589965CC75374CC3,
                  0x1D8E4E27C47D124F], dtype=np.uint64)


def add_counts(table: np.ndarray, flat: np.ndarray) -> None:
    """table.flat[i] += 1 for every i in `flat`, duplicates counted (np.add.at, but faster for
    the few dozen indices of a step)."""
    where, times = np.unique(flat, return_counts=True)
    view = table.reshape(-1)
    view[where] += times.astype(table.dtype)


class OrderModels:
    """Counts of the next byte after each of the contexts of order 0..max_order (see module doc)."""

    def __init__(self, streams: int, max_order: int = 5, table_bits: int = 18, discount: float = 0.6,
                 limit: int = 1023, words: bool = True):
        if not 1 <= max_order <= 8:
            raise ValueError("max_order must be in 1..8")
        self.streams, self.max_order, self.table_bits = streams, max_order, table_bits
        self.discount, self.limit = np.float32(discount), limit
        self.hist = np.zeros(streams, dtype=np.uint64)  # last 8 bytes of each stream, newest lowest
        # word contexts (as in PAQ's word model): a hash of the letters of the current word, and
        # of the current and the previous word; each backs off to the order-2 estimate
        self.words = words
        self.word = np.zeros(streams, dtype=np.uint64)
        self.prev_word = np.zeros(streams, dtype=np.uint64)
        self.n_ctx = max_order + 1 + (2 if words else 0)
        self.tables: list[np.ndarray] = []
        self.checks: list[np.ndarray | None] = []
        for k in range(self.n_ctx):
            rows = 1 << min(8 * k if k <= max_order else 64, table_bits)
            # one extra row that stays zero: where a hashed slot belongs to another context, the
            # lookup reads it instead (cheaper than masking 256 counts per stream)
            self.tables.append(np.zeros((rows + 1, 256), dtype=np.uint16))  # lazily paged by the OS
            self.checks.append(np.zeros(rows, dtype=np.uint16) if 8 * k > table_bits else None)
        self._slots: list[np.ndarray] = []
        self._valid: list[np.ndarray | None] = []
        self._chk: list[np.ndarray | None] = []
        self.hit_order = np.zeros(streams, dtype=np.int64)

    def reset_streams(self) -> None:
        """New block: every stream starts with an empty context (the tables are kept)."""
        self.hist[:] = 0
        self.word[:] = 0
        self.prev_word[:] = 0

    def _locate(self, m: int) -> None:
        """Slot (and check) of each order's context for the first m streams."""
        h = self.hist[:m]
        self._slots, self._valid, self._chk = [], [], []
        for k in range(self.n_ctx):
            if self.checks[k] is None:
                self._slots.append((h & np.uint64((1 << (8 * k)) - 1)).astype(np.int64))
                self._valid.append(None)
                self._chk.append(None)
                continue
            if k <= self.max_order:
                ctx = h & np.uint64((1 << (8 * k)) - 1) if k < 8 else h
            elif k == self.max_order + 1:
                ctx = self.word[:m] + (h & np.uint64(0xFF)) * np.uint64(0x100000001B3)
            else:
                ctx = self.word[:m] ^ (self.prev_word[:m] * np.uint64(0x2545F4914F6CDD1D))
            x = (ctx + np.uint64(k)) * _MULT[k]
            slot = (x >> np.uint64(64 - self.table_bits)).astype(np.int64)
            chk = ((x >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.uint16) | np.uint16(1)  # 0: never used
            self._slots.append(slot)
            self._chk.append(chk)
            self._valid.append(self.checks[k][slot] == chk)

    def predict(self, m: int) -> np.ndarray:
        """(contexts, m, 256) log-probabilities of the next byte: orders 0..N, then the word
        contexts."""
        self._locate(m)
        d = self.discount
        p = np.full((m, 256), 1.0 / 256, dtype=np.float32)
        out = np.empty((self.n_ctx, m, 256), dtype=np.float32)
        hit = np.zeros(m, dtype=np.int64)
        for k in range(self.n_ctx):
            if k > self.max_order:
                p = out[min(2, self.max_order)]  # word contexts back off to order 2
            slot = self._slots[k]
            if self._valid[k] is not None:
                slot = np.where(self._valid[k], slot, len(self.tables[k]) - 1)
            c = self.tables[k][slot].astype(np.float32)  # (m, 256)
            total = c.sum(1)
            distinct = np.count_nonzero(c, axis=1).astype(np.float32)
            unseen = (total == 0).astype(np.float32)  # then the estimate below is p itself
            if k <= self.max_order:
                hit[unseen == 0] = k
            np.subtract(c, d, out=c)
            np.maximum(c, 0.0, out=c)
            inv = 1.0 / (total + unseen)
            c *= inv[:, None]
            c += ((d * distinct + unseen) * inv)[:, None] * p  # escape mass times the lower order
            out[k] = p = c
        self.hit_order[:m] = hit
        np.log(out, out=out)
        return out

    def update(self, symbols: np.ndarray) -> None:
        """Count the m new bytes in every order's context, then shift them into the histories."""
        m = len(symbols)
        sym = symbols.astype(np.int64)
        for k in range(self.n_ctx):
            table, slot = self.tables[k], self._slots[k]
            if self._valid[k] is not None:
                stale = ~self._valid[k]
                if stale.any():  # a slot never used, or owned by another context: take it over
                    owned = self.checks[k][slot[stale]] != 0
                    table[slot[stale][owned]] = 0  # never-used rows are zero already (and unpaged)
                    self.checks[k][slot[stale]] = self._chk[k][stale]
            add_counts(table, slot * 256 + sym)
            over = table[slot, sym] > self.limit
            if over.any():  # keep counts small so that old statistics fade (non-stationarity)
                rows = np.unique(slot[over])
                table[rows] >>= 1
        self.hist[:m] = (self.hist[:m] << np.uint64(8)) | sym.astype(np.uint64)
        if self.words:
            lower = sym | 0x20  # ASCII letters case-folded
            letter = (lower >= ord("a")) & (lower <= ord("z"))
            word = self.word[:m]
            ended = ~letter & (word != 0)
            self.prev_word[:m] = np.where(ended, word, self.prev_word[:m])
            grown = (word + lower.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
            self.word[:m] = np.where(letter, grown, np.uint64(0))


class MatchModel:
    """Predicts the byte that followed the last occurrence of the current context (module doc)."""

    MIN_LEN = 6
    MAX_BUCKET = 15

    def __init__(self, streams: int, capacity: int, table_bits: int = 20):
        self.streams, self.table_bits = streams, table_bits
        self.buf = np.zeros(capacity * streams + streams, dtype=np.uint8)  # step-major history
        self.table = np.zeros(1 << table_bits, dtype=np.int64)  # context hash -> flat position + 1 (0: none)
        self.ptr = np.full(streams, -1, dtype=np.int64)  # flat position of the predicted byte
        self.length = np.zeros(streams, dtype=np.int64)
        self.hist = np.zeros(streams, dtype=np.uint64)
        self.step = 0
        # hits and tries per match-length bucket (adaptive confidence), shared by all streams
        self.hits = np.ones(self.MAX_BUCKET + 1, dtype=np.float64)
        self.tries = np.full(self.MAX_BUCKET + 1, 2.0)
        self._pred = np.zeros(streams, dtype=np.int64)
        self._has = np.zeros(streams, dtype=bool)

    def reset_streams(self) -> None:
        self.ptr[:] = -1
        self.length[:] = 0
        self.hist[:] = 0
        self.table = np.zeros_like(self.table)  # positions of the last block mean nothing now
        self.step = 0

    def predict(self, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(m, 256) log-probabilities, the predicted byte and the length bucket per stream (bucket
        0: no match, the row is uniform)."""
        has = self.ptr[:m] >= 0
        pred = np.where(has, self.buf[np.maximum(self.ptr[:m], 0)], 0).astype(np.int64)
        bucket = np.where(has, np.minimum(self.length[:m] + 1, self.MAX_BUCKET), 0)
        q = (self.hits / self.tries)[bucket]
        logp = np.empty((m, 256), dtype=np.float32)
        logp[:] = np.log((1 - q) / 255).astype(np.float32)[:, None]
        logp[np.arange(m), pred] = np.log(q).astype(np.float32)
        logp[~has] = -np.log(256.0)
        self._pred[:m], self._has[:m] = pred, has
        self._bucket = bucket
        return logp, pred, bucket

    def update(self, symbols: np.ndarray) -> None:
        m = len(symbols)
        sym = symbols.astype(np.int64)
        has, pred, bucket = self._has[:m], self._pred[:m], self._bucket
        hit = has & (pred == sym)
        self.tries += np.bincount(bucket[has], minlength=self.MAX_BUCKET + 1)
        self.hits += np.bincount(bucket[hit], minlength=self.MAX_BUCKET + 1)
        over = self.tries > 4096  # fade old evidence
        self.hits[over] *= 0.5
        self.tries[over] *= 0.5
        base = self.step * self.streams
        self.buf[base:base + m] = symbols
        ptr = self.ptr[:m]
        self.length[:m] = np.where(hit, self.length[:m] + 1, 0)
        ptr[:] = np.where(hit, ptr + self.streams, -1)
        h = (self.hist[:m] << np.uint64(8)) | sym.astype(np.uint64)
        self.hist[:m] = h
        key = ((h & np.uint64((1 << (8 * self.MIN_LEN)) - 1)) * _MULT[8]) >> np.uint64(64 - self.table_bits)
        key = key.astype(np.int64)
        here = base + np.arange(m)
        cand = self.table[key] - 1
        lost = (ptr < 0) & (cand >= 0)
        ptr[lost] = cand[lost] + self.streams
        self.table[key] = here + 1
        self.step += 1
