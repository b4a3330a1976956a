"""kNN-LM (Khandelwal et al. 2020, "Generalization through Memorization"): interpolate a frozen
language model with a nearest-neighbour distribution over a datastore, with no training.

The datastore maps the model's final hidden state (the output of its last LayerNorm) at a
training position to the byte that followed. At an evaluation position the k nearest keys
(exact L2, faiss IndexFlatL2) vote with weights softmax(-distance) for their next bytes, and
p = lambda * p_knn + (1 - lambda) * p_lm. The paper reports WikiText-103 perplexity 18.65 ->
15.79 this way. Here every figure also says which neighbours were allowed: a neighbour is kept only
if it comes from another document and its overlap alpha (imo.retrieve.datastore: the fraction
of the query's last-32-byte 8-grams found in the key's 32 bytes plus its next byte) is at most
`max_overlap`. With max_overlap 1 nothing is filtered, and text planted in the datastore (the
leakage canary) is copied from it; where no neighbour survives, p = p_lm.

    store = build_store(model, train_bytes, max_keys=100_000)
    out = knn_bpb(model, store, val_bytes, lambdas=(0.1, 0.25), max_overlaps=(0.0, 0.2, 1.0))
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.retrieve.datastore import alphas, ngram_rows

WINDOW = 32  # bytes of context compared for overlap (RETRO-lite's chunk)
LN2 = float(np.log(2))


@torch.no_grad()
def hidden_states(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(hidden (B, T, C) after the last LayerNorm, log-probabilities (B, T, vocab)) of a byte GPT."""
    seen = {}
    handle = model.transformer.ln_f.register_forward_hook(lambda m, i, o: seen.__setitem__("h", o))
    try:
        logits, _ = model(x)
    finally:
        handle.remove()
    return seen["h"], torch.log_softmax(logits.float(), -1)


def _contexts(data: np.ndarray, pos: np.ndarray, with_next: bool) -> np.ndarray:
    """(N, WINDOW [+1]) the WINDOW bytes ending at each position (zero-padded at the start)."""
    padded = np.concatenate([np.zeros(WINDOW, dtype=np.uint8), np.asarray(data, dtype=np.uint8)])
    offs = np.arange(1, WINDOW + 1 + int(with_next))
    return padded[pos[:, None] + offs[None, :]]


@dataclass
class KnnStore:
    index: object  # faiss.IndexFlatL2 over the keys
    values: np.ndarray  # (N,) next byte of each key
    codes: np.ndarray  # (N, WINDOW - 6) 8-gram codes of the key's window plus its next byte
    doc: np.ndarray  # (N,) document id of each key

    def __len__(self) -> int:
        return len(self.values)


def _windows(data: np.ndarray, context: int, max_windows: int | None) -> np.ndarray:
    n = (len(data) - 1) // context
    starts = np.arange(n) * context
    if max_windows is not None and n > max_windows:  # spread evenly over the split
        starts = starts[np.linspace(0, n - 1, max_windows).round().astype(int)]
    return starts


def keys_of(model: nn.Module, data: np.ndarray, context: int, max_windows: int | None = None,
            batch: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(hidden (N, C) float32, log p_lm of the true next byte (N,), next byte (N,), position (N,))
    over non-overlapping windows of `context` bytes (all of them, or max_windows spread evenly)."""
    starts = _windows(data, context, max_windows)
    arr = np.asarray(data, dtype=np.int64)
    hs, lp, ys, ps = [], [], [], []
    for b in range(0, len(starts), batch):
        s = starts[b : b + batch]
        rows = torch.from_numpy(np.stack([arr[i : i + context + 1] for i in s]))
        h, logp = hidden_states(model, rows[:, :-1])
        y = rows[:, 1:]
        hs.append(h.reshape(-1, h.size(-1)).float().numpy())
        lp.append(logp.gather(-1, y[..., None]).reshape(-1).numpy())
        ys.append(y.reshape(-1).numpy().astype(np.uint8))
        ps.append((s[:, None] + np.arange(context)[None, :]).reshape(-1))
    if not hs:
        raise ConfigError(f"a text of {len(data)} bytes holds no window of {context + 1} bytes")
    return np.concatenate(hs), np.concatenate(lp), np.concatenate(ys), np.concatenate(ps)


def build_store(model: nn.Module, data: np.ndarray, context: int | None = None, max_keys: int = 100_000,
                doc_bytes: int = 2048, first_doc: int = 0) -> KnnStore:
    """Keys from `data` (a training split); documents are spans of doc_bytes (ids from first_doc)."""
    import faiss

    context = context or model.cfg.context_length
    h, _, y, pos = keys_of(model, data, context, max(1, max_keys // context))
    index = faiss.IndexFlatL2(h.shape[1])
    index.add(h)
    return KnnStore(index, y, ngram_rows(_contexts(data, pos, with_next=True)), first_doc + pos // doc_bytes)


def merge(a: KnnStore, b: KnnStore) -> KnnStore:
    """One store holding both (e.g. the training store plus planted canaries)."""
    import faiss

    index = faiss.IndexFlatL2(a.index.d)
    for s in (a, b):
        index.add(s.index.reconstruct_n(0, s.index.ntotal))
    return KnnStore(index, np.concatenate([a.values, b.values]), np.concatenate([a.codes, b.codes]),
                    np.concatenate([a.doc, b.doc]))


def knn_bpb(model: nn.Module, store: KnnStore, data: np.ndarray, context: int | None = None, k: int = 16,
            lambdas=(0.1, 0.2, 0.3, 0.4, 0.5), max_overlaps=(0.0, 0.2, 0.5, 1.0), max_windows: int | None = 64,
            query_doc: int = -1, extra: int = 32) -> dict:
    """Bits per byte of `data` (an evaluation text, document id query_doc) for the model alone
    and interpolated at each lambda, with neighbours filtered at each max_overlap."""
    context = context or model.cfg.context_length
    h, lp_lm, y, pos = keys_of(model, data, context, max_windows)
    dist, cand = store.index.search(h, min(k + extra, len(store)))  # (N, K) squared L2, best first
    a = alphas(ngram_rows(_contexts(data, pos, with_next=False)), store.codes[np.maximum(cand, 0)])
    ok = (cand >= 0) & (store.doc[np.maximum(cand, 0)] != query_doc)
    out = {"bpb_lm": float(-lp_lm.mean() / LN2), "positions": int(len(y)), "k": k, "keys": len(store), "by_overlap": {}}
    for thr in max_overlaps:
        keep = ok & (a <= thr)
        keep &= np.cumsum(keep, 1) <= k  # the k best that pass
        w = np.where(keep, -(dist - dist.min(1, keepdims=True)), -np.inf)  # softmax(-d) over kept
        w = np.exp(w - np.where(keep.any(1, keepdims=True), w.max(1, keepdims=True), 0.0))
        w = np.where(keep, w, 0.0)
        total = w.sum(1)
        hit = (w * (store.values[np.maximum(cand, 0)] == y[:, None])).sum(1)
        p_knn = np.where(total > 0, hit / np.maximum(total, 1e-30), 0.0)
        any_kept = total > 0
        row = {"neighbours_per_position": float(keep.sum(1).mean()), "bpb": {}}
        for lam in lambdas:
            p = np.where(any_kept, lam * p_knn + (1 - lam) * np.exp(lp_lm), np.exp(lp_lm))
            row["bpb"][f"{lam:g}"] = float(-np.log(np.maximum(p, 1e-300)).mean() / LN2)
        out["by_overlap"][f"{thr:g}"] = row
    return out


@torch.no_grad()
def embed_chunks(model: nn.Module, rows: np.ndarray, batch: int = 256) -> np.ndarray:
    """Dense retrieval keys of byte chunks (N, chunk): the frozen model's final hidden states,
    mean-pooled over each chunk's positions (RETRO embeds with frozen BERT the same way) -> (N, C)."""
    out = []
    for b in range(0, len(rows), batch):
        x = torch.from_numpy(np.asarray(rows[b : b + batch], dtype=np.int64))
        h, _ = hidden_states(model, x)
        out.append(h.mean(1).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.n_embd), dtype=np.float32)
