"""A datastore of byte chunks, searched exactly (faiss IndexFlatL2) or by BM25 (bm25s over byte
4-grams), with the filter that keeps retrieval honest.

RETRO (Borgeaud et al. 2022) removes neighbours from the same document as the query while
training, and reports quality against the overlap between an evaluation chunk and its
neighbours: text that is in the datastore verbatim makes retrieval look better than it is. Here a
neighbour is dropped when it comes from the query's document, or when its overlap alpha with the
query reaches `max_overlap`, where alpha is the fraction of the query's 8-grams that occur in the
neighbour chunk or its continuation (8 bytes pack into one uint64, so the test is exact).
lucidrains' RETRO-pytorch filters by document id the same way (`doc_ids_memmap_path`).

A corpus without document boundaries is cut into documents of `doc_bytes` bytes.

    chunks = Chunks.from_bytes(train_bytes, chunk=32, doc_bytes=2048)
    dense = Retriever(chunks, "dense", vectors=embeddings)       # (N, d) float32
    hits = dense.search(chunks.data[:10], k=2, query_doc=chunks.doc[:10], vectors=embeddings[:10])
    hits.index, hits.alpha                                        # (Q, k): -1 where none is left
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imo.errors import ConfigError

NGRAM = 8  # the overlap unit (RETRO's evaluation uses token n-grams; bytes here)
BM25_GRAM = 4  # BM25 terms: byte 4-grams (Doostmohammadi et al. 2023 use word tokens)


@dataclass
class Chunks:
    data: np.ndarray  # (N, chunk) uint8
    doc: np.ndarray  # (N,) int64 document id
    start: np.ndarray  # (N,) int64 byte offset of the chunk in its source
    nxt: np.ndarray  # (N,) int64 the next chunk of the same document, -1 at a document's end

    @classmethod
    def from_docs(cls, docs: Sequence[bytes], chunk: int = 32, first_doc: int = 0) -> "Chunks":
        """Each document's whole chunks (a ragged tail is dropped); ids first_doc, first_doc + 1, ..."""
        if chunk < NGRAM:
            raise ConfigError(f"chunk must be >= {NGRAM} bytes (the overlap n-gram), got {chunk}")
        rows, doc, start, nxt, offset = [], [], [], [], 0
        for d, text in enumerate(docs):
            n = len(text) // chunk
            if n:
                rows.append(np.frombuffer(bytes(text[: n * chunk]), dtype=np.uint8).reshape(n, chunk))
                base = sum(len(r) for r in rows[:-1])
                doc += [first_doc + d] * n
                start += [offset + i * chunk for i in range(n)]
                nxt += [base + i + 1 for i in range(n - 1)] + [-1]
            offset += len(text)
        if not rows:
            raise ConfigError(f"no document holds a whole chunk of {chunk} bytes")
        return cls(np.concatenate(rows), np.array(doc, dtype=np.int64), np.array(start, dtype=np.int64),
                   np.array(nxt, dtype=np.int64))

    @classmethod
    def from_bytes(cls, data, chunk: int = 32, doc_bytes: int = 2048, first_doc: int = 0) -> "Chunks":
        if doc_bytes < chunk:
            raise ConfigError(f"doc_bytes ({doc_bytes}) must be >= chunk ({chunk})")
        data = data if isinstance(data, bytes | bytearray) else np.asarray(data, dtype=np.uint8).tobytes()
        return cls.from_docs([data[i : i + doc_bytes] for i in range(0, len(data), doc_bytes)], chunk, first_doc)

    def __len__(self) -> int:
        return len(self.data)

    def with_continuations(self, idx: np.ndarray) -> np.ndarray:
        """(..., 2 * chunk) uint8: each chunk followed by its continuation (zeros at a document end)."""
        cont = np.where((self.nxt[idx] >= 0)[..., None], self.data[np.maximum(self.nxt[idx], 0)], 0)
        return np.concatenate([self.data[idx], cont.astype(np.uint8)], -1)

    def concat(self, other: "Chunks") -> "Chunks":
        """This datastore with another's chunks after it (e.g. planted canaries)."""
        n = len(self)
        return Chunks(np.concatenate([self.data, other.data]), np.concatenate([self.doc, other.doc]),
                      np.concatenate([self.start, other.start]),
                      np.concatenate([self.nxt, np.where(other.nxt >= 0, other.nxt + n, -1)]))


def ngrams(row: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """The n-grams (n <= 8) of a uint8 row as uint64 codes (exact, no hashing)."""
    row = np.asarray(row, dtype=np.uint64)
    if len(row) < n:
        return np.zeros(0, dtype=np.uint64)
    code = np.zeros(len(row) - n + 1, dtype=np.uint64)
    for i in range(n):
        code = (code << np.uint64(8)) | row[i : len(row) - n + 1 + i]
    return code


def overlap(query: np.ndarray, neighbour: np.ndarray) -> float:
    """alpha: the fraction of the query's 8-grams that occur in the neighbour."""
    q = ngrams(query)
    return float(np.isin(q, ngrams(neighbour)).mean()) if len(q) else 0.0


def ngram_rows(rows: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """ngrams() of every row of a (..., L) uint8 array: (..., L - n + 1) uint64."""
    rows = np.asarray(rows, dtype=np.uint64)
    L = rows.shape[-1]
    code = np.zeros(rows.shape[:-1] + (L - n + 1,), dtype=np.uint64)
    for i in range(n):
        code = (code << np.uint64(8)) | rows[..., i : L - n + 1 + i]
    return code


def alphas(query_codes: np.ndarray, cand_codes: np.ndarray) -> np.ndarray:
    """alpha of every candidate: query_codes (Q, a), cand_codes (Q, K, b) -> (Q, K)."""
    hit = (query_codes[:, None, :, None] == cand_codes[:, :, None, :]).any(-1)  # (Q, K, a)
    return hit.mean(-1)


@dataclass
class Hits:
    index: np.ndarray  # (Q, k) int64 chunk ids, -1 where fewer than k survived the filter
    alpha: np.ndarray  # (Q, k) float overlap of each kept neighbour with its query (nan for -1)
    dropped: int  # candidates removed by the filter, over all queries


class Retriever:
    """Exact L2 search over `vectors` (kind "dense") or BM25 over byte 4-grams (kind "bm25")."""

    def __init__(self, chunks: Chunks, kind: str = "bm25", vectors: np.ndarray | None = None) -> None:
        self.chunks, self.kind = chunks, kind
        if kind == "dense":
            import faiss

            if vectors is None or len(vectors) != len(chunks):
                raise ConfigError("dense retrieval needs one vector per chunk")
            self.index = faiss.IndexFlatL2(vectors.shape[1])
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        elif kind == "bm25":
            import bm25s

            self.index = bm25s.BM25()
            self.index.index([terms(r) for r in chunks.data], show_progress=False)
        else:
            raise ConfigError(f"unknown retrieval kind {kind!r}; choose dense or bm25")

    def candidates(self, queries: np.ndarray, k: int, vectors: np.ndarray | None = None) -> np.ndarray:
        """(Q, k) nearest chunk ids, unfiltered, best first."""
        k = min(k, len(self.chunks))
        if self.kind == "dense":
            if vectors is None:
                raise ConfigError("dense search needs the query vectors")
            _, idx = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
            return idx.astype(np.int64)
        idx, _ = self.index.retrieve([terms(q) for q in queries], k=k, show_progress=False, n_threads=1)
        return np.asarray(idx, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int = 2, query_doc: np.ndarray | None = None,
               vectors: np.ndarray | None = None, max_overlap: float | None = 0.2, extra: int = 16) -> Hits:
        """The k best neighbours of each query chunk (Q, chunk) that pass the filter: not from
        query_doc (Q,) (None: no document filter) and alpha <= max_overlap (None: no overlap filter)."""
        cand = self.candidates(queries, k + extra, vectors)  # (Q, K)
        a = alphas(ngram_rows(queries), ngram_rows(self.chunks.with_continuations(np.maximum(cand, 0))))
        keep = cand >= 0
        if query_doc is not None:
            keep &= self.chunks.doc[np.maximum(cand, 0)] != np.asarray(query_doc)[:, None]
        if max_overlap is not None:
            keep &= a <= max_overlap
        index = np.full((len(cand), k), -1, dtype=np.int64)
        alpha = np.full((len(cand), k), np.nan)
        for q in range(len(cand)):  # the first k survivors, in rank order
            kept = np.flatnonzero(keep[q])[:k]
            index[q, : len(kept)], alpha[q, : len(kept)] = cand[q, kept], a[q, kept]
        return Hits(index, alpha, int((~keep & (cand >= 0)).sum()))


def terms(row: np.ndarray) -> list[str]:
    """BM25 terms of a byte chunk: its overlapping 4-grams, as latin-1 strings."""
    text = bytes(np.asarray(row, dtype=np.uint8)).decode("latin-1")
    return [text[i : i + BM25_GRAM] for i in range(len(text) - BM25_GRAM + 1)]
