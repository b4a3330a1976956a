"""Bits per byte of a token model on a text, so BPE and byte models compare directly.

The text is tokenized once and cut into consecutive windows of `context` tokens; each window is
one forward pass and predicts its tokens 2..context from the ones before them in the window (the
first token of a window has no context and is not scored; its bytes are left out of the count).
Bits/byte = sum of -log2 p(token) over the scored tokens / the bytes those tokens stand for
(`tokenizer.token_bytes`). With the byte tokenizer this is the usual bits per byte.

    bpb = bits_per_byte(model, tok, Path("alice29.txt").read_text(), context=512)
"""

import math

import torch
import torch.nn.functional as F

from imo.errors import ConfigError


@torch.no_grad()
def bits_per_byte(model, tokenizer, text: str, context: int = 512, batch: int = 4) -> tuple[float, int]:
    """(bits per byte, bytes scored)."""
    if context < 2:
        raise ConfigError(f"context must be >= 2 tokens, got {context}")
    ids = tokenizer.encode(text)
    windows = [ids[i : i + context] for i in range(0, len(ids), context)]
    windows = [w for w in windows if len(w) >= 2]
    if not windows:
        raise ConfigError("the text is too short to score (fewer than 2 tokens)")
    nats, nbytes = 0.0, 0
    for lo in range(0, len(windows), batch):
        group = windows[lo : lo + batch]
        for w in sorted({len(w) for w in group}):  # a shorter last window runs on its own
            rows = torch.tensor([g for g in group if len(g) == w])
            logits, _ = model(rows[:, :-1])
            nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), rows[:, 1:].reshape(-1), reduction="sum")
            nats += float(nll)
            nbytes += sum(len(tokenizer.token_bytes(int(t))) for t in rows[:, 1:].reshape(-1))
    return nats / math.log(2) / nbytes, nbytes


def evaluate_run_split(run_dir, model, meta, data, context: int, max_bytes: int | None = None) -> float:
    """`imo eval` on an imported run: the split's bytes (a uint8 array) as text, scored in
    windows of `context` tokens with the run's own tokenizer."""
    from imo.data.tokenizer import load_tokenizer

    raw = bytes(data[:max_bytes] if max_bytes else data)
    batch = max(1, 2048 // context)  # long contexts one window at a time (memory)
    return bits_per_byte(model, load_tokenizer(run_dir, meta), raw.decode("utf-8", "replace"), context, batch)[0]


def same_corpus(a: str | None, b: str | None) -> bool:
    """Whether two corpus names name the same text (file:/dir: paths compared resolved)."""
    from pathlib import Path

    def norm(n: str | None) -> str | None:
        if n and n.startswith(("file:", "dir:")):
            kind, path = n.split(":", 1)
            return f"{kind}:{Path(path).expanduser().resolve()}"
        return n

    return a is not None and norm(a) == norm(b)


def best_byte_model(store, corpus: str, split: str, max_bytes: int | None) -> dict | None:
    """The lowest bits/byte any byte model in the store reached on this corpus split: `imo eval`
    results with the same split and byte limit, and (whole validation split) the final figure of
    `imo train` runs on it. None when the store has none."""
    found = []
    for r in store.results("eval"):
        p = r["payload"]
        if same_corpus(p.get("corpus"), corpus) and p.get("split") == split and p.get("max_bytes") == max_bytes:
            run = next(iter(r["run_ids"]), None)
            if run and (store.get(run)["config"].get("tokenizer") or {}).get("kind", "byte") == "byte":
                found.append((p["bpb"], run, f"imo eval, context {p.get('context')}"))
    if split == "val" and max_bytes is None:
        for r in store.list(kind="train"):
            f = r["figures"]
            if r["status"] == "finished" and same_corpus(r["config"]["train"].get("corpus"), corpus) and f.get("val_bpb"):
                found.append((f["val_bpb"], r["id"], f"final validation of imo train, {f.get('steps')} steps"))
    if not found:
        return None
    bpb, run, how = min(found)
    return {"bpb": bpb, "run": run, "how": how}


def beside(store, corpus: str, split: str, data: bytes, train: bytes | None, max_bytes: int | None) -> dict:
    """What an imported model's figure is shown beside: xz -9e on the same bytes, xz -9e given the
    training split as a prefix (imo.baselines.conditional_bpb: the fair baseline for a model
    trained on it), and the store's best byte model on the same split."""
    from imo import baselines

    out = {"xz": baselines.bpb("xz", data), "byte_model": best_byte_model(store, corpus, split, max_bytes)}
    if train is not None:
        out["xz_given_train"] = baselines.conditional_bpb("xz", train, data)
    return out
