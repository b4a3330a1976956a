"""SmolLM2-135M-Instruct (issue 15) on imo's Llama: bits/byte on the shared texts beside xz -9e
and PPMd, and greedy decode tokens/s at batch 1 and 8 beside transformers with the same weights.

Decode: 128-token prompts (alice29 text), 128 new tokens, greedy, fp32, the same threads. imo:
one prefill into imo's KV cache, then one token per step. transformers: LlamaForCausalLM holding
the same dequantized weights (tests/importers/hf_reference.py), generate() with use_cache, sdpa,
min_new_tokens = max_new_tokens. Rounds alternate between the two; the best round of each counts.

    flock /tmp/imo-heavy.lock python benchmarks/smollm2.py [--threads 2] [--rounds 2] [--bytes 60000]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "importers"))  # hf_reference: transformers with our weights
TEXTS = ROOT.parent / "shared" / "data"


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


@torch.no_grad()
def imo_decode(m, prompts: torch.Tensor, new: int) -> float:
    from imo.engine.cache import KVCache

    t0 = time.perf_counter()
    cache = KVCache.for_model(m, batch=prompts.size(0), capacity=prompts.size(1) + new)
    logits, _ = m(prompts, cache=cache)
    for _ in range(new - 1):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        logits, _ = m(nxt, cache=cache)
    return prompts.size(0) * new / (time.perf_counter() - t0)


@torch.no_grad()
def hf_decode(hf, prompts: torch.Tensor, new: int) -> float:
    t0 = time.perf_counter()
    out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new, min_new_tokens=new,
                      do_sample=False, pad_token_id=0)
    assert out.size(1) == prompts.size(1) + new
    return prompts.size(0) * new / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bytes", type=int, default=60000, help="bytes of each text scored")
    ap.add_argument("--skip-bpb", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from hf_reference import hf_llama

    from imo import baselines
    from imo.importers.evaluate import bits_per_byte

    m, tok = load()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    print(f"# {platform.processor() or platform.machine()}, {a.threads} threads, torch {torch.__version__}, commit {commit}")
    if not a.skip_bpb:
        print("| text | bytes | SmolLM2 (imo, ctx 512) | xz -9e | PPMd |\n|:--|--:|--:|--:|--:|")
        for name in ("alice29.txt", "tinyshakespeare.txt"):
            data = (TEXTS / name).read_bytes()[: a.bytes]
            text = data.decode("utf-8", "replace")
            bpb, _ = bits_per_byte(m, tok, text, context=512)
            row = [f"{bpb:.3f}", f"{baselines.bpb('xz', data):.3f}"]
            try:
                row.append(f"{baselines.bpb('ppmd', data):.3f}")
            except Exception as e:  # pyppmd absent
                row.append(f"- ({type(e).__name__})")
            print(f"| {name} (first {len(data):,}) | {len(data):,} | " + " | ".join(row) + " |", flush=True)
    hf = hf_llama(m)
    hf.config._attn_implementation = "sdpa"
    ids = tok.encode((TEXTS / "alice29.txt").read_text()[5000:40000])
    print("| batch | imo tok/s | transformers tok/s | imo / transformers |\n|--:|--:|--:|--:|")
    for B in (1, 8):
        prompts = torch.tensor([ids[i * 128 : (i + 1) * 128] for i in range(B)])
        ours, theirs = [], []
        for _ in range(a.rounds):
            ours.append(imo_decode(m, prompts, 128))
            theirs.append(hf_decode(hf, prompts, 128))
        print(f"| {B} | {max(ours):.1f} | {max(theirs):.1f} | {max(ours) / max(theirs):.3f} |", flush=True)


if __name__ == "__main__":
    main()
