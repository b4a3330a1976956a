"""Parallel (whole-sequence, quadratic) forms of BSWA and Infini-attention without the delta rule,
written independently of imo.memory.model's block loop: the loop must compute the same function."""

import torch
import torch.nn.functional as F

from imo.memory.model import EPS


def reference_forward(model, idx):
    cfg, mem = model.cfg, model.mem
    B, S = idx.shape
    C, nh = cfg.n_embd, cfg.n_head
    pos = torch.arange(S)
    blk = pos // mem.block
    causal = pos[None, :] <= pos[:, None]  # (S, S): key j <= query i
    same = blk[None, :] == blk[:, None]
    window = causal & (blk[None, :] >= blk[:, None] - mem.mem_blocks)
    earlier = blk[None, :] < blk[:, None]  # key in an earlier block than the query
    x = model.transformer.wte(idx)
    for i, block in enumerate(model.transformer.h):
        q, k, v = (t.view(B, S, nh, C // nh).transpose(1, 2) for t in block.attn.c_attn(block.ln_1(x)).split(C, 2))
        qr, kr = model.positions.rotate(q, pos), model.positions.rotate(k, pos)
        if mem.arch == "bswa":
            y = F.scaled_dot_product_attention(qr, kr, v, attn_mask=window)
        else:
            local = F.scaled_dot_product_attention(qr, kr, v, attn_mask=causal & same)
            w = ((F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-2, -1)) * earlier  # (B, nh, S, S) linear attention
            read = (w @ v) / w.sum(-1, keepdim=True).clamp_min(EPS)
            g = torch.sigmoid(model.gate[i]).view(1, nh, 1, 1)
            y = g * read + (1 - g) * local
        x = x + block.attn.c_proj(y.transpose(1, 2).reshape(B, S, C))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(model.transformer.ln_f(x))
