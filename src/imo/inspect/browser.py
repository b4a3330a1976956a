"""A static feature browser for a sparse autoencoder: the SAE's latents over validation text of its
language model, written as a site that opens from file:// with no server.

What a feature page shows follows neuronpedia's feature pages (density, top activations and
quantile samples, ± logits) and OpenAI's sae-viewer (the per-token effect of ablating the feature
on the loss), plus the nearest features by decoder cosine. The page data are JavaScript files
(`data/index.js`, `data/chunk-NNN.js`) because a page opened from file:// may load scripts but not
fetch JSON. The HTML, CSS and JS beside this module (site/) are copied as they are.

    data = collect(model, tok, sae, hook, windows, BrowseConfig())
    write_site(Path("site"), data, meta={...}, force=False)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from imo.atomic import write_text
from imo.errors import ConfigError
from imo.inspect.lens import direction_logits
from imo.model.hooks import hook_points, hooks

ASSETS = Path(__file__).parent / "site"
CHUNK = 64  # features per data file


@dataclass(frozen=True)
class BrowseConfig:
    windows: int = 64         # validation windows scanned
    context: int = 128        # tokens per window (0: the model's context length)
    examples: int = 8         # examples in the top bin and in each quantile bin
    bins: int = 4             # quantile intervals of the feature's nonzero activations
    left: int = 24            # tokens shown before the activating one
    right: int = 8            # and after it
    ablate: int = 8           # top examples whose per-position ablation effect is measured
    ablate_features: int = 0  # ... on features 0 .. N-1 only (0: every feature); each costs forward passes
    logits: int = 10          # top + and - next-token logits shown
    neighbours: int = 6       # nearest features by decoder cosine
    seed: int = 0

    def check(self) -> None:
        if min(self.windows, self.examples, self.bins, self.logits, self.neighbours) < 1:
            raise ConfigError("windows, examples, bins, logits and neighbours must be positive")
        if min(self.context, self.left, self.right, self.ablate, self.ablate_features) < 0:
            raise ConfigError("context, left, right, ablate and ablate_features must not be negative")


def token_text(tok, i: int) -> str:
    """A token as a short printable string: its UTF-8 text, with newlines and tabs made visible
    and bytes that are not text (half of a UTF-8 character, for byte models) as \\xNN."""
    b = tok.token_bytes(int(i))
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        s = "".join(chr(c) if 32 <= c < 127 else f"\\x{c:02x}" for c in b)
    return s.replace("\n", "↵").replace("\t", "→").replace("\r", "␍")


@torch.no_grad()
def feature_acts(model: nn.Module, sae: nn.Module, hook: str, windows: Tensor, batch: int = 8) -> Tensor:
    """(W, T, F) SAE codes of `hook`'s activations over windows (W, T), and the clean next-token
    losses (W, T - 1) as a second value."""
    if hook not in hook_points(model):
        raise ConfigError(f"the SAE's hook point {hook!r} is not in this model")
    codes, losses = [], []
    seen = {}
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch]
        with hooks(model, {hook: lambda a: seen.__setitem__("x", a)}), model.attention_backend("naive"):
            logits, _ = model(w)
        codes.append(sae.encode(seen["x"].float()))
        losses.append(_token_losses(logits, w))
    return torch.cat(codes), torch.cat(losses)


def _token_losses(logits: Tensor, windows: Tensor) -> Tensor:
    """Cross-entropy (nats) of predicting token t + 1 at each position t: (B, T - 1)."""
    return nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), windows[:, 1:],
                                       reduction="none")


@torch.no_grad()
def ablation_effect(model: nn.Module, sae: nn.Module, hook: str, feature: int, windows: Tensor,
                    clean_loss: Tensor) -> Tensor:
    """(B, T - 1): the rise in the loss of predicting each token when `feature` is removed from
    the hook's activation at every position (x -> x - f_i(x) W_dec[i], so the SAE's error term
    stays in). Positive: the feature helped predict that token."""
    d = sae.W_dec[feature]

    def ablate(a: Tensor) -> Tensor:
        f = sae.encode(a.float())[..., feature:feature + 1]
        return (a.float() - f * d).to(a.dtype)

    with hooks(model, {hook: ablate}), model.attention_backend("naive"):
        logits, _ = model(windows)
    return _token_losses(logits, windows) - clean_loss


def _spread(order: np.ndarray, T: int, gap: int, n: int) -> list[int]:
    """The first n flat positions of `order` no closer than `gap` to one already taken in the
    same window (so the top examples are not one context shown n times)."""
    taken: list[int] = []
    for p in order:
        if all(p // T != q // T or abs(int(p) - q) > gap for q in taken):
            taken.append(int(p))
            if len(taken) == n:
                break
    return taken


def _example(tok, windows: Tensor, acts: np.ndarray, flat: int, cfg: BrowseConfig,
             effect: np.ndarray | None = None) -> dict:
    """One highlighted context: tokens, this feature's activation on each, the position it
    was picked for, and (top examples) each token's ablation effect."""
    T = windows.shape[1]
    w, p = divmod(flat, T)
    lo, hi = max(0, p - cfg.left), min(T, p + cfg.right + 1)
    ex = {"window": w, "start": lo, "pos": p - lo, "tokens": [token_text(tok, t) for t in windows[w, lo:hi].tolist()],
          "acts": [round(float(a), 4) for a in acts[w, lo:hi]]}
    if effect is not None:  # effect[t] is the loss of token t + 1: shift it onto the token predicted
        ex["effect"] = [None if t == 0 else round(float(effect[t - 1]), 4) for t in range(lo, hi)]
    return ex


@torch.no_grad()
def collect(model: nn.Module, tok, sae: nn.Module, hook: str, windows: Tensor,
            cfg: BrowseConfig, log=None) -> dict:
    """Everything the site shows, as plain lists and numbers: {"features": [...], "hist": ...}."""
    cfg.check()
    codes, clean = feature_acts(model, sae, hook, windows)
    W, T, F = codes.shape
    codes_np = codes.numpy()
    density = (codes > 0).float().mean((0, 1)).numpy()
    ups, downs = [], []   # top ± logits per feature, 256 features at a time: (F, vocab) may be large
    for j in range(0, F, 256):
        dl = direction_logits(model, sae.W_dec[j:j + 256].float())     # (<=256, vocab)
        ups.append(dl.topk(cfg.logits, dim=1))
        downs.append((-dl).topk(cfg.logits, dim=1))
    Wn = nn.functional.normalize(sae.W_dec.float(), dim=1)
    rng = np.random.default_rng(cfg.seed)
    feats = []
    for i in range(F):
        a = codes_np[:, :, i]
        flat = a.reshape(-1)
        nz = np.flatnonzero(flat > 0)
        up, down = ups[i // 256], downs[i // 256]
        up = [(float(v), int(t)) for v, t in zip(up.values[i % 256], up.indices[i % 256], strict=True)]
        down = [(-float(v), int(t)) for v, t in zip(down.values[i % 256], down.indices[i % 256], strict=True)]
        cos = Wn @ Wn[i]
        cos[i] = -2.0
        near = cos.topk(min(cfg.neighbours, F - 1))
        feat = {"id": i, "density": float(density[i]), "max": float(flat.max(initial=0.0)),
                "pos_logits": [[token_text(tok, t), round(v, 3)] for v, t in up],
                "neg_logits": [[token_text(tok, t), round(v, 3)] for v, t in down],
                "neighbours": [[int(j), round(float(c), 3)] for c, j in zip(near.values, near.indices, strict=True)],
                "top": [], "bins": [], "hist": None}
        if len(nz):
            vals = flat[nz]
            counts, edges = np.histogram(vals, bins=16, range=(0.0, float(vals.max())))
            feat["hist"] = {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()}
            top = _spread(nz[np.argsort(-vals, kind="stable")], T, cfg.left, cfg.examples)
            effects = {}
            if cfg.ablate and (cfg.ablate_features == 0 or i < cfg.ablate_features):
                rows = sorted({p // T for p in top[:cfg.ablate]})
                # the model is causal, so the shown tokens' losses need the windows only up to the
                # last token shown: the forward pass stops there
                end = min(T, max(p % T for p in top[:cfg.ablate]) + cfg.right + 1)
                eff = ablation_effect(model, sae, hook, i, windows[rows, :end], clean[rows, :end - 1]).numpy()
                effects = {w: eff[j] for j, w in enumerate(rows)}
            feat["top"] = [_example(tok, windows, a, p, cfg, effects.get(p // T) if k < cfg.ablate else None)
                           for k, p in enumerate(top)]
            edges_q = np.quantile(vals, np.linspace(0, 1, cfg.bins + 1))
            for b in range(cfg.bins - 1, -1, -1):   # highest interval first
                lo, hi = edges_q[b], edges_q[b + 1]
                inside = nz[(vals >= lo) & (vals <= hi)]
                if not len(inside):
                    continue
                pick = rng.choice(inside, size=min(cfg.examples, len(inside)), replace=False)
                pick = pick[np.argsort(-flat[pick], kind="stable")]
                feat["bins"].append({"lo": round(float(lo), 4), "hi": round(float(hi), 4),
                                     "q": [round(b / cfg.bins, 3), round((b + 1) / cfg.bins, 3)],
                                     "examples": [_example(tok, windows, a, int(p), cfg) for p in pick]})
            tops = [ex["tokens"][ex["pos"]] for ex in feat["top"]]
            common = sorted(set(tops), key=lambda s: (-tops.count(s), s))[:3]
            feat["label"] = " · ".join(s.replace(" ", "␣") for s in common)
        else:
            feat["label"] = "dead"
        feats.append(feat)
        if log and (i + 1) % max(1, F // 10) == 0:
            log(i + 1, F)
    logd = np.log10(np.maximum(density, 1e-10))
    alive = logd[density > 0]
    counts, edges = np.histogram(alive, bins=30) if len(alive) else (np.zeros(0, int), np.zeros(1))
    return {"features": feats, "tokens": W * T, "dead": int((density == 0).sum()),
            "log_density": {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()},
            "config": asdict(cfg)}


def check_out(out: Path, force: bool) -> None:
    """Refuse a file, or a non-empty folder without --force, before any work is done."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} is not empty", hint="pass --force to write the site into it anyway")


def _js(name: str, value) -> str:
    return f"window.{name} = {json.dumps(value, ensure_ascii=False, separators=(',', ':'))};\n"


def write_site(out: Path, data: dict, meta: dict, force: bool = False) -> Path:
    """Write the site: data/chunk-NNN.js (CHUNK features each), data/index.js (one line per
    feature for the list and the search), then the static files. Returns index.html's path."""
    check_out(out, force)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for old in (out / "data").glob("chunk-*.js"):   # a previous site's chunks (--force)
        old.unlink()
    feats = data["features"]
    for c in range(0, len(feats), CHUNK):
        write_text(out / "data" / f"chunk-{c // CHUNK:03d}.js",
                   f"window.IMO_CHUNKS = window.IMO_CHUNKS || {{}};\n"
                   f"window.IMO_CHUNKS[{c // CHUNK}] = {json.dumps(feats[c:c + CHUNK], ensure_ascii=False, separators=(',', ':'))};\n")
    rows = [[f["id"], f["density"], f["max"], f["label"], " ".join(t for t, _ in f["pos_logits"][:5])]
            for f in feats]
    index = {"meta": meta, "chunk": CHUNK, "features": rows, "tokens": data["tokens"], "dead": data["dead"],
             "log_density": data["log_density"], "config": data["config"]}
    write_text(out / "data" / "index.js", _js("IMO_INDEX", index))
    for asset in ("style.css", "live.js", "app.js", "index.html"):    # the page last: it needs the rest
        write_text(out / asset, (ASSETS / asset).read_text(encoding="utf-8"))
    return out / "index.html"

