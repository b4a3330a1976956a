"""Memory beyond the window (issue 18): constant memory in length, the datastore's speed, and the
passkey exam of small trained models.

    python benchmarks/memory.py peak         # peak live tensor bytes against length, per arch
    python benchmarks/memory.py datastore    # 100k chunks: build and exact query speed
    python benchmarks/memory.py passkey --steps 300   # train gpt/bswa/fam/infini, then the exam
    python benchmarks/memory.py speed        # training tokens/s: block loop vs parallel spans vs GPT
    python benchmarks/memory.py retrieval --steps 300   # base, kNN-LM, RETRO-lite dense and BM25 by overlap

Each prints markdown rows for benchmarks/RESULTS.md with the machine, the load and the commit.
Run the timed ones under the heavy lock on shared machines (flock /tmp/imo-heavy.lock ...).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def header(threads: int) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return (f"{cpu}, {os.cpu_count()} cores, {threads} thread(s), torch {torch.__version__}, Python "
            f"{platform.python_version()}, commit {commit}, load average {os.getloadavg()[0]:.2f} at start")


def peak(args) -> None:
    from imo.memory.config import MemoryConfig
    from imo.memory.measure import LiveBytes
    from imo.memory.model import MemoryLM
    from imo.model.config import ModelConfig

    cfg = ModelConfig.preset("tiny")
    lengths = [512, 1024, 2048, 4096]
    print(header(torch.get_num_threads()))
    print("\n| arch | state floats | " + " | ".join(f"peak MiB at {n}" for n in lengths) + f" | {lengths[-1]} / {lengths[0]} | whole-sequence forward, {lengths[-1]} / {lengths[0]} |")
    print("|:--|--:|" + "--:|" * len(lengths) + "--:|--:|")
    for mem in (MemoryConfig(arch="bswa"), MemoryConfig(arch="fam", mem_blocks=1), MemoryConfig(arch="infini", delta=True)):
        torch.manual_seed(0)
        model = MemoryLM(cfg, mem).eval()
        peaks, whole = [], []
        for n in lengths:
            x = torch.randint(0, 256, (1, n))
            with LiveBytes() as m:
                model.nll(x, x)
            peaks.append(m.peak)
            if n in (lengths[0], lengths[-1]):
                with LiveBytes() as m, torch.no_grad():
                    model(x)
                whole.append(m.peak)
        state = mem.state_floats(cfg.n_layer, cfg.n_embd, cfg.n_head)
        print(f"| {mem.arch} | {state:,} | " + " | ".join(f"{p / 2**20:.2f}" for p in peaks)
              + f" | {peaks[-1] / peaks[0]:.2f} | {whole[1] / whole[0]:.2f} |", flush=True)


def datastore(args) -> None:
    import faiss

    from imo.data.corpora import load_corpus
    from imo.retrieve.datastore import Chunks, Retriever

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    text = b"".join(bytes(load_corpus(c).train) for c in ("python-docs", "python-docstrings"))
    need = args.chunks * 32
    text = (text * (need // len(text) + 1))[:need]  # repeats are fine for speed, not for quality
    t0 = time.perf_counter()
    chunks = Chunks.from_bytes(text, chunk=32, doc_bytes=2048)
    t_chunks = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    vec = rng.standard_normal((len(chunks), args.dim)).astype(np.float32)
    t0 = time.perf_counter()
    dense = Retriever(chunks, "dense", vectors=vec)
    t_dense = time.perf_counter() - t0
    q = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    qi = rng.integers(0, len(chunks), args.queries)
    t0 = time.perf_counter()
    found = dense.candidates(chunks.data[qi], 2, q)
    t_q = time.perf_counter() - t0
    sub = slice(0, 50)  # exactness against a numpy brute force on the first 50 queries
    d = (q[sub, None, :] ** 2).sum(-1) - 2 * q[sub] @ vec.T + (vec ** 2).sum(1)[None]
    recall = float((np.argsort(d, 1)[:, :2] == found[sub]).all(1).mean())
    t0 = time.perf_counter()
    dense.search(chunks.data[qi], 2, query_doc=chunks.doc[qi], vectors=q)
    t_qf = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm25 = Retriever(chunks, "bm25")
    t_bm = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm25.search(chunks.data[qi], 2, query_doc=chunks.doc[qi])
    t_bq = time.perf_counter() - t0
    print(header(args.threads))
    print("\n| index | chunks | build s | queries | query s | queries/s | exact (recall@2 vs numpy) |")
    print("|:--|--:|--:|--:|--:|--:|--:|")
    print(f"| faiss IndexFlatL2, d={args.dim}, k=2, unfiltered | {len(chunks):,} | {t_dense:.2f} | {args.queries:,} | {t_q:.3f} | {args.queries / t_q:,.0f} | {recall:.2f} |")
    print(f"| faiss Flat + document and overlap filter (k=2 of 18) | {len(chunks):,} | - | {args.queries:,} | {t_qf:.3f} | {args.queries / t_qf:,.0f} | - |")
    print(f"| bm25s, byte 4-grams + filter (k=2 of 18) | {len(chunks):,} | {t_bm:.2f} | {args.queries:,} | {t_bq:.3f} | {args.queries / t_bq:,.0f} | - |")
    print(f"\n(chunking {t_chunks:.2f} s; load average {os.getloadavg()[0]:.2f} at the end)")


def passkey(args) -> None:
    """Train the four models on the same mix for the same steps, then the exam on all of them."""
    from imo.exams.passkey import passkey_exam
    from imo.memory.config import MemoryConfig
    from imo.memory.train import Rows, load_memory_model, train_memory
    from imo.runs.store import RunStore
    from imo.train.config import RunConfig

    torch.set_num_threads(args.threads)
    store = RunStore.open()
    models = {}
    tr = dict(steps=args.steps, batch_size=args.batch, corpus="python-docs", eval_every=max(1, args.steps // 4),
              ckpt_every=10**6, lr=args.lr, warmup=min(50, args.steps // 10), seed=args.seed)
    plan = [("gpt", None, 256, Rows(args.fraction, (229, 257), 256))]
    for mem in (MemoryConfig(arch="bswa", block=64, mem_blocks=2), MemoryConfig(arch="fam", block=64, mem_blocks=1, fam_tokens=8),
                MemoryConfig(arch="infini", block=64)):
        plan.append((mem.arch, mem, 256, Rows(args.fraction, (256, args.row), args.row)))
    print(header(args.threads), flush=True)
    for name, mem, ctx, rows in plan:
        cfg = RunConfig.build(preset="tiny", model=dict(context_length=ctx), train=tr)
        t0 = time.perf_counter()
        run_id, _ = train_memory(cfg, mem, rows=rows, store=store, quiet=True, name=f"bench-passkey-{name}")
        r = store.get(run_id)
        print(f"trained {name}: run {run_id}, {time.perf_counter() - t0:.0f} s, val {r['figures'].get('val_bpb', float('nan')):.3f} bits/byte",
              flush=True)
        models[name], _ = load_memory_model(store.run_dir(run_id))
    out = passkey_exam(models, lengths=[int(v) for v in args.lengths.split(",")], trials=args.trials,
                       log=lambda m: print("...", m, flush=True))
    Path(args.out).write_text(json.dumps(out, indent=1))
    lengths = out["lengths"]
    print("\n| model | window | state floats | " + " | ".join(f"{n} B" for n in lengths) + " |")
    print("|:--|--:|--:|" + "--:|" * len(lengths))
    for name, r in out["models"].items():
        print(f"| {name} | {r['window']} | {r.get('state_floats', '-')} | "
              + " | ".join(f"{100 * r['by_length'][str(n)]:.0f}%" for n in lengths) + " |")
    if "by_compressions" in out["models"].get("infini", {}):
        c = out["models"]["infini"]["by_compressions"]
        print("\nInfini by compressions: " + ", ".join(f">={k}: {100 * v['accuracy']:.0f}% of {v['trials']}" for k, v in c.items()))
        print(f"Infini gates (sigmoid beta, per layer and head): {out['models']['infini']['gates']}")


def speed(args) -> None:
    """Training tokens/s of one AdamW step on rows of `row` bytes read in windows of `window`
    (window_loss, as `imo train --arch ... --row-length` does): each memory model read one block
    at a time (the plain recurrence, MemoryLM.step, as stream() did before spans) and in
    parallel spans (MemoryLM.span), beside a GPT at the window's length on the same tokens."""
    from imo.memory.config import MemoryConfig
    from imo.memory.model import MemoryLM
    from imo.memory.train import window_loss
    from imo.model.config import ModelConfig
    from imo.model.gpt import GPT

    class BlockLoop(MemoryLM):  # the recurrence, one block per call of step()
        def span(self, idx, state):
            out = []
            for s in range(0, idx.size(1), self.mem.block):
                logits, state = self.step(idx[:, s : s + self.mem.block], state)
                out.append(logits)
            return torch.cat(out, 1), state

    torch.set_num_threads(args.threads)
    dev = args.device
    cfg = ModelConfig.preset("tiny").replace(context_length=args.window)
    x = torch.randint(0, 256, (args.batch, args.row + 1), generator=torch.Generator().manual_seed(0)).to(dev)
    X, Y = x[:, :-1], x[:, 1:]
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)

    def timed(model, batch, loss_fn) -> float:
        opt = torch.optim.AdamW(model.parameters(), 1e-3)

        def one():
            opt.zero_grad(set_to_none=True)
            loss_fn(model, batch).backward()
            opt.step()

        one()  # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(args.reps):
            one()
        sync()
        return X.numel() * args.reps / (time.perf_counter() - t0)

    print(header(args.threads))
    print(f"\non {dev}: batch {args.batch} x {args.row} bytes, windows of {args.window}, `tiny` (4 x 128), float32, "
          f"{args.reps} timed steps after one warm-up\n")
    print("| model | block loop tokens/s | parallel spans tokens/s | speed-up |")
    print("|:--|--:|--:|--:|")
    torch.manual_seed(0)
    gpt = GPT(cfg).to(dev).train()
    g = timed(gpt, (X.reshape(-1, args.window), Y.reshape(-1, args.window)), lambda m, b: m(*b)[1])
    print(f"| gpt (full attention at {args.window}, same tokens) | - | {g:,.0f} | - |", flush=True)
    for mem in (MemoryConfig(arch="bswa", mem_blocks=2), MemoryConfig(arch="fam", mem_blocks=1, fam_tokens=8),
                MemoryConfig(arch="infini", delta=True)):
        rates = []
        for cls in (BlockLoop, MemoryLM):
            torch.manual_seed(0)
            rates.append(timed(cls(cfg, mem).to(dev).train(), (X, Y), window_loss(args.window)))
        print(f"| {mem.arch} | {rates[0]:,.0f} | {rates[1]:,.0f} | {rates[1] / rates[0]:.2f}x |", flush=True)
    print(f"\n(load average {os.getloadavg()[0]:.2f} at the end)")


# ../shared/data beside the checkout (a worktree's may sit one level deeper)
SHAKESPEARE = next((p / "shared" / "data" / "tinyshakespeare.txt" for p in ROOT.parents
                    if (p / "shared" / "data" / "tinyshakespeare.txt").is_file()), ROOT.parent / "shared" / "data" / "tinyshakespeare.txt")


def retrieval(args) -> None:
    """On held-out python-docs and Shakespeare: a plain GPT (the base), kNN-LM on top of it, and
    RETRO-lite with dense (the base's frozen states) and BM25 retrieval, each scored in bits/byte
    with neighbours allowed up to each overlap alpha. The base is a GPT of the same depth widened
    to RETRO-lite's parameter count; every arm trains the same steps on the same rows (seed)."""
    import faiss

    from imo.data.corpora import load_corpus
    from imo.retrieve.knnlm import build_store, knn_bpb
    from imo.retrieve.retro import (
        OVERLAPS,
        RetroConfig,
        count_params,
        load_retro_model,
        matched_width,
        train_retro,
    )
    from imo.runs.store import RunStore
    from imo.train.config import RunConfig

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    store = RunStore.open()
    corpora = [c for c in args.corpora.split(",") if c]
    kinds = [k for k in args.kinds.split(",") if k]
    if not corpora or not kinds or any(k not in ("dense", "bm25") for k in kinds):
        print(f"--corpora needs a name and --kinds takes dense and/or bm25, got {args.corpora!r}, {args.kinds!r}",
              file=sys.stderr)
        sys.exit(2)
    names = {"shakespeare": f"file:{SHAKESPEARE}"}
    tr = dict(steps=args.steps, batch_size=args.batch, eval_every=max(1, args.steps // 3), ckpt_every=10**6,
              lr=args.lr, warmup=max(1, args.steps // 10), seed=args.seed, device="cpu", eval_batches=2)
    rc = RetroConfig(retrieval="bm25")
    probe = RunConfig.build(preset="tiny", train=dict(tr, corpus="python-docs"))
    width = matched_width(probe.model, rc)
    p_retro = count_params(probe.model, rc)
    p_base = count_params(probe.model.replace(n_embd=width), RetroConfig(retrieval="none"))
    print(header(args.threads), flush=True)
    print(f"\nbudget: every arm {args.steps} steps of {args.batch} rows x {probe.model.context_length} bytes "
          f"({args.steps * args.batch * probe.model.context_length:,} training bytes), AdamW lr {args.lr:g}, seed "
          f"{args.seed}; RETRO-lite 4 x {probe.model.n_embd} + encoder ({rc.enc_layers} x {rc.enc_width}) + CCA after "
          f"block {rc.layer(probe.model.n_layer)}: {p_retro:,} parameters; base GPT 4 x {width}: {p_base:,}; "
          f"kNN-LM on the base, lambda {args.knn_lambda:g}, k 16, 100k keys", flush=True)
    out: dict = {"steps": args.steps, "batch": args.batch, "params": {"retro": p_retro, "base": p_base}, "corpora": {}}
    rows = []
    for c in corpora:
        corpus = names.get(c, c)
        data = load_corpus(corpus)
        t = dict(tr, corpus=corpus)
        res: dict = {}
        t0 = time.perf_counter()
        cfg_base = RunConfig.build(preset="tiny", model=dict(n_embd=width), train=t)
        base_id, _ = train_retro(cfg_base, RetroConfig(retrieval="none"), store=store, quiet=True, name=f"bench-retro-base-{c}")
        res["base"] = {"run": base_id, **store.get(base_id)["figures"], "wall_s": time.perf_counter() - t0}
        print(f"{c}: base {base_id} {res['base']['val_bpb']:.4f} bits/byte, {res['base']['wall_s']:.0f} s", flush=True)
        base, _ = load_retro_model(store.run_dir(base_id))
        t0 = time.perf_counter()
        kstore = build_store(base, data.train, max_keys=100_000)
        knn = knn_bpb(base, kstore, data.val, lambdas=(args.knn_lambda,), max_overlaps=OVERLAPS, max_windows=None)
        res["knn-lm"] = {"wall_s": time.perf_counter() - t0, "bpb_lm": knn["bpb_lm"], "positions": knn["positions"],
                         "by_overlap": {k: v["bpb"][f"{args.knn_lambda:g}"] for k, v in knn["by_overlap"].items()},
                         "neighbours": {k: v["neighbours_per_position"] for k, v in knn["by_overlap"].items()}}
        print(f"{c}: kNN-LM {res['knn-lm']['by_overlap']}", flush=True)
        for kind in kinds:
            t0 = time.perf_counter()
            cfg = RunConfig.build(preset="tiny", train=t)
            r_id, _ = train_retro(cfg, RetroConfig(retrieval=kind, embedder=base_id if kind == "dense" else None),
                                  store=store, quiet=True, name=f"bench-retro-{kind}-{c}")
            res[kind] = {"run": r_id, **store.get(r_id)["figures"], "wall_s": time.perf_counter() - t0}
            print(f"{c}: RETRO-lite {kind} {r_id} {res[kind]['val_bpb_by_overlap']}, {res[kind]['wall_s']:.0f} s", flush=True)
        out["corpora"][c] = res
        Path(args.out).write_text(json.dumps(out, indent=1))
        b = res["base"]["val_bpb"]
        rows.append(f"| {c} | base GPT 4 x {width} | {p_base:,} | " + " | ".join(f"{b:.4f}" for _ in OVERLAPS) + " | - |")
        rows.append(f"| {c} | kNN-LM on the base (lambda {args.knn_lambda:g}) | {p_base:,} | "
                    + " | ".join(f"{res['knn-lm']['by_overlap'][f'{a:g}']:.4f}" for a in OVERLAPS) + " | - |")
        for kind in kinds:
            by = res[kind]["val_bpb_by_overlap"]
            gain = b - by["0.2"]
            rows.append(f"| {c} | RETRO-lite {kind} | {p_retro:,} | " + " | ".join(f"{by[f'{a:g}']:.4f}" for a in OVERLAPS)
                        + f" | {gain:+.4f} |")
    print("\n| held-out corpus | model | parameters | " + " | ".join(f"bits/byte, alpha <= {a:g}" for a in OVERLAPS)
          + " | gain over base at alpha <= 0.2 |")
    print("|:--|:--|--:|" + "--:|" * len(OVERLAPS) + "--:|")
    print("\n".join(rows))
    print(f"\n(load average {os.getloadavg()[0]:.2f} at the end; figures in {args.out})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("peak")
    d = sub.add_parser("datastore")
    d.add_argument("--chunks", type=int, default=100_000)
    d.add_argument("--dim", type=int, default=128)
    d.add_argument("--queries", type=int, default=1000)
    d.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("passkey")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--row", type=int, default=1024, help="training row bytes of the memory models")
    p.add_argument("--fraction", type=float, default=0.5, help="passkey share of training rows")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--lengths", default="512,1024,2048,4096,8192")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="/tmp/passkey-bench.json")
    sp = sub.add_parser("speed")
    sp.add_argument("--batch", type=int, default=8)
    sp.add_argument("--row", type=int, default=1024)
    sp.add_argument("--window", type=int, default=256)
    sp.add_argument("--reps", type=int, default=3)
    sp.add_argument("--threads", type=int, default=1)
    sp.add_argument("--device", default="cpu")
    r = sub.add_parser("retrieval")
    r.add_argument("--corpora", default="python-docs,shakespeare",
                   help="comma-separated corpus names (shakespeare: ../shared/data/tinyshakespeare.txt)")
    r.add_argument("--kinds", default="dense,bm25", help="RETRO-lite retrievals to train: dense and/or bm25")
    r.add_argument("--steps", type=int, default=300)
    r.add_argument("--batch", type=int, default=16)
    r.add_argument("--lr", type=float, default=3e-3)
    r.add_argument("--seed", type=int, default=1337)
    r.add_argument("--knn-lambda", type=float, default=0.25)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", default="/tmp/retrieval-bench.json")
    args = ap.parse_args()
    {"peak": peak, "datastore": datastore, "passkey": passkey, "speed": speed, "retrieval": retrieval}[args.what](args)


if __name__ == "__main__":
    main()
