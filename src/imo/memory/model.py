"""Block-recurrent byte models built from the GPT's own blocks: BSWA, FAM and Infini-attention.

A sequence is cut into blocks of `block` tokens and read one block at a time; what one block
leaves for the next is a small per-layer state, so evaluating S tokens takes time linear in S and
memory constant in S (only the state and one block's activations are alive).

  * `bswa`   block sliding-window attention: a block attends causally to itself and to the keys
             and values of the previous `mem_blocks` blocks, which are the state.
  * `fam`    TransformerFAM (Hwang et al. 2024, "feedback attention is working memory"), on top
             of BSWA: each layer has `fam_tokens` memory vectors. Block tokens attend to them;
             they attend to the block and to themselves, pass through the same layer (attention +
             MLP) and the result is that layer's memory for the next block. No official code
             exists; lucidrains' recurrent-memory-transformer is the closest.
  * `infini` Infini-attention (Munkhdalai et al. 2024, "Leave No Context Behind"): causal
             attention inside the block, plus a compressive memory per layer and head, a matrix
             M (hs x hs) and a normaliser z (hs): read A = s(q) M / (s(q) z) with s = ELU + 1,
             write M += s(k)^T v (or, with the delta rule, v minus what M already returns) and
             z += sum s(k). A learned gate per head mixes the two: sigmoid(beta) * A_mem +
             (1 - sigmoid(beta)) * A_local (lucidrains/infini-transformer-pytorch has the same
             per-head gate and delta rule). The memory uses q and k before RoPE.

Positions: RoPE at positions inside the window (block tokens of the current block come after the
kept ones), so no position ever exceeds the window and length does not change what the layers see.
FAM memory and the compressive memory carry no position. The attention backend of the config is
not used: masked scaled_dot_product_attention calls.

Two forms of the same function: `step` reads one block (the plain recurrence, the reference), and
`span` reads several blocks at once, in parallel where the recurrence allows it: one banded
attention per layer over all their tokens, with a loop over blocks only for what is sequential
(FAM's memory tokens, Infini's matrix). stream(), nll() and training read spans of
SPAN_TOKENS; a test checks that spans equal the block loop (logits, states and gradients).

Parameter names are the GPT's (`transformer.h.{i}.attn.c_attn`, ...) plus `fam_init` or `gate`.

    model = MemoryLM(ModelConfig.preset("tiny"), MemoryConfig(arch="fam"))
    logits, loss = model(x, y)                       # (B, T) -> (B, T, 256), nats
    logits, state = model.stream(x1, model.init_state(B)); logits2, state = model.stream(x2, state)
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.memory.config import MemoryConfig
from imo.model.base import SavedWeights
from imo.model.config import ModelConfig
from imo.model.gpt import GPT, Block

SPAN_TOKENS = 256  # tokens read in parallel by stream() and nll(), rounded down to whole blocks
EPS = 1e-6  # the normaliser guard: before the first write z = 0 and the read-out is 0, not 0/0


@dataclass(frozen=True)
class LayerState:
    """What one layer carries to the next block; every field is (B, ...) or None."""

    k: Tensor | None = None  # kept keys, before RoPE (B, nh, P, hs)
    v: Tensor | None = None  # kept values (B, nh, P, hs)
    fam: Tensor | None = None  # FAM memory (B, M, C)
    mem: Tensor | None = None  # Infini matrix (B, nh, hs, hs)
    z: Tensor | None = None  # Infini normaliser (B, nh, hs)


@dataclass(frozen=True)
class State:
    layers: tuple[LayerState, ...]
    tokens: int = 0  # tokens read so far
    compressions: int = 0  # Infini: blocks written into the compressive memory

    def detach(self) -> "State":
        def d(t):
            return None if t is None else t.detach()

        return State(tuple(LayerState(d(s.k), d(s.v), d(s.fam), d(s.mem), d(s.z)) for s in self.layers),
                     self.tokens, self.compressions)


class MemoryLM(SavedWeights, nn.Module):
    def __init__(self, cfg: ModelConfig, mem: MemoryConfig) -> None:
        super().__init__()
        if cfg.pos not in ("rope", "none"):
            raise ConfigError(f"memory models take pos rope or none (positions inside the window), got {cfg.pos}")
        if cfg.family != "gpt" or cfg.n_future != 1:
            raise ConfigError("memory models reuse the gpt family's blocks with one output head (n_future 1)")
        gpt = GPT(cfg)  # the same initialisation as a GPT of this config and seed
        self.cfg, self.mem = cfg, mem
        self.positions = gpt.positions
        self.transformer = gpt.transformer
        self.lm_head = gpt.lm_head
        if mem.arch == "fam":
            self.fam_init = nn.Parameter(0.02 * torch.randn(cfg.n_layer, mem.fam_tokens, cfg.n_embd))
        if mem.arch == "infini":
            self.gate = nn.Parameter(torch.full((cfg.n_layer, cfg.n_head), float(mem.gate_init)))
        # stream() and nll() read this many blocks at a time in parallel (`span`); any value gives
        # the same function, it only trades attention work (S^2 per span) against steps
        self.span_blocks = max(1, SPAN_TOKENS // mem.block)

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wte.weight.numel() if non_embedding else n

    def gates(self) -> Tensor:
        """Infini: sigmoid(beta), the memory's share of each head's output (n_layer, n_head)."""
        return torch.sigmoid(self.gate.detach())

    # ---- state -------------------------------------------------------------------------------

    def init_state(self, batch: int) -> State:
        cfg, device = self.cfg, self.transformer.wte.weight.device
        nh, hs = cfg.n_head, cfg.head_size
        layers = []
        for i in range(cfg.n_layer):
            if self.mem.arch == "infini":
                layers.append(LayerState(mem=torch.zeros(batch, nh, hs, hs, device=device),
                                         z=torch.zeros(batch, nh, hs, device=device)))
                continue
            empty = torch.zeros(batch, nh, 0, hs, device=device)
            fam = self.fam_init[i].expand(batch, -1, -1) if self.mem.arch == "fam" else None
            layers.append(LayerState(k=empty, v=empty, fam=fam))
        return State(tuple(layers))

    # ---- reading ------------------------------------------------------------------------------

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx, targets: (B, T) from a fresh state -> logits (B, T, vocab) and the mean loss (nats)."""
        logits, _ = self.stream(idx, self.init_state(idx.size(0)))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))

    def stream(self, idx: Tensor, state: State, keep: int | None = None) -> tuple[Tensor, State]:
        """Read idx (B, T) after what `state` holds; returns the logits of its tokens (only the last
        `keep` of them when given) and the state after them. Reading a sequence in several calls
        equals reading it in one, as long as each call but the last ends on a block boundary.
        The tokens are read in spans of `span_blocks` blocks, each in parallel (`span`)."""
        if state.tokens % self.mem.block:
            raise ConfigError(f"stream after {state.tokens} tokens: calls must end on block boundaries "
                              f"(multiples of {self.mem.block}) except the last")
        T, out, n = idx.size(1), [], self.span_blocks * self.mem.block
        for s in range(0, T, n):
            end = min(T, s + n)
            logits, state = self.span(idx[:, s:end], state)
            if keep is None or end > T - keep:
                out.append(logits)
        logits = torch.cat(out, 1) if out else idx.new_zeros((idx.size(0), 0, self.cfg.vocab_size), dtype=torch.float)
        return (logits if keep is None else logits[:, -keep:]), state

    @torch.no_grad()
    def nll(self, idx: Tensor, targets: Tensor, state: State | None = None) -> tuple[float, State]:
        """Summed cross-entropy (nats) of targets (B, T) in constant memory: one span's logits at a time."""
        state = state or self.init_state(idx.size(0))
        total, n = 0.0, self.span_blocks * self.mem.block
        for s in range(0, idx.size(1), n):
            logits, state = self.span(idx[:, s : s + n], state)
            y = targets[:, s : s + n]
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
            del logits  # not alive while the next span runs
        return total, state

    # ---- a span of blocks at once ----------------------------------------------------------------

    def span(self, idx: Tensor, state: State) -> tuple[Tensor, State]:
        """Several blocks at once: idx (B, S) from a block boundary, S any length (the last block may
        be partial) -> logits (B, S, vocab) and the state after them. The same function as calling
        `step` block after block (a test checks it), computed in parallel: one masked attention per
        layer over the span's tokens, and for FAM a loop over blocks for the memory tokens alone,
        the part of the computation that is truly sequential (each block's memory is the last
        block's memory read through the layer). Infini loops over blocks for its matrix only."""
        x = self.transformer.drop(self.transformer.wte(idx))  # (B, S, C)
        new = []
        for i, block in enumerate(self.transformer.h):
            x, s = self._span_layer(i, block, x, state.layers[i], state.tokens)
            new.append(s)
        logits = self.lm_head(self.transformer.ln_f(x))
        blocks = -(-idx.size(1) // self.mem.block)
        written = state.compressions + (blocks if self.mem.arch == "infini" else 0)
        return logits, State(tuple(new), state.tokens + idx.size(1), written)

    def _merge(self, y: Tensor) -> Tensor:
        B, nh, T, hs = y.shape
        return y.transpose(1, 2).reshape(B, T, nh * hs)

    def _span_layer(self, i: int, block: Block, x: Tensor, s: LayerState, tokens: int) -> tuple[Tensor, LayerState]:
        B, S, C = x.shape
        q, k, v = (self._heads(t) for t in block.attn.c_attn(block.ln_1(x)).split(C, dim=2))
        if self.mem.arch == "infini":
            y, s = self._span_infini(i, q, k, v, s)
        else:
            y, s = self._span_window(block, q, k, v, s, tokens)
        x = x + block.attn.resid_dropout(block.attn.c_proj(self._merge(y)))
        x = x + block.mlp(block.ln_2(x))
        return x, s

    def _span_window(self, block: Block, q: Tensor, k: Tensor, v: Tensor, s: LayerState,
                     tokens: int) -> tuple[Tensor, LayerState]:
        """BSWA over a span: one banded causal mask. Positions are those of the concatenation
        (kept keys, span); RoPE sees only differences, so each score is the block loop's. FAM: block
        b's memory tokens sit at RoPE position 0 of block b's window in the block loop (they carry no
        rotation); here they are rotated to o_b, the concatenation's position of that window's start,
        which gives every score the same position difference."""
        blk, dev = self.mem.block, q.device
        P, S = s.k.size(2), q.size(2)
        keys, vals = torch.cat([s.k, k], 2), torch.cat([s.v, v], 2)  # (B, nh, P + S, hs), before RoPE
        kept = max(0, P + S - self.mem.mem_blocks * blk)
        out = LayerState(keys[:, :, kept:], vals[:, :, kept:])
        pos = torch.arange(P + S, device=dev)
        kr, qr = self._rotate(keys, 0), self._rotate(q, P)
        absolute = pos + (tokens - P)  # each key's index in the whole sequence
        kb, qb = absolute // blk, absolute[P:] // blk
        mask = (pos[None, :] <= pos[P:, None]) & (kb[None, :] >= qb[:, None] - self.mem.mem_blocks)  # (S, P + S)
        fam = s.fam
        if fam is not None:
            M, starts = fam.size(1), range(0, S, blk)
            mk, mv = [], []
            for b0 in starts:
                c = P + b0  # the block's first token in the concatenation
                o = c - min(self.mem.mem_blocks * blk, tokens + b0)  # where its window starts
                qm, km, vm = (self._heads(t) for t in block.attn.c_attn(block.ln_1(fam)).split(fam.size(2), dim=2))
                at = torch.full((M,), o, device=dev)
                qm, km = self.positions.rotate(qm, at), self.positions.rotate(km, at)
                end = min(P + S, c + blk)
                y = F.scaled_dot_product_attention(qm, torch.cat([km, kr[:, :, c:end]], 2),
                                                   torch.cat([vm, vals[:, :, c:end]], 2))
                mk.append(km)
                mv.append(vm)
                fam = fam + block.attn.resid_dropout(block.attn.c_proj(self._merge(y)))
                fam = fam + block.mlp(block.ln_2(fam))
            group = torch.arange(len(mk), device=dev).repeat_interleave(M)  # (nb * M,) block of each memory key
            mask = torch.cat([group[None, :] == (pos[:S] // blk)[:, None], mask], 1)  # block b reads memory b
            kr, vals = torch.cat([*mk, kr], 2), torch.cat([*mv, vals], 2)
        y = F.scaled_dot_product_attention(qr, kr, vals, attn_mask=mask)
        return y, LayerState(out.k, out.v, fam)

    def _span_infini(self, i: int, q: Tensor, k: Tensor, v: Tensor, s: LayerState) -> tuple[Tensor, LayerState]:
        blk, S = self.mem.block, q.size(2)
        pos = torch.arange(S, device=q.device)
        local_mask = (pos[None, :] <= pos[:, None]) & (pos[None, :] // blk == pos[:, None] // blk)
        local = F.scaled_dot_product_attention(self._rotate(q, 0), self._rotate(k, 0), v, attn_mask=local_mask)
        sq, sk = F.elu(q) + 1, F.elu(k) + 1  # (B, nh, S, hs), positive
        mem, z, reads = s.mem, s.z, []
        for b0 in range(0, S, blk):
            qb, kb, vb = sq[:, :, b0 : b0 + blk], sk[:, :, b0 : b0 + blk], v[:, :, b0 : b0 + blk]
            reads.append((qb @ mem) / (qb @ z.unsqueeze(-1)).clamp_min(EPS))
            write = vb
            if self.mem.delta:
                write = vb - (kb @ mem) / (kb @ z.unsqueeze(-1)).clamp_min(EPS)
            mem = mem + kb.transpose(-2, -1) @ write
            z = z + kb.sum(2)
        g = torch.sigmoid(self.gate[i]).view(1, -1, 1, 1)
        return g * torch.cat(reads, 2) + (1 - g) * local, LayerState(mem=mem, z=z)

    # ---- one block at a time: the plain recurrence (the reference the span form must equal) -------

    def step(self, idx: Tensor, state: State) -> tuple[Tensor, State]:
        """One block: idx (B, T <= block) -> logits (B, T, vocab) and the next state."""
        if idx.size(1) > self.mem.block:
            raise ConfigError(f"a block has at most {self.mem.block} tokens, got {idx.size(1)}")
        x = self.transformer.drop(self.transformer.wte(idx))  # (B, T, C)
        new = []
        for i, block in enumerate(self.transformer.h):
            x, s = self._layer(i, block, x, state.layers[i])
            new.append(s)
        logits = self.lm_head(self.transformer.ln_f(x))
        written = state.compressions + (1 if self.mem.arch == "infini" else 0)
        return logits, State(tuple(new), state.tokens + idx.size(1), written)

    def _heads(self, t: Tensor) -> Tensor:
        B, T, C = t.shape
        return t.view(B, T, self.cfg.n_head, C // self.cfg.n_head).transpose(1, 2)  # (B, nh, T, hs)

    def _layer(self, i: int, block: Block, x: Tensor, s: LayerState) -> tuple[Tensor, LayerState]:
        """The GPT block's own computation (pre-LayerNorm attention, then MLP, both residual) over
        the block's tokens and, for FAM, the layer's memory tokens after them."""
        B, T, C = x.shape
        seq = x if s.fam is None else torch.cat([x, s.fam], 1)  # (B, T [+ M], C)
        q, k, v = (self._heads(t) for t in block.attn.c_attn(block.ln_1(seq)).split(C, dim=2))
        if self.mem.arch == "infini":
            y, s = self._infini(i, q, k, v, s)
        else:
            y, s = self._window(q, k, v, s, T)
        y = y.transpose(1, 2).reshape(B, seq.size(1), C)  # (B, T [+ M], C): heads side by side
        seq = seq + block.attn.resid_dropout(block.attn.c_proj(y))
        seq = seq + block.mlp(block.ln_2(seq))
        if s.fam is not None:
            s = LayerState(s.k, s.v, seq[:, T:], None, None)
        return seq[:, :T], s

    def _rotate(self, t: Tensor, start: int) -> Tensor:
        return self.positions.rotate(t, torch.arange(start, start + t.size(2), device=t.device))

    def _window(self, q: Tensor, k: Tensor, v: Tensor, s: LayerState, T: int) -> tuple[Tensor, LayerState]:
        """BSWA (and FAM's attention): block queries see the kept keys and their own causal past;
        FAM queries (after position T) see every block token and all memory tokens."""
        P = s.k.size(2)
        keys = torch.cat([s.k, k[:, :, :T]], 2)  # (B, nh, P + T, hs), before RoPE
        vals = torch.cat([s.v, v[:, :, :T]], 2)
        qr, kr, vr = self._rotate(q[:, :, :T], P), self._rotate(keys, 0), vals
        dev = q.device
        mask = torch.arange(P + T, device=dev)[None, :] <= torch.arange(P, P + T, device=dev)[:, None]  # (T, P+T)
        if s.fam is not None:
            M = s.fam.size(1)
            qr = torch.cat([qr, q[:, :, T:]], 2)  # memory queries, no position
            kr, vr = torch.cat([k[:, :, T:], kr], 2), torch.cat([v[:, :, T:], vr], 2)
            fam_rows = torch.cat([torch.ones(M, M, dtype=torch.bool, device=dev),
                                  torch.zeros(M, P, dtype=torch.bool, device=dev),
                                  torch.ones(M, T, dtype=torch.bool, device=dev)], 1)
            mask = torch.cat([torch.cat([torch.ones(T, M, dtype=torch.bool, device=dev), mask], 1), fam_rows], 0)
        y = F.scaled_dot_product_attention(qr, kr, vr, attn_mask=mask)
        kept = self.mem.mem_blocks * self.mem.block
        start = max(0, keys.size(2) - kept)
        return y, LayerState(keys[:, :, start:], vals[:, :, start:], s.fam)

    def _infini(self, i: int, q: Tensor, k: Tensor, v: Tensor, s: LayerState) -> tuple[Tensor, LayerState]:
        local = F.scaled_dot_product_attention(self._rotate(q, 0), self._rotate(k, 0), v, is_causal=True)
        sq, sk = F.elu(q) + 1, F.elu(k) + 1  # (B, nh, T, hs), positive
        read = (sq @ s.mem) / (sq @ s.z.unsqueeze(-1)).clamp_min(EPS)  # (B, nh, T, hs)
        g = torch.sigmoid(self.gate[i]).view(1, -1, 1, 1)
        y = g * read + (1 - g) * local
        write = v
        if self.mem.delta:  # write only what the memory does not return yet
            write = v - (sk @ s.mem) / (sk @ s.z.unsqueeze(-1)).clamp_min(EPS)
        mem = s.mem + sk.transpose(-2, -1) @ write  # (B, nh, hs, hs)
        z = s.z + sk.sum(2)
        return y, LayerState(mem=mem, z=z)
