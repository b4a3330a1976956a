"""In-context learning exam: induction heads in a byte model, and in-context linear regression.

Induction (Olsson et al. 2022, "In-context Learning and Induction Heads"). A byte GPT is trained
with imo's one training loop (imo.train.loop.fit) on sequences whose second part repeats the
first (a random string of 62 alphanumerics, period P drawn per sequence in [P_min, T/2]: the
"repeated random tokens" of the paper's figures, as a training corpus). Every `eval_every`
steps, on fixed held-out sequences:
  * the in-context score: loss (bits) at a late byte (the last) minus loss at an early byte
    (byte 4, always in the first period, so never predictable from context). It falls when the
    model learns to read the context: the paper's "phase change";
  * per-head prefix-matching scores: on sequences of period T/2, the attention a head pays from
    each position of the repeat to the byte after the earlier copy of its current byte.
At the end the top prefix-matching head is ablated (its output zeroed at `hook_z`) and the
in-context score measured again, beside the same ablation of another head of that layer.

Regression (Garg et al. 2022, "What Can Transformers Learn In-Context?"). A small transformer
(defined here; learned positions, pre-norm blocks) reads (x_1, f(x_1), ..., x_k, f(x_k), x_q)
with f(x) = w.x, x and w ~ N(0, I_d), d = 5, and predicts f(x_q); trained through the same loop
on the mean squared error at every x position. It is scored by the normalised squared error
(error / d, so predicting 0 scores 1) against k, beside least squares (minimum norm below d
points), 3-nearest-neighbour averaging and "averaging" (w estimated as mean(y_i x_i)), as in the
paper's Figure 2. Out of range (Naim and Asher 2024, "Re-examining learning linear functions in
context"): queries and prompts scaled by a factor s (s = 1 is the training distribution) —
least squares is exact at every s, a learned predictor need not be.

    out = induction_exam(InductionSize(), seed=0)
    out = regression_exam(RegressionSize(), seed=0)
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.errors import ConfigError

ALPHABETS = {"alnum": torch.tensor(list((string.ascii_letters + string.digits).encode())),  # 62 symbols
             "bytes": torch.arange(256)}
EARLY = slice(1, 7)  # predicted positions 1..6: bytes 2..7, inside the first period (P >= 8)
LATE = 8  # the last 8 predicted positions: inside the repeat (P <= T/2)
LN2 = math.log(2)


# --- induction heads --------------------------------------------------------------------------


@dataclass(frozen=True)
class InductionSize:
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    context_length: int = 64
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    eval_every: int = 20
    eval_rows: int = 128
    min_period: int = 8  # >= 8: the early bytes (2..7) are always in the first period
    pos: str = "rope"
    alphabet: str = "alnum"  # alnum (62 symbols) or bytes (256)

    def check(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "steps", "batch_size", "eval_every", "eval_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"width {self.n_embd} is not a multiple of heads {self.n_head}")
        if self.alphabet not in ALPHABETS:
            raise ConfigError(f"unknown alphabet {self.alphabet!r}; choose one of: {', '.join(ALPHABETS)}")
        if not 8 <= self.min_period <= self.context_length // 2:
            raise ConfigError(f"context {self.context_length} is too short: it needs two periods of at least "
                              f"{max(8, self.min_period)} bytes (the early bytes 2..7 lie in the first)")


def repeated(gen: torch.Generator, rows: int, length: int, lo: int, hi: int, alphabet: str = "alnum") -> Tensor:
    """(rows, length) bytes: a random string of the alphabet with period P ~ U[lo, hi], repeated."""
    symbols = ALPHABETS[alphabet]
    period = torch.randint(lo, hi + 1, (rows, 1), generator=gen)
    base = torch.randint(0, len(symbols), (rows, length), generator=gen)
    pos = torch.arange(length)[None] % period  # (rows, length)
    return symbols[base.gather(1, pos)]


def _batches(size: InductionSize) -> Callable[[torch.Generator, int], tuple[Tensor, Tensor]]:
    T = size.context_length

    def draw(gen: torch.Generator, m: int) -> tuple[Tensor, Tensor]:
        seq = repeated(gen, size.batch_size, T + 1, size.min_period, T // 2, size.alphabet)
        return seq[:, :-1], seq[:, 1:]

    return draw


@torch.no_grad()
def position_bits(model, seq: Tensor, fns: dict | None = None) -> Tensor:
    """Mean loss in bits at each predicted position (T,) of (B, T + 1) sequences, under hooks."""
    from imo.model.hooks import hooks

    with hooks(model, fns or {}):
        logits, _ = model(seq[:, :-1])
    nll = F.cross_entropy(logits.transpose(1, 2), seq[:, 1:], reduction="none")  # (B, T)
    return nll.mean(0) / LN2


def icl_score(bits: Tensor) -> float:
    """Loss at the late bytes (the last 8) minus loss at the early ones (bytes 2..7), in bits:
    windows of bytes rather than one each, so that held-out noise stays well under 0.1 bits."""
    return float(bits[-LATE:].mean() - bits[EARLY].mean())


def matching_sequences(gen: torch.Generator, rows: int, length: int, alphabet: str = "alnum") -> tuple[Tensor, Tensor]:
    """Sequences for prefix matching: a string of distinct symbols (so each byte's earlier copy is
    unique) with a period P ~ U[length/4, length/2] per row, repeated; and the periods (rows,).
    The period varies so that a head attending at a fixed distance cannot score."""
    symbols = ALPHABETS[alphabet]
    period = torch.randint(max(2, length // 4), length // 2 + 1, (rows,), generator=gen)
    out = torch.empty(rows, length, dtype=torch.long)
    for r in range(rows):
        p = int(period[r])
        base = symbols[torch.randperm(len(symbols), generator=gen)[:p]]
        out[r] = base[torch.arange(length) % p]
    return out, period


@torch.no_grad()
def prefix_matching(model, seq: Tensor, period: Tensor) -> Tensor:
    """(n_layer, n_head) prefix-matching scores (Olsson et al.): the mean attention from each
    position i of the repeat (i >= P) to i - P + 1, the byte after the earlier copy of i's byte."""
    from imo.model.hooks import run_with_cache

    B, T = seq.shape
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(model.cfg.n_layer)]
    _, cache = run_with_cache(model, seq, names)
    i = torch.arange(T)[None]  # (1, T)
    valid = i >= period[:, None]  # (B, T)
    target = (i - period[:, None] + 1).clamp(min=0)  # (B, T)
    out = []
    for n in names:
        att = cache[n]  # (B, nh, T, T)
        got = att.gather(3, target[:, None, :, None].expand(B, att.shape[1], T, 1))[..., 0]  # (B, nh, T)
        out.append((got * valid[:, None]).sum(dim=(0, 2)) / valid.sum())
    return torch.stack(out)


def ablate(layer: int, head: int) -> dict:
    """Hooks that zero one head's output (its slice of hook_z, before the output projection)."""
    def zero(z: Tensor) -> Tensor:  # (B, nh, T, hs)
        z = z.clone()
        z[:, head] = 0
        return z

    return {f"blocks.{layer}.attn.hook_z": zero}


def induction_exam(size: InductionSize, seed: int = 0, log: Callable[[str], None] = lambda m: None,
                   quiet: bool = True) -> dict:
    """Train a byte model on repeated strings and log the in-context score and prefix-matching
    scores over training; at the end ablate the top head. Returns the curves and figures."""
    from imo.model.config import ModelConfig
    from imo.model.families import build_model
    from imo.train.loop import FitConfig, fit

    size.check()
    T = size.context_length
    torch.manual_seed(seed)
    model = build_model(ModelConfig(n_layer=size.n_layer, n_embd=size.n_embd, n_head=size.n_head,
                                    context_length=T, pos=size.pos, bias=False))
    held = torch.Generator().manual_seed(10_000 + seed)  # held-out sequences, never trained on
    score_seq = repeated(held, size.eval_rows, T + 1, size.min_period, T // 2, size.alphabet)
    match_seq, match_period = matching_sequences(held, size.eval_rows, T, size.alphabet)
    curve: list[dict] = []

    def measure(step: int, m) -> dict:
        was = m.training
        m.eval()
        bits = position_bits(m, score_seq)
        pm = prefix_matching(m, match_seq, match_period)
        m.train(was)
        row = {"step": step, "icl_score": icl_score(bits), "early_bits": float(bits[EARLY].mean()),
               "late_bits": float(bits[-LATE:].mean()), "prefix_matching": pm.tolist(), "top_prefix": float(pm.max())}
        curve.append(row)
        return row

    def probe(info) -> dict | None:
        if info.step % size.eval_every and info.step != size.steps:
            return None
        row = measure(info.step, info.model)
        log(f"step {info.step}: in-context score {row['icl_score']:+.3f} bits, top prefix-matching {row['top_prefix']:.3f}")
        return {"icl/score": row["icl_score"], "icl/top_prefix": row["top_prefix"]}

    measure(0, model)
    cfg = FitConfig(steps=size.steps, lr=size.lr, warmup=min(50, size.steps // 10), seed=seed,
                    eval_every=size.steps, ckpt_every=size.steps, log_every=max(1, size.steps))
    fit(model, _batches(size), cfg, callbacks=[probe], quiet=quiet, label="icl")
    model.eval()
    return {"size": asdict(size), "seed": seed, "curve": curve, **_summary(model, curve, score_seq, size)}


def _summary(model, curve: list[dict], score_seq: Tensor, size: InductionSize) -> dict:
    steps = [r["step"] for r in curve]
    scores = [r["icl_score"] for r in curve]
    final = scores[-1]
    # the pre-drop score: the highest score before the curve reaches its lowest point (at
    # initialisation every position is equally unpredictable, so it is about 0)
    low = scores.index(min(scores))
    pre = max(scores[: low + 1])
    early = [s for st, s in zip(steps, scores, strict=True) if st <= 0.2 * size.steps]
    fall_20 = pre - min(early)
    half = pre - 0.5 * (pre - min(scores))
    drop_step = next(st for st, s in zip(steps, scores, strict=True) if s <= half)
    top = [r["top_prefix"] for r in curve]
    cross_step = next((st for st, v in zip(steps, top, strict=True) if v >= 0.5), None)
    top_at_drop = top[steps.index(drop_step)]
    pm = torch.tensor(curve[-1]["prefix_matching"])  # (n_layer, n_head)
    layer, head = divmod(int(pm.argmax()), pm.shape[1])
    other = int(pm[layer].argsort()[0])  # the least prefix-matching head of the same layer
    ablated = icl_score(position_bits(model, score_seq, ablate(layer, head)))
    control = icl_score(position_bits(model, score_seq, ablate(layer, other))) if other != head else final
    span = pre - final
    give_back = (ablated - final) / span if span > 0 else float("nan")
    control_back = (control - final) / span if span > 0 else float("nan")
    return {"pre_drop_score": pre, "final_score": final, "fall_first_20pct": fall_20, "drop_step": drop_step,
            "top_prefix_at_drop": top_at_drop, "top_prefix_crosses_half_at": cross_step,
            "top_head": [layer, head], "top_head_prefix": float(pm[layer, head]), "ablated_score": ablated,
            "give_back": give_back, "control_head": [layer, other], "control_score": control,
            "control_give_back": control_back}


# --- in-context linear regression -----------------------------------------------------------


@dataclass(frozen=True)
class RegressionSize:
    dim: int = 5
    points: int = 20  # (x, y) pairs in a training prompt; the model predicts y at each x
    n_layer: int = 4
    n_embd: int = 64
    n_head: int = 4
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    test_prompts: int = 1000
    scales: tuple[float, ...] = (1.0, 2.0, 4.0)

    def check(self) -> None:
        for name in ("dim", "points", "n_layer", "n_embd", "n_head", "steps", "batch_size", "test_prompts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"width {self.n_embd} is not a multiple of heads {self.n_head}")
        if self.points < 2 * self.dim + 1:
            raise ConfigError(f"--points must be at least 2 * dim + 1 = {2 * self.dim + 1} (the exam reads k = 2d)")
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError("--scales must be positive numbers")


class RegressionTransformer(nn.Module):
    """A GPT-style causal transformer over vectors: each x_i and each y_i (as (y, 0, ..., 0)) is
    one token of width d; a linear read-in, learned positions, pre-norm blocks, a linear read-out
    of one number at every token (the prediction of the next y, read at x tokens)."""

    def __init__(self, dim: int, points: int, n_layer: int, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.read_in = nn.Linear(dim, n_embd)
        self.pos = nn.Parameter(torch.randn(2 * points, n_embd) * 0.02)
        layer = nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(n_embd)
        self.read_out = nn.Linear(n_embd, 1)

    def forward(self, xs: Tensor, ys: Tensor) -> Tensor:
        """xs (B, k, d), ys (B, k) -> predictions (B, k) of y_i from (x_1, y_1, ..., x_i)."""
        B, k, d = xs.shape
        y_tok = F.pad(ys[..., None], (0, d - 1))  # (B, k, d)
        seq = torch.stack([xs, y_tok], dim=2).reshape(B, 2 * k, d)  # x_1, y_1, x_2, y_2, ...
        h = self.read_in(seq) + self.pos[: 2 * k]
        mask = nn.Transformer.generate_square_subsequent_mask(2 * k)
        h = self.blocks(h, mask=mask, is_causal=True)
        return self.read_out(self.ln_f(h))[:, 0::2, 0]  # (B, k): the outputs at x tokens


def linear_tasks(gen: torch.Generator, rows: int, points: int, dim: int, scale: float = 1.0):
    """xs (rows, points, dim) and ys = xs @ w, with x, w ~ N(0, I); `scale` multiplies every x."""
    xs = torch.randn(rows, points, dim, generator=gen) * scale
    w = torch.randn(rows, dim, 1, generator=gen)
    return xs, (xs @ w)[..., 0]


def least_squares(xs: Tensor, ys: Tensor) -> Tensor:
    """Minimum-norm least squares on the first i points, predicting y_i, for each i: (B, k)."""
    B, k, d = xs.shape
    out = torch.zeros(B, k)
    for i in range(1, k):
        w = torch.linalg.pinv(xs[:, :i]) @ ys[:, :i, None]  # (B, d, 1)
        out[:, i] = (xs[:, i : i + 1] @ w)[:, 0, 0]
    return out


def nearest_neighbours(xs: Tensor, ys: Tensor, n: int = 3) -> Tensor:
    """Mean y of the n nearest earlier x (all of them when fewer): (B, k)."""
    B, k, d = xs.shape
    out = torch.zeros(B, k)
    for i in range(1, k):
        dist = (xs[:, :i] - xs[:, i : i + 1]).norm(dim=-1)  # (B, i)
        idx = dist.topk(min(n, i), largest=False).indices
        out[:, i] = ys[:, :i].gather(1, idx).mean(1)
    return out


def averaging(xs: Tensor, ys: Tensor) -> Tensor:
    """w estimated as the mean of y_j x_j over earlier points (Garg et al.'s "averaging"): (B, k)."""
    B, k, d = xs.shape
    out = torch.zeros(B, k)
    csum = torch.cumsum(ys[..., None] * xs, dim=1)  # (B, k, d)
    for i in range(1, k):
        out[:, i] = (xs[:, i] * csum[:, i - 1] / i).sum(-1)
    return out


def normalised_error(pred: Tensor, ys: Tensor, dim: int) -> list[float]:
    """Mean squared error at each number of in-context points k = 0..K-1, divided by d."""
    return ((pred - ys) ** 2).mean(0).div(dim).tolist()


def regression_exam(size: RegressionSize, seed: int = 0, log: Callable[[str], None] = lambda m: None,
                    quiet: bool = True) -> dict:
    """Train the regression transformer and score it beside the baselines, in and out of range."""
    from imo.train.loop import FitConfig, fit

    size.check()
    torch.manual_seed(seed)
    model = RegressionTransformer(size.dim, size.points, size.n_layer, size.n_embd, size.n_head)

    def draw(gen: torch.Generator, m: int):
        return linear_tasks(gen, size.batch_size, size.points, size.dim)

    def mse(model, batch) -> Tensor:
        xs, ys = batch
        return F.mse_loss(model(xs, ys), ys)

    cfg = FitConfig(steps=size.steps, lr=size.lr, warmup=min(200, size.steps // 10), seed=seed,
                    eval_every=size.steps, ckpt_every=size.steps, log_every=max(1, size.steps))
    log(f"training the regression transformer ({size.steps} steps)")
    fit(model, draw, cfg, loss_fn=mse, quiet=quiet, label="icl-regression")
    model.eval()
    test = torch.Generator().manual_seed(20_000 + seed)
    by_scale = {}
    for s in size.scales:
        xs, ys = linear_tasks(test, size.test_prompts, size.points, size.dim, s)
        with torch.no_grad():
            tf = model(xs, ys)
        norm = size.dim * s * s  # the variance of y at this scale: predicting 0 scores 1
        by_scale[f"{s:g}"] = {name: [e * size.dim / norm for e in normalised_error(p, ys, size.dim)]
                              for name, p in (("transformer", tf), ("least squares", least_squares(xs, ys)),
                                              ("3-NN", nearest_neighbours(xs, ys)), ("averaging", averaging(xs, ys)))}
    k = 2 * size.dim
    at = {name: errs[k] for name, errs in by_scale["1"].items()} if "1" in by_scale else {}
    return {"size": asdict(size), "seed": seed, "k": k, "errors": by_scale, "at_2d": at}


# --- plots ----------------------------------------------------------------------------------


def _png(fig) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def plot_induction(out: dict) -> bytes:
    """The in-context score and the top prefix-matching score over training (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in out["curve"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["icl_score"] for r in out["curve"]], color="C0", label="in-context score")
    ax.axhline(out["ablated_score"], color="C0", ls=":", label=f"top head {tuple(out['top_head'])} ablated")
    ax.axvline(0.2 * out["size"]["steps"], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss at last byte - loss at byte 4 (bits)", color="C0")
    right = ax.twinx()
    pm = torch.tensor([r["prefix_matching"] for r in out["curve"]])  # (evals, n_layer, n_head)
    for layer in range(pm.shape[1]):
        for head in range(pm.shape[2]):
            right.plot(steps, pm[:, layer, head], lw=0.8, alpha=0.6, color=f"C{1 + layer}")
    right.set_ylabel("prefix-matching score per head (layer 0: C1, 1: C2, ...)")
    right.set_ylim(0, 1)
    ax.legend(loc="center right")
    ax.set_title(f"induction: {out['size']['n_layer']}x{out['size']['n_embd']} byte model, seed {out['seed']}")
    return _png(fig)


def plot_regression(out: dict) -> bytes:
    """Normalised error against in-context points, one panel per input scale (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = list(out["errors"])
    fig, axes = plt.subplots(1, len(scales), figsize=(4 * len(scales), 3.5), squeeze=False)
    for ax, s in zip(axes[0], scales, strict=True):
        for name, errs in out["errors"][s].items():
            ax.plot(range(len(errs)), errs, label=name)
        ax.axvline(out["k"], color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1.5)
        ax.set_xlabel("in-context points k")
        ax.set_title(f"inputs x {s}" + (" (training range)" if s == "1" else " (out of range)"))
    axes[0][0].set_ylabel("squared error / (d * scale^2)")
    axes[0][0].legend()
    return _png(fig)
