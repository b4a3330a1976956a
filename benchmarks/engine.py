"""The engine's targets (issue 6), as ratios measured in one run on the `small` preset.

1. cached decoding vs recomputing the whole prefix each step: 64-token prompt, 448 greedy tokens;
2. imo vs Hugging Face GPT-2 with the same weights (through the hf-gpt2 export mapping), at its
   best: use_cache=True, sdpa attention, fp32, the same threads; greedy, batch 1 and batch 8,
   same prompts and lengths; rounds alternate between the two and each reports its median;
3. serving the next answer after a rejection vs generating that same answer from scratch:
   256-token prompts, 128-token answers, lazy and eager (speculation counted in the passes);
4. the prefix tree: 16 requests sharing a 384-token prefix with distinct 32-token suffixes;
5. the server: 32 concurrent streaming clients on localhost (the official openai client),
   checking that every client receives every token.

The model is the `small` preset with learned positions (GPT-2 can express it), trained briefly on
python-docs (train_or_reuse: once per store) so that its distributions, and therefore its branch
points, are those of a language model; prompts are validation text. One torch thread unless
--threads. The machine is shared: timings are noisy, ratios are taken within the run.

    python benchmarks/engine.py              # the targets' sizes
    python benchmarks/engine.py --quick      # a short run with smaller sizes (a check, not evidence)
    python benchmarks/engine.py --markdown   # also print the RESULTS.md table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
try:
    import imo  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from imo.data.corpora import load_corpus  # noqa: E402
from imo.engine.config import GenerationConfig  # noqa: E402
from imo.engine.decode import Engine  # noqa: E402
from imo.engine.measure import measure_alternatives  # noqa: E402
from imo.engine.prefix import PrefixTree  # noqa: E402
from imo.runs.store import RunStore, short_commit  # noqa: E402
from imo.train.checkpoint import load_model  # noqa: E402
from imo.train.config import RunConfig  # noqa: E402
from imo.train.trainer import train_or_reuse  # noqa: E402

FULL = dict(prompt=64, new=448, batch=8, rounds=3, alt_prompt=256, answer=128, alt_prompts=3, rejections=4,
            speculate=256, prefix=384, suffix=32, requests=16, clients=32, client_tokens=64, train_steps=150)
QUICK = dict(prompt=32, new=64, batch=4, rounds=1, alt_prompt=64, answer=32, alt_prompts=1, rejections=2,
             speculate=64, prefix=96, suffix=16, requests=4, clients=8, client_tokens=16, train_steps=20)


def trained_small(steps: int, store: RunStore) -> str:
    cfg = RunConfig.build(preset="small", model={"pos": "learned"},
                          train={"corpus": "python-docs", "steps": steps, "batch_size": 8, "warmup": 30,
                                 "eval_every": steps, "seed": 1})
    return train_or_reuse(cfg, store=store, quiet=False)


def val_windows(n: int, length: int, seed: int = 0) -> list[list[int]]:
    val = load_corpus("python-docs").val
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(val) - length, (n,), generator=g).tolist()
    return [[int(b) for b in val[s : s + length]] for s in starts]


# --- 1. cached vs recompute ----------------------------------------------------------------------


@torch.no_grad()
def recompute_greedy(model, prompt: list[int], new: int) -> list[int]:
    x = torch.tensor([prompt])
    for _ in range(new):
        logits, _ = model(x)
        x = torch.cat([x, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return x[0, len(prompt):].tolist()


def bench_cache(model, s) -> dict:
    eng = Engine(model)
    [prompt] = val_windows(1, s["prompt"], seed=1)
    cfg = GenerationConfig(strategy="greedy", max_tokens=s["new"])
    t0 = time.perf_counter()
    [c] = eng.generate(prompt, cfg)
    cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = recompute_greedy(model, prompt, s["new"])
    full = time.perf_counter() - t0
    return {"cached_tok_s": s["new"] / cached, "recompute_tok_s": s["new"] / full, "ratio": full / cached,
            "same_tokens": sum(a == b for a, b in zip(c.tokens, ref, strict=True)) / len(ref)}


# --- 2. vs Hugging Face --------------------------------------------------------------------------


def bench_hf(run_dir: Path, model, s) -> dict:
    from transformers import GPT2LMHeadModel

    from imo.model.export import export_hf_gpt2

    with tempfile.TemporaryDirectory() as tmp:
        out = export_hf_gpt2(run_dir, Path(tmp) / "hf")
        hf = GPT2LMHeadModel.from_pretrained(out, attn_implementation="sdpa", torch_dtype=torch.float32).eval()
    hf.generation_config.pad_token_id = 0
    eng = Engine(model)
    res = {}
    for batch in (1, s["batch"]):
        prompts = val_windows(batch, s["prompt"], seed=2)
        ids = torch.tensor(prompts)
        cfg = GenerationConfig(strategy="greedy", max_tokens=s["new"])
        times: dict[str, list[float]] = {"imo": [], "hf": []}
        outs = {}
        for r in range(s["rounds"]):
            for who in (("imo", "hf") if r % 2 == 0 else ("hf", "imo")):
                t0 = time.perf_counter()
                if who == "imo":
                    rows: list[list[int]] = [[] for _ in prompts]
                    for ev in eng.stream_batch(prompts, cfg):
                        rows[ev.row].append(ev.token)
                    outs["imo"] = rows
                else:
                    with torch.no_grad():
                        g = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=s["new"],
                                        min_new_tokens=s["new"], do_sample=False, use_cache=True)
                    outs["hf"] = g[:, ids.size(1):].tolist()
                times[who].append(time.perf_counter() - t0)
        n_tok = batch * s["new"]
        imo_s, hf_s = statistics.median(times["imo"]), statistics.median(times["hf"])
        agree = sum(a == b for ra, rb in zip(outs["imo"], outs["hf"], strict=True)
                    for a, b in zip(ra, rb, strict=True)) / n_tok
        res[f"batch{batch}"] = {"imo_tok_s": n_tok / imo_s, "hf_tok_s": n_tok / hf_s, "ratio": hf_s / imo_s,
                                "best_ratio": min(times["hf"]) / min(times["imo"]), "same_tokens": agree}
    return res


# --- 3. alternatives -----------------------------------------------------------------------------


def bench_alternatives(model, s) -> dict:
    prompts = val_windows(s["alt_prompts"], s["alt_prompt"], seed=3)
    out = {}
    for mode, spec in (("lazy", 0), ("eager", s["speculate"])):
        f = measure_alternatives(Engine(model), prompts, s["answer"], s["rejections"], speculate=spec)
        out[mode] = {k: v for k, v in f.items() if k != "rows"}
        out[mode]["positions"] = [r["position"] for r in f["rows"]]
    return out


# --- 4. prefix tree ------------------------------------------------------------------------------


def bench_prefix(model, s) -> dict:
    [shared] = val_windows(1, s["prefix"], seed=4)
    suffixes = val_windows(s["requests"], s["suffix"], seed=5)
    prompts = [shared + x for x in suffixes]
    res: dict = {"plain": {"seconds": []}, "tree": {"seconds": []}}
    for r in range(s["rounds"]):  # alternate; each round starts with an empty tree
        for name in (("plain", "tree") if r % 2 == 0 else ("tree", "plain")):
            tree = PrefixTree(budget_tokens=1 << 16) if name == "tree" else None
            eng = Engine(model, tree)
            t0 = time.perf_counter()
            logits = []
            for p in prompts:
                cache, lg = eng.prefill(p)
                eng.release(cache)
                logits.append(lg)
            res[name]["seconds"].append(time.perf_counter() - t0)
            res[name].update(computed=eng.stats.prefill_computed, logits=logits,
                             tree=None if tree is None else tree.stats.to_dict())
    diff = max(float((a - b).abs().max()) for a, b in zip(res["plain"]["logits"], res["tree"]["logits"], strict=True))
    total = res["plain"]["computed"]
    plain_s, tree_s = statistics.median(res["plain"]["seconds"]), statistics.median(res["tree"]["seconds"])
    return {"tokens_plain": total, "tokens_tree": res["tree"]["computed"],
            "computed_fall": 1 - res["tree"]["computed"] / total,
            "ceiling": 1 - (len(prompts[0]) + (len(prompts) - 1) * s["suffix"]) / total,
            "plain_s": plain_s, "tree_s": tree_s, "time_ratio": plain_s / tree_s,
            "best_time_ratio": min(res["plain"]["seconds"]) / min(res["tree"]["seconds"]),
            "max_logit_diff": diff, "counters": res["tree"]["tree"]}


# --- 5. server -----------------------------------------------------------------------------------


def bench_server(model, s) -> dict:
    import openai

    from imo.engine.server import ServerThread, create_app

    eng = Engine(model, PrefixTree())
    prompts = val_windows(s["clients"], 32, seed=6)
    got = [0] * s["clients"]
    errors: list[str] = []
    with ServerThread(create_app(eng, "small")) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)

        def one(i: int) -> None:
            try:
                stream = client.completions.create(model="small", prompt=bytes(prompts[i]).decode("latin-1"),
                                                   max_tokens=s["client_tokens"], temperature=0.8, seed=i,
                                                   logprobs=0, stream=True)
                for chunk in stream:
                    for c in chunk.choices:
                        got[i] += len(c.logprobs.tokens) if c.logprobs else 0
            except Exception as e:  # noqa: BLE001  (counted, reported)
                errors.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(s["clients"])]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stats = client.get("/imo/stats", cast_to=object)
    want = s["clients"] * s["client_tokens"]
    return {"clients": s["clients"], "tokens_expected": want, "tokens_received": sum(got),
            "lost": want - sum(got), "errors": len(errors), "first_error": errors[:1], "wall_s": wall,
            "aggregate_tok_s": sum(got) / wall, "largest_batch": stats["largest_batch"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes: a check that it runs, not evidence")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run", help="use this run (learned positions) instead of training one")
    ap.add_argument("--only", help="comma-separated parts: cache,hf,alternatives,prefix,server")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = QUICK if args.quick else FULL
    store = RunStore.open()
    run_id = store.resolve(args.run) if args.run else trained_small(s["train_steps"], store)
    run_dir = store.run_dir(run_id)
    model, _ = load_model(run_dir)
    model.eval()
    print(f"# engine benchmark: run {run_id}, {platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}, git {short_commit()}",
          flush=True)
    parts = {"cache": lambda: bench_cache(model, s), "hf": lambda: bench_hf(run_dir, model, s),
             "alternatives": lambda: bench_alternatives(model, s), "prefix": lambda: bench_prefix(model, s),
             "server": lambda: bench_server(model, s)}
    chosen = args.only.split(",") if args.only else list(parts)
    figures: dict = {"run": run_id, "sizes": s, "commit": short_commit(), "threads": args.threads}
    for name in chosen:
        t0 = time.perf_counter()
        figures[name] = parts[name]()
        print(f"## {name} ({time.perf_counter() - t0:.0f} s)\n{json.dumps(figures[name], indent=1, default=str)}",
              flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    if args.markdown:
        print(markdown(figures))


def markdown(f: dict) -> str:
    rows = ["| target | measured | goal | verdict |", "|:--|--:|--:|:--|"]

    def add(name, value, goal, ok):
        rows.append(f"| {name} | {value} | {goal} | {'met' if ok else 'not met'} |")

    if "cache" in f:
        c = f["cache"]
        add(f"cached vs recompute ({f['sizes']['prompt']}+{f['sizes']['new']} tokens), tokens/s",
            f"{c['ratio']:.1f}x ({c['cached_tok_s']:.0f} vs {c['recompute_tok_s']:.0f})", ">= 5x", c["ratio"] >= 5)
    if "hf" in f:
        for b, h in f["hf"].items():
            add(f"imo / HF GPT-2 greedy, {b}", f"{h['ratio']:.2f} ({h['imo_tok_s']:.0f} vs {h['hf_tok_s']:.0f} tok/s;"
                f" best rounds {h['best_ratio']:.2f}; same tokens {h['same_tokens']:.0%})", ">= 1.0", h["ratio"] >= 1)
    if "alternatives" in f:
        for mode, a in f["alternatives"].items():
            add(f"next answer vs regenerate ({mode}), forward passes",
                f"{a['pass_ratio']:.2f}x ({a['scratch_passes']} vs {a['reject_passes']}; branch at "
                f"{a['positions']})", ">= 10x", a["pass_ratio"] >= 10)
            add(f"next answer vs regenerate ({mode}), latency",
                f"{a['latency_ratio']:.1f}x ({a['scratch_s']:.2f} s vs {a['reject_s']:.3f} s); outputs equal "
                f"{a['outputs_equal']:.0%}", ">= 5x", a["latency_ratio"] >= 5)
    if "prefix" in f:
        p = f["prefix"]
        add("prefix tree: prefill tokens computed fall", f"{p['computed_fall']:.1%} ({p['tokens_tree']} of "
            f"{p['tokens_plain']}; ceiling {p['ceiling']:.1%})", ">= 85%", p["computed_fall"] >= 0.85)
        add("prefix tree: prefill time", f"{p['time_ratio']:.1f}x faster ({p['plain_s']:.2f} s vs {p['tree_s']:.2f} s;"
            f" best rounds {p['best_time_ratio']:.1f}x)", ">= 4x", p["time_ratio"] >= 4)
    if "server" in f:
        v = f["server"]
        add(f"server: {v['clients']} streaming clients", f"{v['errors']} errors, {v['lost']} lost of "
            f"{v['tokens_expected']}; {v['aggregate_tok_s']:.0f} tok/s aggregate (largest batch "
            f"{v['largest_batch']})", "no errors, none lost", v["errors"] == 0 and v["lost"] == 0)
    return "\n".join(rows)


if __name__ == "__main__":
    main()
