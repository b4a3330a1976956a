"""The KV cache: every layer's keys and values for B rows of equal length, so that decoding one
more token costs one position instead of the whole prefix.

A cache is a chain of read-only *segments* shared by reference, followed by a private, growing
*tail*. Writes only ever go to the tail, and only after what it holds. `fork()` gives the child
the parent's segments plus a view of the parent's tail as it is now, and a fresh empty tail of
its own; the parent keeps appending to its buffer, which never changes the viewed positions, so
holding a fork costs nothing (the shared-prefix idea of SGLang's `fork`, kept in plain tensors).
`expand(n)` does the same for n rows from one prefill.

Segments are only read, never attended to in pieces: the first write to a cache that has them
copies them once into its own buffer (`_flatten`, each shared row into all rows: nanochat's copy
of one prefill into N rows), and from then on a step writes one position into a preallocated,
doubling buffer and attention reads a view of it: O(1) amortised per step, in every layer. A fork
shares at most one segment (a view of its parent's buffer), so chains of forks never grow. A fork
that is never decoded (a branch point nobody takes) copies nothing.

    cache = KVCache.for_model(model); logits, _ = model(ids, cache=cache)  # prefill
    logits, _ = model(next_id, cache=cache)                                # one decode step
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

FORK_CAPACITY = 32  # initial tail positions of a fork (it doubles when full)


@dataclass(frozen=True)
class Segment:
    """Immutable keys and values of `length` consecutive positions: (n_layer, b, nh, length, hs)
    each, where b is 1 (shared by all rows) or the cache's row count."""

    k: Tensor
    v: Tensor

    @property
    def length(self) -> int:
        return self.k.size(3)

    @property
    def rows(self) -> int:
        return self.k.size(1)

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2


class KVCache:
    """Keys/values of n_layer layers for `batch` rows; `length` positions so far (all rows alike)."""

    def __init__(self, n_layer: int, n_head: int, head_size: int, batch: int = 1, *,
                 capacity: int = 64, dtype: torch.dtype = torch.float32, device="cpu",
                 segments: tuple[Segment, ...] = ()) -> None:
        self.n_layer, self.n_head, self.head_size, self.batch = n_layer, n_head, head_size, batch
        self.dtype, self.device = dtype, torch.device(device)
        self.segments: tuple[Segment, ...] = segments
        self.prefix_len = sum(s.length for s in segments)
        self.tail_len = 0
        self._capacity = max(1, capacity)
        self._k: Tensor | None = None  # (n_layer, B, nh, capacity, hs), allocated on first write
        self._v: Tensor | None = None
        self._pending = 0  # tokens written by the current forward, counted on advance()

    @classmethod
    def for_model(cls, model, batch: int = 1, capacity: int | None = None) -> KVCache:
        cfg = model.cfg
        p = next(model.parameters())
        return cls(cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, batch,
                   capacity=capacity or cfg.context_length, dtype=p.dtype, device=p.device)

    @property
    def length(self) -> int:
        return self.prefix_len + self.tail_len

    @property
    def nbytes_private(self) -> int:
        """Bytes held by this cache alone (its tail buffer), excluding shared segments."""
        return 0 if self._k is None else self._k.numel() * self._k.element_size() * 2

    # --- writing (called by the model's attention layers) ---------------------------------------

    def _reserve(self, n: int) -> None:
        if self.segments:  # the first write after a fork, expand or a prefix-tree match
            self._flatten(n)
        need = self.tail_len + n
        if self._k is not None and need <= self._k.size(3):
            return
        cap = max(need, self._capacity if self._k is None else 2 * self._k.size(3))
        k, v = self._alloc(cap)
        if self._k is not None and self.tail_len:  # grow: keep what is there
            k[:, :, :, : self.tail_len] = self._k[:, :, :, : self.tail_len]
            v[:, :, :, : self.tail_len] = self._v[:, :, :, : self.tail_len]
        self._k, self._v = k, v

    def _alloc(self, cap: int) -> tuple[Tensor, Tensor]:
        shape = (self.n_layer, self.batch, self.n_head, cap, self.head_size)
        return (torch.empty(shape, dtype=self.dtype, device=self.device),
                torch.empty(shape, dtype=self.dtype, device=self.device))

    def _flatten(self, n: int) -> None:
        """Copy the shared segments into this cache's own buffer (each one-row segment into every
        row), once: from then on a step writes one position and attention reads a view, so a step
        costs O(1) amortised instead of concatenating the whole prefix in every layer, and forks of
        this cache share one segment, not a growing chain. (A cache with segments has no tail yet:
        forks, expand and tree matches start empty, and every write comes here first.)"""
        L = self.prefix_len
        k, v = self._alloc(max(L + n, self._capacity, L + FORK_CAPACITY))
        at = 0
        for s in self.segments:
            k[:, :, :, at : at + s.length] = s.k  # (n_layer, 1 or B, nh, len, hs): rows broadcast
            v[:, :, :, at : at + s.length] = s.v
            at += s.length
        self._k, self._v = k, v
        self.segments, self.prefix_len, self.tail_len = (), 0, L

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store layer `layer`'s new keys/values k, v (B, nh, T, hs) after the cached ones and
        return all of them, (B, nh, length + T, hs) each, as views of the buffer (no copy). The
        length grows on `advance(T)`."""
        B, _, T, _ = k.shape
        if B != self.batch:
            raise ValueError(f"cache has {self.batch} rows, the input {B}")
        if layer == 0:
            self._reserve(T)
            self._pending = T
        end = self.tail_len + T
        self._k[layer, :, :, self.tail_len : end] = k
        self._v[layer, :, :, self.tail_len : end] = v
        return self._k[layer, :, :, :end], self._v[layer, :, :, :end]  # views, no copy

    def advance(self, T: int) -> None:
        """Called once per forward pass, after every layer has written its T new positions."""
        if T != self._pending:
            raise ValueError(f"advance({T}) after writing {self._pending} positions")
        self.tail_len += T
        self._pending = 0

    # --- sharing -----------------------------------------------------------------------------------

    def _shared(self) -> tuple[Segment, ...]:
        """The chain a child shares: the segments plus a read-only view of the tail so far. The
        tail is append-only (writes go after tail_len; growth moves to a new buffer), so the view
        never changes after it is taken, and this cache keeps decoding into its own buffer."""
        if not self.tail_len:
            return self.segments
        return (*self.segments, Segment(self._k[:, :, :, : self.tail_len], self._v[:, :, :, : self.tail_len]))

    def _child(self, batch: int, segments: tuple[Segment, ...]) -> KVCache:
        return KVCache(self.n_layer, self.n_head, self.head_size, batch, capacity=FORK_CAPACITY,
                       dtype=self.dtype, device=self.device, segments=segments)

    def fork(self) -> KVCache:
        """A cache with the same contents that shares every position stored so far; both may
        then grow independently (neither copies what the other wrote)."""
        return self._child(self.batch, self._shared())

    def expand(self, n: int) -> KVCache:
        """A cache of n rows from a one-row cache (n samples from one prefill), sharing it."""
        if self.batch != 1:
            raise ValueError(f"expand needs a one-row cache, this one has {self.batch} rows")
        return self._child(n, self._shared())

    def select(self, rows: list[int] | Tensor) -> KVCache:
        """A cache of the given rows (in that order, repeats allowed): beam search reorders its
        beams with this and finished rows are dropped. Shared one-row segments stay shared."""
        idx = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        segs = tuple(s if s.rows == 1 else Segment(s.k.index_select(1, idx), s.v.index_select(1, idx))
                     for s in self.segments)
        out = self._child(len(idx), segs)
        if self.tail_len:
            out._k = self._k[:, :, :, : self.tail_len].index_select(1, idx)
            out._v = self._v[:, :, :, : self.tail_len].index_select(1, idx)
            out.tail_len = self.tail_len
        return out

    def materialize(self) -> tuple[Tensor, Tensor]:
        """All positions as two contiguous tensors, (n_layer, B, nh, length, hs) each."""
        parts_k = [s.k.expand(-1, self.batch, -1, -1, -1) for s in self.segments]
        parts_v = [s.v.expand(-1, self.batch, -1, -1, -1) for s in self.segments]
        if self.tail_len:
            parts_k.append(self._k[:, :, :, : self.tail_len])
            parts_v.append(self._v[:, :, :, : self.tail_len])
        if not parts_k:
            shape = (self.n_layer, self.batch, self.n_head, 0, self.head_size)
            return torch.empty(shape, dtype=self.dtype), torch.empty(shape, dtype=self.dtype)
        return torch.cat(parts_k, dim=3), torch.cat(parts_v, dim=3)

    @classmethod
    def stack(cls, caches: list[KVCache], capacity: int | None = None) -> KVCache:
        """One batched cache whose rows are the rows of `caches` (all of the same length), copied
        into a private tail: requests that arrive together decode as one batch."""
        first = caches[0]
        if any(c.length != first.length for c in caches):
            raise ValueError("stacked caches must have the same length")
        batch = sum(c.batch for c in caches)
        out = KVCache(first.n_layer, first.n_head, first.head_size, batch,
                      capacity=capacity or first._capacity, dtype=first.dtype, device=first.device)
        if first.length:
            ks, vs = zip(*(c.materialize() for c in caches), strict=True)
            out._reserve(first.length)
            out._k[:, :, :, : first.length] = torch.cat(ks, dim=1)
            out._v[:, :, :, : first.length] = torch.cat(vs, dim=1)
            out.tail_len = first.length
        return out

    @classmethod
    def from_tensors(cls, k: Tensor, v: Tensor, capacity: int = 64) -> KVCache:
        """A one-row cache whose (shared, read-only) contents are k, v: (n_layer, 1, nh, T, hs)."""
        n_layer, b, nh, _, hs = k.shape
        return cls(n_layer, nh, hs, b, capacity=capacity, dtype=k.dtype, device=k.device,
                   segments=(Segment(k, v),) if k.size(3) else ())
