"""RETRO-lite (Borgeaud et al. 2022, "Improving language models by retrieving from trillions of
tokens"), small enough for a CPU: a byte GPT whose one layer in four cross-attends to text
retrieved from the training split.

* The sequence is cut into chunks of `chunk` (32) bytes. Each chunk u retrieves `k` (2) chunks
  from the datastore (imo.retrieve.datastore: BM25 over byte 4-grams, or exact L2 search over the
  frozen base model's mean-pooled hidden states), each with its continuation (the next chunk of
  its document): k neighbours of 2 x chunk bytes.
* A small bidirectional encoder (its own byte embedding and learned positions, `enc_layers`
  blocks of width `enc_width`) encodes each neighbour; unlike RETRO's, it does not read the
  decoder's activations, so a neighbour's encoding depends on its text only.
* Chunked cross-attention after block `cca_layer` (the third of four): the tokens from the last
  byte of chunk u to the second-to-last byte of chunk u + 1 attend to chunk u's neighbours,
  RETRO's causal shift. A position never sees the neighbours of a chunk it has not read in full,
  so the logits at position i depend on bytes 0..i only (a test checks this end to end).
* A neighbour is never from the query chunk's document, and never one whose overlap alpha with
  the text it helps predict (the next chunk, RETRO's "evaluation chunk against the neighbours
  retrieved from the chunk before") exceeds the threshold: `train_overlap` (0.2) while training;
  the evaluation reports bits/byte for each threshold in {0, 0.2, 0.5, 1}. alpha is the share of
  the predicted chunk's 8-grams found in the neighbour or its continuation.

Retrieval "none" trains a plain GPT on exactly the same rows (the base arm of a fair comparison).
Training rows start on chunk boundaries; they go through imo.train.loop.fit (AdamW, warmup +
cosine, clipping, checkpoints, exact resume). Runs are kind "retro" in the run store; the config
holds the RETRO fields under "retro" and the weights are safetensors.

    rc = RetroConfig(retrieval="bm25")
    run_id, _ = train_retro(RunConfig.build(preset="tiny", train={"steps": 200}), rc)
    model, meta = load_retro_model(store.run_dir(run_id))
    out = evaluate_retro(model, rc, corpus, store)        # bits/byte by neighbour overlap
"""

import math
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.config import from_dict
from imo.errors import CheckpointError, ConfigError, RunBusy
from imo.model.base import SavedWeights
from imo.model.config import ModelConfig
from imo.model.gpt import GPT, MLP
from imo.retrieve.datastore import NGRAM, Chunks, Retriever, alphas, ngram_rows

KIND = "retro"
RETRIEVALS = ("bm25", "dense", "none")
OVERLAPS = (0.0, 0.2, 0.5, 1.0)  # the evaluation's neighbour-overlap thresholds
EXTRA = 30  # candidates fetched beyond k, so that k survive the filters
LN2 = math.log(2)


@dataclass(frozen=True)
class RetroConfig:
    retrieval: str = "bm25"  # bm25 | dense | none (a plain GPT on the same rows)
    chunk: int = 32  # bytes per chunk; neighbours are 2 x chunk (chunk + continuation)
    k: int = 2  # neighbours per chunk
    cca_layer: int = -1  # the block after which the chunked cross-attention sits; -1: n_layer - 2
    enc_layers: int = 2
    enc_width: int = 64
    enc_heads: int = 2
    doc_bytes: int = 2048  # documents of a corpus without boundaries (same-document filter)
    train_overlap: float = 0.2  # neighbours with a larger alpha are dropped while training
    embedder: str | None = None  # dense: the run whose frozen GPT embeds the chunks

    def __post_init__(self) -> None:
        if self.retrieval not in RETRIEVALS:
            raise ConfigError(f"unknown retrieval {self.retrieval!r}; choose one of: {', '.join(RETRIEVALS)}")
        if self.chunk < NGRAM:
            raise ConfigError(f"chunk must be >= {NGRAM} bytes, got {self.chunk}")
        if self.k < 1 or self.enc_layers < 0 or self.enc_width < 1 or self.enc_heads < 1:
            raise ConfigError("k, enc_width and enc_heads must be >= 1 and enc_layers >= 0")
        if self.enc_width % self.enc_heads:
            raise ConfigError(f"enc_heads ({self.enc_heads}) must divide enc_width ({self.enc_width})")
        if self.doc_bytes < self.chunk or self.doc_bytes % self.chunk:
            raise ConfigError(f"doc_bytes ({self.doc_bytes}) must be a multiple of the chunk ({self.chunk})")
        if not 0.0 <= self.train_overlap <= 1.0:
            raise ConfigError(f"train_overlap must be in [0, 1], got {self.train_overlap}")
        if self.retrieval == "dense" and not self.embedder:
            raise ConfigError("dense retrieval embeds chunks with a frozen byte GPT: give its run (--embedder RUN)")
        if self.retrieval != "dense" and self.embedder:
            raise ConfigError("--embedder is for dense retrieval only (--retrieval retro-dense)")

    def layer(self, n_layer: int) -> int:
        i = n_layer - 2 if self.cca_layer < 0 else self.cca_layer
        return max(0, min(i, n_layer - 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RetroConfig":
        return from_dict(cls, d, "retro")


# --- the model -------------------------------------------------------------------------------


class EncoderBlock(nn.Module):
    """Pre-LayerNorm bidirectional block over one neighbour (attention sees all its bytes)."""

    def __init__(self, width: int, heads: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width, bias=cfg.bias)
        self.c_attn = nn.Linear(width, 3 * width, bias=cfg.bias)
        self.c_proj = nn.Linear(width, width, bias=cfg.bias)
        self.ln_2 = nn.LayerNorm(width, bias=cfg.bias)
        self.mlp = MLP(replace(cfg, n_embd=width, n_head=heads))

    def forward(self, x: Tensor) -> Tensor:
        N, R, E = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).view(N, R, 3, self.heads, E // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (N, h, R, d), no mask: bidirectional
        x = x + self.c_proj(y.transpose(1, 2).reshape(N, R, E))
        return x + self.mlp(self.ln_2(x))


class NeighbourEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig, rc: RetroConfig) -> None:
        super().__init__()
        e = rc.enc_width
        self.wte = nn.Embedding(cfg.vocab_size, e)
        self.wpe = nn.Embedding(2 * rc.chunk, e)
        self.h = nn.ModuleList([EncoderBlock(e, rc.enc_heads, cfg) for _ in range(rc.enc_layers)])
        self.ln_f = nn.LayerNorm(e, bias=cfg.bias)
        self.proj = nn.Linear(e, cfg.n_embd, bias=cfg.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B, L, k, R) byte ids >= 0 -> (B, L, k * R, C)."""
        B, L, K, R = tokens.shape
        x = self.wte(tokens.reshape(B * L * K, R)) + self.wpe(torch.arange(R, device=tokens.device))
        for block in self.h:
            x = block(x)
        return self.proj(self.ln_f(x)).reshape(B, L, K * R, -1)


class ChunkedCrossAttention(nn.Module):
    """RETRO's CCA: the hidden states shifted by chunk - 1, cut into chunks; chunk group u (the
    positions (u + 1) m - 1 .. (u + 2) m - 2) attends to the encoded neighbours of chunk u."""

    def __init__(self, cfg: ModelConfig, chunk: int) -> None:
        super().__init__()
        self.m, self.nh = chunk, cfg.n_head
        self.ln = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.q = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.kv = nn.Linear(cfg.n_embd, 2 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, h: Tensor, enc: Tensor, mask: Tensor) -> Tensor:
        """h (B, T, C), enc (B, L, k R, C), mask (B, L, k R) True where a neighbour is -> (B, T, C)."""
        B, T, C = h.shape
        m, L, nh = self.m, enc.size(1), self.nh
        d = C // nh
        out = h.new_zeros(B, T, C)
        n = min(T - m + 1, L * m)  # positions m - 1 .. m - 2 + n have a chunk read in full
        if L == 0 or n <= 0:
            return out
        hs = F.pad(self.ln(h[:, m - 1 : m - 1 + n]), (0, 0, 0, L * m - n))  # (B, L m, C)
        q = self.q(hs).view(B, L, m, nh, d).transpose(2, 3)  # (B, L, nh, m, d)
        k, v = self.kv(enc).view(B, L, -1, 2, nh, d).permute(3, 0, 1, 4, 2, 5)  # (B, L, nh, kR, d) each
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d)  # (B, L, nh, m, kR)
        keep = mask[:, :, None, None, :]
        att = att.masked_fill(~keep, torch.finfo(att.dtype).min)
        some = mask.any(-1)[:, :, None, None, None].to(att.dtype)  # a chunk without neighbours reads 0
        y = (att.softmax(-1) @ v) * some  # (B, L, nh, m, d)
        y = y.transpose(2, 3).reshape(B, L * m, C)[:, :n]
        out[:, m - 1 : m - 1 + n] = self.c_proj(y)
        return out


class RetroLM(SavedWeights, nn.Module):
    """The GPT's own blocks (built by imo.model.gpt.GPT, same names and initialisation) with a
    neighbour encoder and one chunked cross-attention. forward(idx, targets, neighbours):
    neighbours (B, L, k, 2 chunk) byte ids of the L = T // chunk chunks' neighbours, -1 where a
    neighbour is missing (None: none at all, the model reads as a GPT with idle extra weights)."""

    def __init__(self, cfg: ModelConfig, rc: RetroConfig) -> None:
        super().__init__()
        if cfg.n_future != 1:
            raise ConfigError("RETRO-lite reads one next-byte head (n_future 1)")
        if cfg.vocab_size != 256:
            raise ConfigError("RETRO-lite reads bytes (vocab 256)")
        self.cfg, self.rc = cfg, rc
        gpt = GPT(cfg)
        self.positions, self.transformer, self.lm_head = gpt.positions, gpt.transformer, gpt.lm_head
        self.encoder = NeighbourEncoder(cfg, rc)
        self.cca = ChunkedCrossAttention(cfg, rc.chunk)
        self.cca_at = rc.layer(cfg.n_layer)
        for mod in (self.encoder, self.cca):
            mod.apply(GPT._init_weights)
            for name, p in mod.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                neighbours: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        B, T = idx.shape
        self.positions.check_length(T)
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.wte(idx)
        pe = self.positions.embed(pos)
        if pe is not None:
            x = x + pe
        x = self.transformer.drop(x)
        if neighbours is not None:
            L = T // self.rc.chunk
            if neighbours.shape[:2] != (B, L) or neighbours.size(-1) != 2 * self.rc.chunk:
                raise ConfigError(f"neighbours must be (B, T // chunk, k, 2 chunk) = ({B}, {L}, k, "
                                  f"{2 * self.rc.chunk}), got {tuple(neighbours.shape)}")
            mask = (neighbours[..., 0] >= 0).repeat_interleave(neighbours.size(-1), -1)  # (B, L, k R)
            enc = self.encoder(neighbours.clamp(min=0))
        for i, block in enumerate(self.transformer.h):
            x = block(x, pos)
            if i == self.cca_at and neighbours is not None:
                x = x + self.cca(x, enc, mask)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))

    def state_dict_for_save(self) -> dict[str, Tensor]:
        sd = super().state_dict_for_save()
        sd.pop("positions.wpe.weight", None)
        return sd

    def _restore_aliases(self, sd: dict[str, Tensor]) -> dict[str, Tensor]:
        if "transformer.wpe.weight" in sd:
            sd["positions.wpe.weight"] = sd["transformer.wpe.weight"]
        return sd


def build_model(cfg: ModelConfig, rc: RetroConfig) -> nn.Module:
    return GPT(cfg) if rc.retrieval == "none" else RetroLM(cfg, rc)


def count_params(cfg: ModelConfig, rc: RetroConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(cfg, rc).parameters())


def matched_width(cfg: ModelConfig, rc: RetroConfig) -> int:
    """The width (a multiple of 2 n_head: an even head size, for RoPE) at which a plain GPT of cfg's depth has the parameter
    count of the RETRO-lite model built from cfg and rc, or the closest to it."""
    target = count_params(cfg, rc)
    base = RetroConfig(retrieval="none", chunk=rc.chunk)
    h = 2 * cfg.n_head

    def params(w: int) -> int:
        return count_params(replace(cfg, n_embd=w), base)

    lo, hi = 1, 8 * cfg.n_embd // h  # widths lo * h .. hi * h; the count grows with the width
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if params(mid * h) <= target else (lo, mid)
    return min((lo * h, hi * h), key=lambda w: abs(params(w) - target))


# --- retrieval -------------------------------------------------------------------------------


def split_chunks(data: np.ndarray, chunk: int) -> np.ndarray:
    """(N, chunk) uint8: the split's whole chunks at offsets 0, chunk, 2 chunk, ..."""
    n = len(data) // chunk
    return np.asarray(data[: n * chunk], dtype=np.uint8).reshape(n, chunk)


def next_chunks(rows: np.ndarray) -> np.ndarray:
    """(N, chunk): the chunk after each one (zeros after the last), the text its neighbours help predict."""
    return np.concatenate([rows[1:], np.zeros_like(rows[:1])])


@dataclass
class Neighbours:
    """Neighbour chunk ids of every chunk of a split, per overlap threshold."""

    index: dict[float, np.ndarray]  # threshold -> (N, k) int64, -1 where none survived
    alpha: dict[float, np.ndarray]  # threshold -> (N, k) float, nan for -1
    dropped_doc: int  # candidates from the query's own document, over all queries


class Datastore:
    """The training split's chunks and their index (BM25, or dense with the frozen embedder)."""

    def __init__(self, train: np.ndarray, rc: RetroConfig, embedder: nn.Module | None = None) -> None:
        if rc.retrieval == "none":
            raise ConfigError("retrieval 'none' has no datastore")
        if rc.retrieval == "dense" and embedder is None:
            raise ConfigError("dense retrieval needs the frozen embedder model")
        self.rc, self.embedder = rc, embedder
        self.chunks = Chunks.from_bytes(np.asarray(train, dtype=np.uint8), chunk=rc.chunk, doc_bytes=rc.doc_bytes)
        if not np.array_equal(self.chunks.start, np.arange(len(self.chunks)) * rc.chunk):
            raise AssertionError("datastore chunks must sit at multiples of the chunk")
        self.vectors = self.embed(self.chunks.data) if rc.retrieval == "dense" else None
        self.retriever = Retriever(self.chunks, rc.retrieval, vectors=self.vectors)

    def embed(self, rows: np.ndarray) -> np.ndarray | None:
        if self.rc.retrieval != "dense":
            return None
        from imo.retrieve.knnlm import embed_chunks

        return embed_chunks(self.embedder, rows)

    def neighbours(self, queries: np.ndarray, query_doc: np.ndarray, thresholds=OVERLAPS,
                   vectors: np.ndarray | None = None, batch: int = 1024) -> Neighbours:
        """For query chunks (N, chunk) in order (chunk j + 1 follows chunk j), of documents
        query_doc (N,) (-1: not in the datastore), the k best neighbours kept at each threshold."""
        k, K = self.rc.k, min(self.rc.k + EXTRA, len(self.chunks))
        if self.rc.retrieval == "dense" and vectors is None:
            vectors = self.embed(queries)
        targets = next_chunks(queries)
        index = {t: np.full((len(queries), k), -1, dtype=np.int64) for t in thresholds}
        alpha = {t: np.full((len(queries), k), np.nan) for t in thresholds}
        dropped = 0
        for b in range(0, len(queries), batch):
            sl = slice(b, b + batch)
            cand = self.retriever.candidates(queries[sl], K, None if vectors is None else vectors[sl])
            a = alphas(ngram_rows(targets[sl]), ngram_rows(self.chunks.with_continuations(np.maximum(cand, 0))))
            ok = (cand >= 0) & (self.chunks.doc[np.maximum(cand, 0)] != np.asarray(query_doc)[sl, None])
            dropped += int(((cand >= 0) & ~ok).sum())
            for t in thresholds:
                keep = ok & (a <= t)
                order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept ones first, in rank order
                got = np.take_along_axis(keep, order, 1)
                index[t][sl] = np.where(got, np.take_along_axis(cand, order, 1), -1)
                alpha[t][sl] = np.where(got, np.take_along_axis(a, order, 1), np.nan)
        return Neighbours(index, alpha, dropped)

    def tokens(self, index: np.ndarray) -> np.ndarray:
        """(..., k) neighbour ids -> (..., k, 2 chunk) int64 bytes, rows of -1 where the id is -1."""
        rows = self.chunks.with_continuations(np.maximum(index, 0)).astype(np.int64)
        return np.where((index >= 0)[..., None], rows, -1)


def split_neighbours(store: Datastore, data: np.ndarray, train: bool, thresholds=OVERLAPS) -> Neighbours:
    """Neighbours of every chunk of a split: the training split's own chunks are filtered by
    their document; a held-out split's chunks are in no document of the datastore (-1)."""
    rows = split_chunks(data, store.rc.chunk)
    if train:
        doc = store.chunks.doc[: len(rows)]
        return store.neighbours(rows, doc, thresholds, vectors=None if store.vectors is None else store.vectors[: len(rows)])
    return store.neighbours(rows, np.full(len(rows), -1, dtype=np.int64), thresholds)


def causal_neighbours(store: Datastore, x: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Retrieve for one row of bytes x (T,) on the fly: (T // chunk, k, 2 chunk) neighbour bytes
    of each whole chunk of x, searched with that chunk only (no document filter: x is held out;
    the overlap filter needs the next chunk, so it applies only where threshold is given)."""
    m = store.rc.chunk
    rows = np.asarray(x[: len(x) // m * m], dtype=np.uint8).reshape(-1, m)
    if threshold is None:
        cand = store.retriever.candidates(rows, store.rc.k, store.embed(rows))
        return store.tokens(cand[:, : store.rc.k])
    nb = store.neighbours(rows, np.full(len(rows), -1), (threshold,))
    return store.tokens(nb.index[threshold])


# --- training ----------------------------------------------------------------------------------


class RetroBatches:
    """Rows of T + 1 bytes starting on chunk boundaries, with the neighbours of their T // chunk
    chunks (at the training threshold). Drawn from fit's generator only."""

    def __init__(self, data: np.ndarray, T: int, batch: int, chunk: int, store: Datastore | None,
                 table: np.ndarray | None) -> None:
        self.data, self.T, self.batch, self.m, self.store, self.table = np.asarray(data), T, batch, chunk, store, table
        self.starts = (len(data) - T - 1) // chunk + 1  # chunk offsets with T + 1 bytes after them
        if self.starts < 1:
            raise ConfigError(f"a split of {len(data)} bytes is too short for rows of {T + 1}")

    def __call__(self, gen: torch.Generator, m: int):
        s = torch.randint(self.starts, (self.batch,), generator=gen).numpy()
        rows = np.stack([self.data[i * self.m : i * self.m + self.T + 1] for i in s]).astype(np.int64)
        x, y = torch.from_numpy(rows[:, :-1]), torch.from_numpy(rows[:, 1:])
        if self.store is None:
            return x, y, None
        L = self.T // self.m
        idx = np.stack([self.table[i : i + L] for i in s])  # (B, L, k)
        return x, y, torch.from_numpy(self.store.tokens(idx))


def retro_loss(model: nn.Module, batch) -> Tensor:
    x, y, nb = batch
    device = next(model.parameters()).device
    if isinstance(model, RetroLM):
        return model(x.to(device), y.to(device), None if nb is None else nb.to(device))[1]
    return model(x.to(device), y.to(device))[1]


@torch.no_grad()
def window_bpb(model: nn.Module, data: np.ndarray, T: int, chunk: int, store: Datastore | None,
               table: np.ndarray | None, max_windows: int | None = None, batch: int = 16) -> tuple[float, int]:
    """(bits/byte, positions) over the split's non-overlapping windows of T bytes (whole windows
    only, each starting on a chunk boundary), every model on the same windows."""
    n = (len(data) - 1) // T
    starts = np.arange(n) * T
    if max_windows is not None and n > max_windows:
        starts = starts[np.linspace(0, n - 1, max_windows).round().astype(int)]
    if not len(starts):
        raise ConfigError(f"a split of {len(data)} bytes holds no window of {T + 1} bytes")
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    arr = np.asarray(data, dtype=np.int64)
    total, count = 0.0, 0
    try:
        for b in range(0, len(starts), batch):
            s = starts[b : b + batch]
            rows = torch.from_numpy(np.stack([arr[i : i + T + 1] for i in s]))
            nb = None
            if store is not None and isinstance(model, RetroLM):
                L = T // chunk
                nb = torch.from_numpy(store.tokens(np.stack([table[i // chunk : i // chunk + L] for i in s]))).to(device)
            x, y = rows[:, :-1].to(device), rows[:, 1:].to(device)
            _, loss = model(x, y, nb) if isinstance(model, RetroLM) else model(x, y)
            total += loss.item() * y.numel()
            count += y.numel()
    finally:
        model.train(was)
    return total / count / LN2, count


_STORES: dict[tuple, tuple[Datastore, dict[str, Neighbours]]] = {}


def datastore_for(corpus, rc: RetroConfig, run_store=None, embedder: nn.Module | None = None):
    """(Datastore, {"train": Neighbours, "val": Neighbours}) of a corpus, built once per process
    (the tables depend on the corpus, the retrieval, the embedder run and the chunking only)."""
    key = (corpus.name, corpus.meta.get("sha256"), rc.retrieval, rc.embedder, rc.chunk, rc.k, rc.doc_bytes,
           rc.train_overlap)
    if key not in _STORES:
        if rc.retrieval == "dense" and embedder is None:
            embedder = load_embedder(run_store, rc.embedder)
        store = Datastore(corpus.train, rc, embedder)
        thresholds = tuple(sorted({*OVERLAPS, rc.train_overlap}))
        _STORES[key] = (store, {"train": split_neighbours(store, corpus.train, True, thresholds),
                                "val": split_neighbours(store, corpus.val, False, thresholds)})
    return _STORES[key]


def load_embedder(run_store, run: str | None) -> nn.Module:
    """The frozen byte GPT of a run (an ordinary run, or the base arm of a RETRO comparison)."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    if not run:
        raise ConfigError("dense retrieval needs an embedder run")
    run_store = run_store or RunStore.open()
    run_id = run_store.resolve(run)
    r = run_store.get(run_id)
    if r["kind"] == KIND:
        model, _ = load_retro_model(run_store.run_dir(run_id))
    else:
        if (r["config"].get("tokenizer") or {}).get("kind", "byte") != "byte" or r["kind"] == "memory":
            raise ConfigError(f"run {run_id} is not a byte GPT; the embedder must be one")
        model, _ = load_model(run_store.run_dir(run_id))
    if not isinstance(model, GPT):
        raise ConfigError(f"run {run_id} is not a plain byte GPT; the embedder must be one")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def _lock(store, run_id: str, locks: ExitStack) -> None:
    try:
        locks.enter_context(store.lock(f"run-{run_id}", wait=False))
    except RunBusy:
        raise RunBusy(f"run {run_id} is being trained by another process") from None


def train_retro(cfg, rc: RetroConfig | None = None, *, resume: str | None = None, store=None, quiet: bool = False,
                name: str | None = None, tags=(), stop_at: int | None = None,
                eval_windows: int | None = None) -> tuple[str, bool]:
    """Train a RETRO-lite run (rc.retrieval "none": a GPT on the same rows), or continue
    `resume`; returns (run_id, stopped). The finished run's figures hold val bits/byte at each
    neighbour-overlap threshold (over all whole windows of the validation split, or
    eval_windows of them spread evenly)."""
    from imo.data.corpora import load_corpus
    from imo.runs.store import RunStore
    from imo.train.checkpoint import checkpoint_dir, read_checkpoint
    from imo.train.config import RunConfig
    from imo.train.loop import RunLog, fit
    from imo.train.trainer import fit_config, resolve_device

    store = store or RunStore.open()
    meta = weights = None
    state: dict = {}
    with ExitStack() as locks:
        if resume is not None:
            run_id = store.resolve(resume)
            r = store.get(run_id)
            if r["kind"] != KIND:
                raise ConfigError(f"run {run_id} is not a RETRO run")
            if r["status"] == "finished":
                raise ConfigError(f"run {run_id} has finished; train a new run")
            _lock(store, run_id, locks)
            meta, weights, state = read_checkpoint(checkpoint_dir(store.run_dir(run_id)))
            cfg, rc = RunConfig.from_dict(meta["config"]), RetroConfig.from_dict(meta["config"]["retro"])
        t = cfg.train
        if t.dtype == "bfloat16":
            raise ConfigError("RETRO runs train in float32 (--dtype float32 or auto)")
        if t.grad_accum != 1:
            raise ConfigError("RETRO runs train without --grad-accum (one micro-batch per step)")
        if t.minutes is not None:
            raise ConfigError("RETRO runs take a step budget (--steps), so that arms compare at equal steps")
        cfg = cfg.with_train(dtype="float32")
        T = cfg.model.context_length
        if T % rc.chunk:
            raise ConfigError(f"the context ({T}) must be a multiple of the chunk ({rc.chunk})")
        device = resolve_device(t.device)
        corpus = load_corpus(t.corpus)
        if len(corpus.val) < T + 1 or len(corpus.train) < T + 1:
            raise ConfigError(f"corpus {t.corpus} is too short for windows of {T + 1} bytes")
        build_model(cfg.model, rc)  # refuses a bad shape before the datastore is built
        dstore, tables = (None, None) if rc.retrieval == "none" else datastore_for(corpus, rc, store)
        torch.manual_seed(t.seed)
        model = build_model(cfg.model, rc).to(device)
        full = {**cfg.to_dict(), "retro": rc.to_dict()}
        if weights is not None:
            model.load_saved_state({k: v.to(device) for k, v in weights.items()})
        else:
            what = "gpt" if rc.retrieval == "none" else f"retro-{rc.retrieval}"
            run_id = store.create_run(KIND, name or f"{what}-{cfg.name()}", full, tags=tags)
            _lock(store, run_id, locks)
        store.set_status(run_id, "running")
        log = RunLog(store, run_id, store.run_dir(run_id), meta=lambda: {"run_id": run_id, "config": full})
        tr_table = None if tables is None else tables["train"].index[rc.train_overlap]
        va_table = None if tables is None else tables["val"].index[rc.train_overlap]
        if not quiet:
            kept = "" if tables is None else (
                f"; {np.mean(tr_table >= 0):.0%} of training neighbour slots filled at overlap <= {rc.train_overlap:g}")
            print(f"run {run_id}  {'gpt (no retrieval)' if rc.retrieval == 'none' else 'RETRO-lite ' + rc.retrieval}"
                  f"  {model.num_params():,} parameters  rows of {T} bytes, chunks of {rc.chunk}, k={rc.k}"
                  f"{kept}  float32 on {device}", flush=True)
        res = fit(model, RetroBatches(corpus.train, T, t.batch_size, rc.chunk, dstore, tr_table), fit_config(t),
                  loss_fn=retro_loss, run=log, resume=None if meta is None else (meta, state),
                  evaluate=lambda m: {"val/bpb": window_bpb(m, corpus.val, T, rc.chunk, dstore, va_table,
                                                            max_windows=t.eval_batches * t.batch_size)[0]},
                  tokens_per_step=t.batch_size * T, quiet=quiet, stop_at=stop_at)
        if res.stopped:
            store.set_status(run_id, "interrupted")
            if not quiet:
                print(f"stopped at step {res.steps}; continue with: imo train --resume {run_id}", flush=True)
            return run_id, True
        by = evaluate_splits(model, rc, T, corpus, dstore, tables, eval_windows)
        figures = {"val_bpb": by["val_bpb"], "val_bpb_by_overlap": by["by_overlap"], "positions": by["positions"],
                   "train_bpb": res.train_bpb, "steps": res.steps, "params": model.num_params(),
                   "seconds": res.seconds, "dtype": "float32",
                   "train_tokens_per_s": (res.steps - (meta or {}).get("step", 0)) * t.batch_size * T
                   / max(res.step_seconds, 1e-9)}
        store.finish(run_id, figures)
        if not quiet:
            print(f"done: step {res.steps}, validation {by['val_bpb']:.4f} bits/byte at overlap <= "
                  f"{rc.train_overlap:g}; {figures['train_tokens_per_s']:,.0f} tokens/s", flush=True)
        return run_id, False


def evaluate_splits(model, rc: RetroConfig, T: int, corpus, dstore, tables, max_windows=None,
                    thresholds=OVERLAPS) -> dict:
    """Val bits/byte at each threshold (one figure for a model without retrieval)."""
    if dstore is None or not isinstance(model, RetroLM):
        bpb, n = window_bpb(model, corpus.val, T, rc.chunk, None, None, max_windows)
        return {"val_bpb": bpb, "by_overlap": {f"{t:g}": bpb for t in thresholds}, "positions": n, "filled": {}}
    by, filled = {}, {}
    for t in sorted({*thresholds, rc.train_overlap}):
        by[f"{t:g}"], n = window_bpb(model, corpus.val, T, rc.chunk, dstore, tables["val"].index[t], max_windows)
        filled[f"{t:g}"] = float(np.mean(tables["val"].index[t] >= 0))
    return {"val_bpb": by[f"{rc.train_overlap:g}"], "by_overlap": {f"{t:g}": by[f"{t:g}"] for t in thresholds},
            "positions": n, "filled": filled}


def retro_config(config: dict) -> RetroConfig:
    if "retro" not in config:
        raise ConfigError("this run has no RETRO config (it is not a RETRO run)")
    return RetroConfig.from_dict(config["retro"])


def load_retro_model(run_dir, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The model of a RETRO run's latest checkpoint (a RetroLM, or the GPT of the base arm), in
    eval mode, and its metadata."""
    from imo.train.checkpoint import checkpoint_dir, read_checkpoint
    from imo.train.config import RunConfig

    meta, weights, _ = read_checkpoint(checkpoint_dir(run_dir), with_state=False)
    full = meta["config"]
    model = build_model(RunConfig.from_dict(full).model, retro_config(full))
    try:
        model.load_saved_state(weights)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint in '{run_dir}' does not match its config: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta


def evaluate_run(run_store, run: str, corpus_name: str | None = None, max_windows: int | None = None,
                 thresholds=OVERLAPS) -> dict:
    """`imo eval RUN --retrieval retro`: bits/byte of a RETRO run's model on a corpus's validation
    split at each neighbour-overlap threshold, the datastore built from that corpus's training split."""
    from imo.data.corpora import load_corpus

    run_id = run_store.resolve(run)
    if run_store.get(run_id)["kind"] != KIND:
        raise ConfigError(f"run {run_id} is not a RETRO run (train one with imo train --retrieval retro)")
    model, meta = load_retro_model(run_store.run_dir(run_id))
    rc = retro_config(meta["config"])
    corpus = load_corpus(corpus_name or meta["config"]["train"]["corpus"])
    T = model.cfg.context_length
    dstore, tables = (None, None) if rc.retrieval == "none" else datastore_for(corpus, rc, run_store)
    out = evaluate_splits(model, rc, T, corpus, dstore, tables, max_windows, thresholds)
    return {"run": run_id, "corpus": corpus.name, "retrieval": rc.retrieval, "context": T,
            "chunks": 0 if dstore is None else len(dstore.chunks), **out}
