"""Model FLOPs per trained token, counted the way nanoGPT's `estimate_mfu` and PaLM (Chowdhury et
al. 2022, appendix B) count them, and the matmul shapes of one training step.

Per token: 6N for the weight matmuls (2 forward, 4 backward, per parameter), plus 12 * L * C * T
for attention's QK^T and AV (forward + backward, over the full T x T square, causal mask or not).
N is every parameter except the position table (a lookup, not a matmul); a tied embedding counts
once, as the lm_head matmul. Multi-token heads (n_future > 1) are extra blocks plus one more
lm_head matmul each. MFU = tokens/s * flops_per_token / peak FLOP/s.

    fpt = flops_per_token(model.cfg, model.num_params(non_embedding=True))
"""

from imo.model.config import ModelConfig


def matmul_params(cfg: ModelConfig) -> int:
    """N of 6N: the weights a token passes through as matmuls, from the config alone."""
    C, V, L = cfg.n_embd, cfg.vocab_size, cfg.n_layer + cfg.n_future - 1
    per_block = 12 * C * C + 2 * C + (11 * C if cfg.bias else 0)  # 4 matmuls, 2 LN gains, biases
    return L * per_block + (2 * C if cfg.bias else C) + V * C * cfg.n_future  # ln_f; lm_head per head


def flops_per_token(cfg: ModelConfig, context: int | None = None) -> int:
    """Training FLOPs per token (forward + backward) at sequence length `context`
    (default: the training context)."""
    T = context or cfg.context_length
    L = cfg.n_layer + cfg.n_future - 1
    return 6 * matmul_params(cfg) + 12 * L * cfg.n_embd * T


def step_matmuls(cfg: ModelConfig, tokens: int) -> list[tuple[int, int, int, bool, bool]]:
    """(M, K, N, a transposed, b transposed) of every weight matmul of a training step over
    `tokens` rows, in the layouts autograd uses for nn.Linear (weight W stored N x K): forward
    X @ W^T, input gradient dY @ W, weight gradient dY^T @ X. `imo doctor` times these to give a
    peak at the model's own shapes."""
    C, V = cfg.n_embd, cfg.vocab_size
    weights = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * (cfg.n_layer + cfg.n_future - 1)
    weights += [(C, V)] * cfg.n_future
    out = []
    for k, n in weights:
        out += [(tokens, k, n, False, True), (tokens, n, k, False, False), (n, tokens, k, True, False)]
    return out


def mfu(tokens_per_s: float, cfg: ModelConfig, peak_flops: float, context: int | None = None) -> float:
    """Model FLOP/s as a share of `peak_flops` (0..1, or above 1 if the peak was underestimated)."""
    return tokens_per_s * flops_per_token(cfg, context) / peak_flops
