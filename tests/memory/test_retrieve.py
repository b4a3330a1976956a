"""The datastore: exact search, same-document and overlap filters, BM25 over byte 4-grams, and
the kNN-LM leakage canary (planted held-out text collapses its loss unless the filter drops it)."""

import numpy as np
import pytest
import torch

from imo.errors import ConfigError
from imo.model import GPT, ModelConfig
from imo.retrieve.datastore import Chunks, Retriever, alphas, ngram_rows, ngrams, overlap
from imo.retrieve.knnlm import build_store, knn_bpb, merge

pytest.importorskip("faiss")
pytest.importorskip("bm25s")

WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho".split()


def text(n_words: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return b" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n_words))


def test_chunks_and_overlap():
    ch = Chunks.from_docs([b"a" * 70, b"b" * 64, b"c" * 10], chunk=32, first_doc=5)
    assert len(ch) == 4 and ch.doc.tolist() == [5, 5, 6, 6] and ch.nxt.tolist() == [1, -1, 3, -1]
    assert ch.start.tolist() == [0, 32, 70, 102]
    both = ch.with_continuations(np.array([0, 1]))
    assert bytes(both[0]) == b"a" * 64 and bytes(both[1][32:]) == bytes(32)
    assert ngrams(np.frombuffer(b"abcdefghi", np.uint8)).tolist() == [int.from_bytes(b"abcdefgh", "big"),
                                                                     int.from_bytes(b"bcdefghi", "big")]
    q = np.frombuffer(b"the quick brown fox jumps over the lazy dog", np.uint8)
    assert overlap(q, q) == 1.0 and overlap(q, np.frombuffer(b"0123456789" * 4, np.uint8)) == 0.0
    half = np.frombuffer(b"the quick brown fox ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~", np.uint8)
    assert 0.2 < overlap(q, half) < 0.6
    codes = ngram_rows(np.stack([q, q]))
    assert alphas(codes, codes[:, None, :]).ravel().tolist() == [1.0, 1.0]
    concat = ch.concat(ch)
    assert len(concat) == 8 and concat.nxt.tolist()[4:] == [5, -1, 7, -1]
    with pytest.raises(ConfigError):
        Chunks.from_docs([b"x" * 100], chunk=4)


def test_dense_search_is_exact_and_filters_documents():
    rng = np.random.default_rng(0)
    ch = Chunks.from_bytes(text(3000, 1), chunk=32, doc_bytes=256)
    vec = rng.standard_normal((len(ch), 16)).astype(np.float32)
    dense = Retriever(ch, "dense", vectors=vec)
    q = vec[:20] + 0.01 * rng.standard_normal((20, 16)).astype(np.float32)
    brute = np.argsort(((q[:, None] - vec[None]) ** 2).sum(-1), 1)[:, :3]
    assert np.array_equal(dense.candidates(ch.data[:20], 3, q), brute)
    own = dense.search(ch.data[:20], k=2, vectors=q, max_overlap=None)
    assert own.index[:, 0].tolist() == list(range(20))  # itself, when nothing is filtered
    hits = dense.search(ch.data[:20], k=2, query_doc=ch.doc[:20], vectors=q, max_overlap=None)
    assert (hits.index >= 0).all() and (ch.doc[hits.index] != ch.doc[:20, None]).all() and hits.dropped > 0


def test_bm25_finds_the_words_and_the_overlap_filter_drops_copies():
    ch = Chunks.from_bytes(text(3000, 2), chunk=32, doc_bytes=512)
    bm25 = Retriever(ch, "bm25")
    raw = bm25.search(ch.data[:30], k=2, max_overlap=None)
    assert (raw.index[:, 0] == np.arange(30)).mean() > 0.9 and np.nanmin(raw.alpha[:, 0]) > 0.9
    clean = bm25.search(ch.data[:30], k=2, max_overlap=0.2)
    kept = clean.alpha[clean.index >= 0]
    assert len(kept) and (kept <= 0.2).all() and clean.dropped > 0
    with pytest.raises(ConfigError, match="dense or bm25"):
        Retriever(ch, "hnsw")


def test_knn_lm_leakage_canary():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_embd=32, n_head=2, context_length=64)).eval()
    train = np.frombuffer(text(4000, 3), np.uint8)
    canary = np.random.default_rng(4).integers(0, 256, 640).astype(np.uint8)  # held out, incompressible
    store = build_store(model, train, max_keys=8192)
    leaked = merge(store, build_store(model, canary, max_keys=4096, first_doc=10**6))
    kw = dict(k=4, lambdas=(0.0, 0.5), max_overlaps=(0.2, 1.0), max_windows=None)
    clean, dirty = knn_bpb(model, store, canary, **kw), knn_bpb(model, leaked, canary, **kw)
    assert clean["by_overlap"]["1"]["bpb"]["0"] == pytest.approx(clean["bpb_lm"], rel=1e-6)
    base = clean["by_overlap"]["1"]["bpb"]["0.5"]
    assert dirty["by_overlap"]["1"]["bpb"]["0.5"] < 0.5 * base  # copied from the planted text
    assert dirty["by_overlap"]["0.2"]["bpb"]["0.5"] == pytest.approx(clean["by_overlap"]["0.2"]["bpb"]["0.5"], abs=0.1)


def test_dense_keys_from_the_frozen_model():
    from imo.retrieve.knnlm import embed_chunks

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_embd=32, n_head=2, context_length=64)).eval()
    ch = Chunks.from_bytes(text(800, 5), chunk=32, doc_bytes=256)
    vec = embed_chunks(model, ch.data, batch=7)
    assert vec.shape == (len(ch), 32) and np.allclose(vec, embed_chunks(model, ch.data))
    dense = Retriever(ch, "dense", vectors=vec)
    own = dense.search(ch.data[:10], k=1, vectors=vec[:10], max_overlap=None)
    assert own.index[:, 0].tolist() == list(range(10))
