"""Claims about compression: a language model is a compressor, and a costly one.

* `nn-is-compressor`: byte-level GPTs of a few sizes (trained with `train_or_reuse`) score the
  held-out split of a text; the fair classic baseline gets the training split as a prefix (the
  model saw it too): bits(train + held-out) - bits(train), per held-out byte, for gzip, bzip2,
  xz and zstd. Reported with and without the model's bytes counted; beside them the `imo zip`
  network-alone row (an online MLP that starts from nothing) and the exact-recall rate of
  training text vs held-out text (imo.exams.recall): the verbatim part a model keeps is small,
  the rest is statistics, which is why a network is a *lossy* compressor of its training set.
* `compute-per-byte`: seconds and FLOPs per byte of `imo zip` (the default mix) against xz -9e
  and zstd -19 on the same bytes; the ratio of seconds per byte, and whether imo's ratio is
  equal or better. The FLOPs of the classic tools are not counted (they are integer code); their
  time is the comparison.

    imo check nn-is-compressor --quick
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imo.baselines import COMPRESSORS  # noqa: E402
from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402
from imo.errors import DataError  # noqa: E402

SHARED_TEXT = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "tinyshakespeare.txt"


CLASSIC = {k: COMPRESSORS[k].compress for k in ("gzip", "bzip2", "xz", "zstd")}  # the one table: imo.baselines


def conditional_bits(name: str, prefix: bytes, data: bytes) -> float:
    """Bits a classic compressor spends on `data` once it has seen `prefix` (imo.baselines' rule,
    here also for zstd)."""
    fn = CLASSIC[name]
    return 8.0 * (len(fn(prefix + data)) - len(fn(prefix)))


def corpus_for(budget: str) -> str:
    """smoke: the built-in python-docs (never evidence); quick/full: tinyshakespeare from
    ../shared/data, whose held-out tenth is unseen Shakespeare."""
    if budget == "smoke":
        return "python-docs"
    if not SHARED_TEXT.is_file():
        raise DataError(f"nn-is-compressor needs {SHARED_TEXT} at the {budget} budget (absent here)")
    return f"file:{SHARED_TEXT}"


# --- nn-is-compressor -------------------------------------------------------------------------

SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(models=[(1, 32)], steps=4, batch=4, block=32, heldout=2048, train_bytes=8192, zip_bytes=1024),
    "quick": dict(models=[(1, 32), (2, 64)], steps=150, batch=16, block=64, heldout=8192,
                  train_bytes=None, zip_bytes=4096),
    "full": dict(models=[(2, 64), (4, 128)], steps=1200, batch=16, block=128, heldout=65536,
                 train_bytes=None, zip_bytes=65536),
}


def measure_nn(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.data.corpora import load_corpus
    from imo.exams.recall import exact_recall, weight_bytes
    from imo.train.checkpoint import load_model
    from imo.train.config import RunConfig
    from imo.train.evaluate import evaluate_split
    from imo.train.trainer import train_or_reuse
    from imo.zip.codec import compress_bytes
    from imo.zip.settings import ZipSettings

    s = SIZES[budget]
    name = corpus_for(budget)
    corpus = load_corpus(name)
    # the classic prefix: every training byte the model could have drawn a window from (the whole
    # split at quick and full: a superset of what it saw, so a model win is conservative; smoke
    # keeps a short tail for speed, and smoke is never evidence)
    tail = s["train_bytes"]
    train = bytes(np.asarray(corpus.train if tail is None else corpus.train[-tail:]))
    held = bytes(np.asarray(corpus.val[: s["heldout"]]))
    figures: dict[str, Any] = {"_runs": [], "corpus": name, "heldout_bytes": len(held), "models": []}
    for c in CLASSIC:
        figures[f"{c}_given_train_bpb"] = conditional_bits(c, train, held) / len(held)
        figures[f"{c}_alone_bpb"] = 8.0 * len(CLASSIC[c](held)) / len(held)
    for layers, width in s["models"]:
        cfg = RunConfig.build(preset=None, model=dict(n_layer=layers, n_embd=width, n_head=4, context_length=s["block"]),
                              train=dict(corpus=name, steps=s["steps"], batch_size=s["batch"], seed=seed,
                                         warmup=max(1, s["steps"] // 10)))
        ctx.log(f"model {layers} x {width} ({budget}, seed {seed})")
        run_id = train_or_reuse(cfg, store=ctx.store, quiet=ctx.quiet,
                            code_fingerprint=ctx.code_fingerprint)
        figures["_runs"].append(run_id)
        model, _ = load_model(ctx.store.run_dir(run_id))
        bpb = evaluate_split(model, np.frombuffer(held, np.uint8), s["block"])
        size = weight_bytes(model)
        figures["models"].append({
            "layers": layers, "width": width, "params": model.num_params(), "weight_bytes": size,
            "heldout_bpb": bpb, "heldout_bpb_with_model": bpb + 8.0 * size / len(held),
            "recall_train": exact_recall(model, train, n=32 if budget != "full" else 64, seed=seed),
            "recall_heldout": exact_recall(model, held, n=32 if budget != "full" else 64, seed=seed),
        })
    best = min(figures["models"], key=lambda m: m["heldout_bpb"])
    figures["best_model_bpb"] = best["heldout_bpb"]
    figures["gap_to_xz_bpb"] = figures["xz_given_train_bpb"] - best["heldout_bpb"]  # > 0: the model wins
    zip_piece = held[: s["zip_bytes"]]
    blob = compress_bytes(zip_piece, ZipSettings.build(predictor="net"))
    figures["zip_net_alone_bpb"] = 8.0 * len(blob) / len(zip_piece)
    figures["zip_bytes"] = len(zip_piece)
    return figures


def plot_nn(per_seed: list[dict[str, Any]], path) -> None:
    """Left: held-out bits/byte per model size (weights not counted) against the classic
    compressors given the training text. Right: the same with the weights' bytes counted."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=100)
    f0 = per_seed[0]
    for key, axis in (("heldout_bpb", ax), ("heldout_bpb_with_model", ax2)):
        for j in range(len(f0["models"])):
            axis.plot([f["models"][j]["params"] for f in per_seed], [f["models"][j][key] for f in per_seed],
                      "o", color="C0", label="models" if j == 0 else None)
        for i, c in enumerate(CLASSIC):
            v = float(np.mean([f[f"{c}_given_train_bpb"] for f in per_seed]))
            axis.axhline(v, color=f"C{i + 1}", ls="--", lw=1, label=f"{c} given the training text")
        v = float(np.mean([f["zip_net_alone_bpb"] for f in per_seed]))
        axis.axhline(v, color="k", ls=":", lw=1, label="imo zip, network alone (online)")
        axis.set_xscale("log")
        axis.set_xlabel("parameters")
        axis.grid(True, alpha=0.3)
    ax.set_ylabel("bits per held-out byte")
    ax.set_title(f"{f0['corpus'].split('/')[-1]}: weights not counted", fontsize=10)
    ax2.set_yscale("log")
    ax2.set_title(f"weights counted ({f0['heldout_bytes']:,} held-out bytes)", fontsize=10)
    ax.legend(fontsize=7)
    save_figure(fig, path)


@register
def nn_is_compressor() -> Claim:
    return Claim(
        id="nn-is-compressor",
        statement="A trained neural network is a compression model of its training text: it codes "
                  "unseen text of the same kind in fewer bits than a classic compressor that has "
                  "read the same training text, and keeps only a little of it word for word (lossy).",
        source="source-notes: a neural network is a (lossy) compression model",
        experiment="Byte-level GPTs of 1-2 sizes trained on the training split (tinyshakespeare; "
                   "python-docs at smoke); bits/byte on the first held-out bytes vs gzip -9, bzip2 -9, "
                   "xz -9e and zstd -19 given the training text as a prefix; with and without the "
                   "weights' bytes; imo zip's network-alone row on the held-out bytes; exact recall "
                   "(32 bytes after a 32-byte prefix) on training vs held-out text.",
        rule=Rule(metric="gap_to_xz_bpb", op=">", threshold=0.0, noise=0.05, effect=0.05,
                  meaning="the best model's held-out bits/byte (weights not counted) is below xz's "
                          "given the training text, by more than 0.05"),
        measure=measure_nn,
        plot=plot_nn,
        anchor="Delétang et al. 2023: 200K/800K/3.2M-parameter transformers reach 30.9/21.7/17.0% "
               "on enwik9 chunks (weights not counted)",
        version=4,  # v2: the rule needs the effect 0.05 beyond xz at every budget (issue 13);
        # v3: the classic compressors get the whole training split at quick as at full;
        # v4: full trains 2 x 64 and 4 x 128 (v3 also 4 x 192: 69 minutes, over the 30-minute cap)
        tags=("zip", "exams"),
    )


# --- compute-per-byte -------------------------------------------------------------------------

CPB_BYTES = {"smoke": 1024, "quick": 12288, "full": 65536}  # full: each seed its own slice of the 111 KB split
# timed repeats per tool (the fastest counts); the fast tools also repeat until CPB_MIN_SECONDS
CPB_REPEATS = {"smoke": 2, "quick": 3, "full": 5}
CPB_MIN_SECONDS = 0.2
WARMUP_BYTES = 2048  # one untimed call of each tool on the slice's head first


def xz_timed(data: bytes) -> bytes:
    """xz -9e (preset 9 | extreme) with the LZMA2 dictionary cut to the smallest size that holds
    `data`. liblzma's preset allocates and clears a 64 MiB dictionary's tables on every call (about
    0.7 GB for -9e), a fixed cost that dominated the per-byte time of a 64 KB slice and varied
    three-fold with the machine's memory traffic; a dictionary larger than the input changes
    nothing in the coded stream but the block header's dictionary-size byte and its CRC32 (same length: checked in
    measure_compute). zstd does this cut itself when the size is known, as in one-shot calls."""
    import lzma

    dict_size = 4096  # LZMA2's smallest; sizes are 2^n or 2^n + 2^(n-1)
    while dict_size < len(data):
        dict_size = dict_size * 3 // 2 if dict_size & (dict_size - 1) == 0 else dict_size * 4 // 3
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": dict_size}]
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, filters=filters)


def fastest(fn, data: bytes, repeats: int, min_seconds: float = 0.0) -> tuple[float, float, Any]:
    """(fastest, median) seconds of one call fn(data) over at least `repeats` calls, and the
    result, after one untimed warm-up call on the first WARMUP_BYTES: first-call costs (lazy
    imports, allocator growth, torch's first dispatch) are not per-byte work. The fastest call is
    the one least disturbed by other load; the median is kept beside it to show the spread."""
    fn(data[:WARMUP_BYTES])
    times: list[float] = []
    t_all = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - t_all < min_seconds:
        t0 = time.perf_counter()
        result = fn(data)
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times)), result


def measure_compute(data: bytes, predictor: str = "mix", repeats: int = 3) -> dict[str, Any]:
    """Seconds and FLOPs per byte of imo zip (compress) beside xz -9e and zstd -19 on the same
    `data`, and each one's bits/byte. Every tool is timed the same way: in process, one thread,
    a warm-up call excluded, the fastest of `repeats` or more calls (see `fastest`)."""
    from imo.zip.codec import compress_bytes
    from imo.zip.predictor import Predictor
    from imo.zip.settings import ZipSettings

    s = ZipSettings.build(predictor=predictor)
    out: dict[str, Any] = {"bytes": len(data), "repeats": repeats}
    best, median, blob = fastest(lambda b: compress_bytes(b, s), data, repeats)
    out["imo_s_per_byte"], out["imo_s_per_byte_median"] = best / len(data), median / len(data)
    out["imo_bpb"] = 8.0 * len(blob) / len(data)
    out["imo_flops_per_byte"] = float(Predictor(s).flops_per_byte())
    for name, fn in (("xz", xz_timed), ("zstd", CLASSIC["zstd"])):
        best, median, packed = fastest(fn, data, repeats, CPB_MIN_SECONDS)
        out[f"{name}_s_per_byte"], out[f"{name}_s_per_byte_median"] = best / len(data), median / len(data)
        out[f"{name}_bpb"] = 8.0 * len(CLASSIC[name](data)) / len(data)  # the one table's settings
        out[f"{name}_timed_same_size"] = len(packed) == len(CLASSIC[name](data))
    if not out["xz_timed_same_size"]:  # the timed xz must code exactly as xz -9e does
        raise RuntimeError("xz with a cut dictionary coded to a different length than xz -9e")
    out["time_ratio_xz"] = out["imo_s_per_byte"] / out["xz_s_per_byte"]
    out["time_ratio_zstd"] = out["imo_s_per_byte"] / out["zstd_s_per_byte"]
    out["log10_time_ratio_xz"] = math.log10(out["time_ratio_xz"])
    out["imo_ratio_equal_or_better"] = out["imo_bpb"] <= min(out["xz_bpb"], out["zstd_bpb"])
    # the statement compares at the same or a better ratio: where imo zip does not reach xz's
    # bits/byte, the time ratio says nothing about the claim, and the rule's metric is undefined
    # (NaN: inconclusive), never a win bought with a worse ratio
    out["log10_time_ratio_xz_at_ratio"] = (out["log10_time_ratio_xz"] if out["imo_bpb"] <= out["xz_bpb"]
                                           else math.nan)  # fmt: skip
    return out


def measure_cpb(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.data.corpora import load_corpus

    name = corpus_for(budget)
    val = np.asarray(load_corpus(name).val)
    n = min(CPB_BYTES[budget], len(val))
    room = len(val) - n
    start = (seed * (room // 3 + 1)) % (room + 1)  # each seed its own slice, spread over the split
    ctx.log(f"imo zip vs xz/zstd on {n:,} bytes of {name}")
    figures = measure_compute(bytes(val[start:start + n]), repeats=CPB_REPEATS[budget])
    figures["corpus"], figures["_runs"] = name, []
    return figures


def plot_cpb(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for tool, color in (("imo", "C0"), ("xz", "C1"), ("zstd", "C2")):
        ax.scatter([f[f"{tool}_s_per_byte"] * 1e6 for f in per_seed], [f[f"{tool}_bpb"] for f in per_seed],
                   color=color, label=tool if tool != "imo" else "imo zip (mix)")
    ax.set_xscale("log")
    ax.set_xlabel("µs per byte (compress, one thread)")
    ax.set_ylabel("bits per byte")
    ax.set_title("ratio vs time per byte; lower left is better", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)


@register
def compute_per_byte() -> Claim:
    return Claim(
        id="compute-per-byte",
        statement="Compressing with a language model takes far more computation per byte than a "
                  "classic compressor at the same or a better ratio.",
        source="source-notes: AI needs far more computation than classic compressors",
        experiment="imo zip (online mix of context statistics and a small network) vs xz -9e and "
                   "zstd -19 on the same held-out text slice: seconds per byte (one thread, in process, "
                   "a warm-up call excluded, the fastest of 2/3/5 calls at smoke/quick/full; xz's "
                   "dictionary cut to the slice, which codes to the same length), imo's FLOPs per "
                   "byte, bits/byte of each.",
        rule=Rule(metric="log10_time_ratio_xz_at_ratio", op=">", threshold=1.0, noise=0.3,
                  meaning="imo zip, at the same or better bits/byte than xz -9e on the same bytes "
                          "(else the metric is undefined and the verdict inconclusive), needs more "
                          "than 10 times xz -9e's time per byte"),
        measure=measure_cpb,
        plot=plot_cpb,
        anchor="ANCHORS.md: cmix ~1.6 KB/s and NNCP ~2 KB/s vs xz -9e 2.2 MB/s (one thread)",
        version=5,  # v1's full budget gave every seed the same bytes, v2 nearly the same; v4: the
        # ratio condition is part of the rule (issue 13); v5: every tool timed alike, in process,
        # warm-up excluded, fastest of k calls, xz's dictionary cut to the input (its 0.7 GB
        # per-call table set-up made xz's time per byte vary 0.7-2.9 us on the same 64 KB)
        tags=("zip",),
    )
