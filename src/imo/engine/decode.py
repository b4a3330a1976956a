"""The engine: prefill once, decode with a KV cache; greedy, sampling (temperature, top-k, top-p,
seed), n samples from one prefill and beam search, all from one GenerationConfig.

Every model call goes through `Engine.forward`, which counts passes (calls) and positions (tokens
pushed through the model), so the savings of caching, branching and the prefix tree are measured
rather than assumed. With a prefix tree (imo.engine.prefix) a prompt's longest cached prefix is
reused and only the rest is prefilled.

    eng = Engine(model); outs = eng.generate([b"def ", b"class "], n=4, max_tokens=32, temperature=0.8, seed=0)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from imo.engine.cache import KVCache
from imo.engine.config import GenerationConfig
from imo.engine.prefix import PrefixTree
from imo.engine.sampling import (  # noqa: F401  (re-exported: the names callers have used)
    make_generator,
    row_seed,
    sample_tokens,
    stop_bytes,
)
from imo.engine.text import TokenText
from imo.errors import ConfigError

MAX_BATCH_ROWS = 256  # rows decoded together by Engine.generate (more prompts x n: several batches)
Prompt = bytes | str | list[int]


@dataclass
class Stats:
    """Counters of one engine; always reported (vLLM-style prefix hit/miss counters included)."""

    passes: int = 0  # model calls
    positions: int = 0  # token positions pushed through the model (summed over rows)
    prefill_computed: int = 0  # prompt tokens the model computed
    prefill_reused: int = 0  # prompt tokens served from the prefix tree
    generated: int = 0  # tokens produced
    seconds: float = 0.0  # inside model calls

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class Completion:
    tokens: list[int]
    logprobs: list[float]  # log p of each token under the model (temperature 1)
    finish_reason: str  # "stop" (a stop string or an end-of-sequence token) or "length"
    score: float | None = None  # beam: the length-penalised score
    text: str = field(default="", repr=False)
    data: bytes = field(default=b"", repr=False)  # the text's bytes, before UTF-8 decoding


@dataclass
class Event:
    """One generated token of one row, as it is decided."""

    row: int
    token: int
    logprob: float
    finished: str | None  # None, "stop" or "length"


class Engine:
    """text: how token ids read as text (imo.engine.text.TokenText: the tokenizer's bytes per
    token and its end-of-sequence ids); None is a byte model's, without an end token."""

    def __init__(self, model, tree=None, text: TokenText | None = None) -> None:
        self.model = model.eval()
        self.cfg = model.cfg
        self.tree = tree  # imo.engine.prefix.PrefixTree or None
        self.text = text or TokenText()
        self.stats = Stats()

    def session(self, prompt, gen: GenerationConfig | None = None, branch=None):
        """Branching alternatives for one prompt: `.answer()`, `.reject()` (imo.engine.branches)."""
        from imo.engine.branches import session

        return session(self, prompt, gen, branch)

    # --- model calls -----------------------------------------------------------------------------

    @torch.no_grad()
    def forward(self, ids: Tensor, cache: KVCache) -> Tensor:
        """ids (B, T) after the cache's positions -> float logits (B, T, V); counted."""
        t0 = time.perf_counter()
        logits, _ = self.model(ids.to(next(self.model.parameters()).device), cache=cache)
        self.stats.seconds += time.perf_counter() - t0
        self.stats.passes += 1
        self.stats.positions += ids.numel()
        return logits.float().cpu()

    def new_cache(self, batch: int = 1, capacity: int | None = None) -> KVCache:
        return KVCache.for_model(self.model, batch, capacity)

    def check_prompt(self, ids: list[int], cfg: GenerationConfig | None = None) -> None:
        L = self.cfg.context_length
        if not ids:
            raise ConfigError("the prompt is empty; give at least one token")
        if len(ids) > L:
            raise ConfigError(f"the prompt has {len(ids)} tokens, more than the model's context of {L}")
        if bad := [t for t in ids if not 0 <= t < self.cfg.vocab_size]:
            raise ConfigError(f"token {bad[0]} is outside the vocabulary (0..{self.cfg.vocab_size - 1})")
        if cfg is not None and cfg.on_full == "error" and len(ids) + cfg.max_tokens > L:
            raise ConfigError(f"prompt ({len(ids)}) + max_tokens ({cfg.max_tokens}) exceed the context of {L} "
                              f"tokens; shorten them or use on_full=slide")

    def prefill(self, ids: list[int]) -> tuple[KVCache, Tensor]:
        """A one-row cache holding the prompt, and the logits (V,) of the token after it. With a
        prefix tree, the longest cached prefix is reused (at least the last token is computed,
        since its logits are needed) and the prompt is added to the tree."""
        self.check_prompt(ids)
        matched = 0
        cache = None
        if self.tree is not None:
            matched, cache = self.tree.match(ids[:-1], capacity=self.cfg.context_length)
        if cache is None:
            cache = self.new_cache(1, self.cfg.context_length)
        logits = self.forward(torch.tensor([ids[matched:]]), cache)[0, -1]
        self.stats.prefill_computed += len(ids) - matched
        self.stats.prefill_reused += matched
        if self.tree is not None:
            self.tree.record(matched, len(ids) - matched)
            self.tree.insert(ids, cache)
        return cache, logits

    def release(self, cache: KVCache) -> None:
        """Unlock the prefix-tree nodes a prefilled cache uses (the request is over)."""
        if self.tree is not None:
            self.tree.release(cache)

    def slide(self, seqs: list[list[int]]) -> tuple[KVCache, Tensor]:
        """The context is full: drop the oldest half of every row and prefill the rest again."""
        keep = self.cfg.context_length // 2
        cache = self.new_cache(len(seqs), self.cfg.context_length)
        logits = self.forward(torch.tensor([s[-keep:] for s in seqs]), cache)[:, -1]
        return cache, logits

    # --- sampling and greedy ---------------------------------------------------------------------

    def stream(self, ids: list[int], cfg: GenerationConfig, gens: list[torch.Generator] | None = None,
               prefilled: tuple[KVCache, Tensor] | None = None) -> Iterator[Event]:
        """Events of cfg.n rows decoded together from one prefill (greedy or sample)."""
        if cfg.strategy == "beam":
            raise ConfigError("beam search returns whole answers; use Engine.beam (or generate)")
        self.check_prompt(ids, cfg)
        if cfg.max_tokens == 0:
            return
        gens = gens or [make_generator(cfg.seed)]
        cache, logits = prefilled or self.prefill(ids)
        try:
            yield from self._decode(ids, cfg, gens, cache, logits)
        finally:  # also when the consumer stops early (a client went away)
            self.release(cache)

    def _decode(self, ids, cfg, gens, cache, logits) -> Iterator[Event]:
        logits = logits.reshape(-1, logits.size(-1))
        if cfg.n > 1 and cache.batch == 1:
            cache, logits = cache.expand(cfg.n), logits.expand(cfg.n, -1)
        yield from self._rows([list(ids) for _ in range(cache.batch)], cfg, gens, cache, logits)

    def stream_batch(self, prompts: list[list[int]], cfg: GenerationConfig) -> Iterator[Event]:
        """Events of several prompts of the same length decoded as one batch (row = prompt);
        prefilled together, without the prefix tree (as a plain batched generate would)."""
        if cfg.strategy == "beam" or cfg.n != 1:
            raise ConfigError("a batch of prompts takes greedy or sample with n = 1")
        for p in prompts:
            self.check_prompt(p, cfg)
        if len({len(p) for p in prompts}) != 1:
            raise ConfigError("the prompts of one batch must have the same length")
        if cfg.max_tokens == 0:
            return
        cache = self.new_cache(len(prompts), self.cfg.context_length)
        logits = self.forward(torch.tensor(prompts), cache)[:, -1]
        self.stats.prefill_computed += sum(map(len, prompts))
        yield from self._rows([list(p) for p in prompts], cfg, [make_generator(cfg.seed)], cache, logits)

    def _rows(self, seqs, cfg, gens, cache, logits) -> Iterator[Event]:
        stops = stop_bytes(cfg.stop)
        finished = self.text.finished
        rows = list(range(len(seqs)))  # the original row of each live cache row
        outs: list[list[int]] = [[] for _ in rows]
        for step in range(cfg.max_tokens):
            tok = sample_tokens(logits, cfg, gens if len(gens) == 1 else [gens[r] for r in rows])
            lp = F.log_softmax(logits, dim=-1).gather(1, tok[:, None])[:, 0]
            live = []
            for i, r in enumerate(rows):
                t = int(tok[i])
                outs[r].append(t)
                seqs[i].append(t)
                done = finished(outs[r], stops) or ("length" if step == cfg.max_tokens - 1 else None)
                yield Event(r, t, float(lp[i]), done)
                if done is None:
                    live.append(i)
            self.stats.generated += len(rows)
            if not live:
                return
            if len(live) < len(rows):  # finished rows leave the batch and free their cache rows
                cache = cache.select(live)
                rows, seqs, tok = [rows[i] for i in live], [seqs[i] for i in live], tok[live]
            if cache.length + 1 > self.cfg.context_length:
                cache, logits = self.slide(seqs)
            else:
                logits = self.forward(tok[:, None], cache)[:, -1]

    def generate(self, prompts, cfg: GenerationConfig | None = None, *, n: int = 1, max_tokens: int = 128,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
                 stop: Iterable[str | bytes] = (), seed: int | None = None) -> list:
        """n sampled continuations of each of several prompts: the public call for sampling.

            outs = engine.generate([b"2+2=", b"3+5="], n=8, max_tokens=16, temperature=0.8,
                                   stop=[b"\\n"], seed=0)
            outs[i][j].data, outs[i][j].tokens, outs[i][j].logprobs, outs[i][j].finish_reason

        `prompts`: a list of prompts, each bytes, str (UTF-8) or a list of token ids. Returns one list
        per prompt, in order, of `n` Completions: `.tokens` (ids; for a byte model the bytes, also as
        `.data`: the text's bytes), `.logprobs` (log p of each token at temperature 1), `.finish_reason`
        ("stop" or "length"), `.text` (decoded, invalid UTF-8 replaced). A stop string or an
        end-of-sequence token ends its row and is removed, as OpenAI's API does (stops are matched
        on the text, across token boundaries: imo.engine.text). `temperature=0` is greedy (then n
        must be 1). A str prompt goes through the engine's tokenizer.

        Cost: each prompt is prefilled once (its keys/values copied into its n rows); prompts that
        share a prefix reuse its keys/values through the prefix tree (the engine's own, or a
        temporary one for this call), so a shared problem statement is computed once. All rows of
        prompts of the same length decode as one batch (at most MAX_BATCH_ROWS rows a batch), one
        forward pass per token with the KV cache. With a seed, every (prompt, sample) row has its
        own generator (`row_seed(seed, i, j)`): the same call gives the same samples, whatever the
        batching.

        The older form `generate(ids, cfg)` (one prompt's ids and a GenerationConfig, returning
        that prompt's cfg.n Completions, beam search included) is `complete(ids, cfg)`."""
        if isinstance(cfg, GenerationConfig):
            return self.complete(prompts, cfg)
        if cfg is not None:
            raise ConfigError("generate(prompts, ...) takes its options by name; a GenerationConfig goes to complete()")
        if isinstance(prompts, bytes | str) or (prompts and isinstance(prompts[0], int)):
            raise ConfigError("generate takes a list of prompts (e.g. [b'2+2=']); for one prompt's ids use complete()")
        if temperature == 0:
            if n > 1:
                raise ConfigError("n > 1 with temperature 0 (greedy) gives n identical answers")
            gcfg = GenerationConfig(strategy="greedy", max_tokens=max_tokens, stop=tuple(stop))
        else:
            gcfg = GenerationConfig(strategy="sample", max_tokens=max_tokens, temperature=temperature,
                                    top_k=top_k, top_p=top_p, seed=seed, n=n, stop=tuple(stop))
        return self.generate_batch([self.ids(p) for p in prompts], gcfg)

    def generate_batch(self, prompts: list[list[int]], cfg: GenerationConfig) -> list[list[Completion]]:
        """`generate` with a GenerationConfig (greedy or sample): cfg.n Completions per prompt."""
        if cfg.strategy == "beam":
            return [self.beam(p, cfg) for p in prompts]
        for p in prompts:
            self.check_prompt(p, cfg)
        out: list[list[Completion]] = [[] for _ in prompts]
        if not prompts:
            return out
        own_tree = self.tree is None and len(prompts) > 1
        if own_tree:  # shared prefixes of this call's prompts are computed once
            self.tree = PrefixTree(sum(map(len, prompts)))
        try:
            by_len: dict[int, list[int]] = {}
            for i, p in enumerate(prompts):
                by_len.setdefault(len(p), []).append(i)
            per = max(1, MAX_BATCH_ROWS // cfg.n)
            for idx in by_len.values():
                for lo in range(0, len(idx), per):
                    part = idx[lo : lo + per]
                    for i, comps in zip(part, self._batch([prompts[i] for i in part], part, cfg), strict=True):
                        out[i] = comps
        finally:
            if own_tree:
                self.tree = None
        return out

    def _batch(self, prompts: list[list[int]], index: list[int], cfg: GenerationConfig) -> list[list[Completion]]:
        """Prompts of one length, n rows each, decoded together; index: their places in the call."""
        n = cfg.n
        if cfg.max_tokens == 0:
            return [[Completion([], [], "length") for _ in range(n)] for _ in prompts]
        caches, logits = [], []
        for p in prompts:
            c, lg = self.prefill(p)
            caches.append(c)
            logits.append(lg)
        cache = KVCache.stack([c for c in caches for _ in range(n)], capacity=self.cfg.context_length)
        for c in caches:
            self.release(c)  # stacked: the rows own a copy now
        rows_logits = torch.stack([lg for lg in logits for _ in range(n)])
        gens = [make_generator(row_seed(cfg.seed, i, j)) for i in index for j in range(n)]
        seqs = [list(p) for p in prompts for _ in range(n)]
        R = len(seqs)
        toks: list[list[int]] = [[] for _ in range(R)]
        lps: list[list[float]] = [[] for _ in range(R)]
        reasons = ["length"] * R
        if R == 1:  # one row: its own generator either way
            gens = gens[:1]
        for ev in self._rows(seqs, cfg, gens, cache, rows_logits):
            toks[ev.row].append(ev.token)
            lps[ev.row].append(ev.logprob)
            if ev.finished:
                reasons[ev.row] = ev.finished
        comps = self._completions(toks, lps, reasons, stop_bytes(cfg.stop))
        return [comps[k * n : (k + 1) * n] for k in range(len(prompts))]

    def _completions(self, toks, lps, reasons, stops: list[bytes]) -> list[Completion]:
        out = []
        for t, lp, why in zip(toks, lps, reasons, strict=True):
            kept, data = self.text.cut(t, stops)
            out.append(Completion(kept, lp[: len(kept)], why, text=data.decode("utf-8", "replace"), data=data))
        return out

    def complete(self, ids: list[int], cfg: GenerationConfig) -> list[Completion]:
        """cfg.n whole answers to one prompt (any strategy; stop strings removed)."""
        if cfg.strategy == "beam":
            return self.beam(ids, cfg)
        toks: list[list[int]] = [[] for _ in range(cfg.n)]
        lps: list[list[float]] = [[] for _ in range(cfg.n)]
        reasons = ["length"] * cfg.n
        for ev in self.stream(ids, cfg):
            toks[ev.row].append(ev.token)
            lps[ev.row].append(ev.logprob)
            if ev.finished:
                reasons[ev.row] = ev.finished
        return self._completions(toks, lps, reasons, stop_bytes(cfg.stop))

    # --- beam search -----------------------------------------------------------------------------

    def beam(self, ids: list[int], cfg: GenerationConfig) -> list[Completion]:
        """Beam search. Each step extends every live beam by every token and keeps the beam_width
        candidates with the highest summed log-probability; a kept candidate that ends with a stop
        string or reaches max_tokens is finished and scored sum(log p) / length ** length_penalty.
        The search ends when no beam is live; the n best finished answers are returned, best first
        (ties: the earlier finished). The live beams' caches are reordered with KVCache.select."""
        if cfg.strategy != "beam":
            raise ConfigError(f"Engine.beam needs strategy beam, got {cfg.strategy}")
        self.check_prompt(ids, cfg)
        if cfg.max_tokens == 0:
            return [Completion([], [], "length", 0.0)]
        stops = stop_bytes(cfg.stop)
        cache, logits = self.prefill(ids)
        self.release(cache)  # the beams share its segments by reference; the tree may evict them
        logits = logits[None]  # (1, V)
        beams: list[tuple[list[int], list[float], float]] = [([], [], 0.0)]  # tokens, logprobs, score
        finished: list[tuple[float, int, Completion]] = []
        W = cfg.beam_width
        while beams:
            lp = F.log_softmax(logits, dim=-1)  # (live, V)
            total = torch.tensor([b[2] for b in beams], dtype=lp.dtype)[:, None] + lp  # (live, V)
            flat = total.flatten()
            # stable order: higher score first, then lower beam index, then lower token id
            order = torch.sort(flat, descending=True, stable=True).indices[:W]
            V = lp.size(-1)
            keep, nxt = [], []
            for j in order.tolist():
                b, t = divmod(j, V)
                toks, lps, _ = beams[b]
                cand = (toks + [t], lps + [float(lp[b, t])], float(flat[j]))
                stopped = self.text.finished(cand[0], stops)
                if stopped or len(cand[0]) == cfg.max_tokens:
                    why = stopped or "length"
                    score = cand[2] / len(cand[0]) ** cfg.length_penalty
                    finished.append((score, len(finished), Completion(cand[0], cand[1], why, score)))
                else:
                    keep.append(b)
                    nxt.append(cand)
            self.stats.generated += len(order)
            beams = nxt
            if not beams:
                break
            cache = cache.expand(len(keep)) if cache.batch == 1 and len(beams) > 1 else cache.select(keep)
            if cache.length + 1 > self.cfg.context_length:
                cache, logits = self.slide([ids + b[0] for b in beams])
            else:
                logits = self.forward(torch.tensor([[b[0][-1]] for b in beams]), cache)[:, -1]
        finished.sort(key=lambda f: (-f[0], f[1]))
        out = []
        for _, _, c in finished[: cfg.n]:
            c.tokens, c.data = self.text.cut(c.tokens, stops)
            c.logprobs = c.logprobs[: len(c.tokens)]
            c.text = c.data.decode("utf-8", "replace")
            out.append(c)
        return out

    def ids(self, prompt: Prompt) -> list[int]:
        """A prompt as token ids: bytes or str through the engine's tokenizer, ids as they are."""
        if isinstance(prompt, bytes | str):
            return self.text.encode(prompt)
        return [int(t) for t in prompt]
