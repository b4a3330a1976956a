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
not used: one masked scaled_dot_product_attention call per layer and block.

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
        equals reading it in one, as long as each call but the last ends on a block boundary."""
        if state.tokens % self.mem.block:
            raise ConfigError(f"stream after {state.tokens} tokens: calls must end on block boundaries "
                              f"(multiples of {self.mem.block}) except the last")
        T, out = idx.size(1), []
        for s in range(0, T, self.mem.block):
            end = min(T, s + self.mem.block)
            logits, state = self.step(idx[:, s:end], state)
            if keep is None or end > T - keep:
                out.append(logits)
        logits = torch.cat(out, 1) if out else idx.new_zeros((idx.size(0), 0, self.cfg.vocab_size), dtype=torch.float)
        return (logits if keep is None else logits[:, -keep:]), state

    @torch.no_grad()
    def nll(self, idx: Tensor, targets: Tensor, state: State | None = None) -> tuple[float, State]:
        """Summed cross-entropy (nats) of targets (B, T) in constant memory: no logits are kept."""
        state = state or self.init_state(idx.size(0))
        total = 0.0
        for s in range(0, idx.size(1), self.mem.block):
            logits, state = self.step(idx[:, s : s + self.mem.block], state)
            y = targets[:, s : s + self.mem.block]
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
        return total, state

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
