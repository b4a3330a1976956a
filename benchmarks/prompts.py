"""Constrained JSON decoding (issue 20): strict validity with and without the llguidance mask,
the mask's share of decode time, and the forward calls fast-forward saves.

For each of 3 fixed-key schemas (imo.prompt.schemas: person, product and event) and N extraction
prompts (imo extract's prompt over the generated task texts of imo.prompt.tasks), the same greedy decoder runs three ways on one model:
- unconstrained: Engine.complete, max_tokens as below; valid = the stripped text is exactly one
  JSON value that the schema accepts (strict json.loads, then jsonschema);
- constrained, fast-forward off: every token chosen under the mask;
- constrained, fast-forward on: forced tokens consumed without a choice, fed in one call.

The model is a byte-level GPT with seeded random weights (2 layers, 64 wide, 2048 context) unless
--run names a run (any vocabulary: a trained byte run, or an imported SmolLM2 through its chat
template). One torch thread. Timings are medians over prompts on a shared machine; the ratios are
within one run.

    python benchmarks/prompts.py --prompts 200            # the target's size
    python benchmarks/prompts.py --prompts 20 --run smollm2 --markdown
    python benchmarks/prompts.py --extraction 30 --run smollm2   # the tasks, constrained, scored exactly
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
try:
    import imo  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from imo.engine.config import GenerationConfig  # noqa: E402
from imo.engine.constrained import compile_schema, constrained_generate, strictly_valid  # noqa: E402
from imo.engine.decode import Engine  # noqa: E402
from imo.prompt.extract import extract_prompt  # noqa: E402
from imo.prompt.schemas import SCHEMAS  # noqa: E402
from imo.prompt.tasks import generate  # noqa: E402


def random_byte_engine(seed: int = 0) -> Engine:
    from imo.model import GPT, ModelConfig

    torch.manual_seed(seed)
    return Engine(GPT(ModelConfig(n_layer=2, n_embd=64, n_head=4, context_length=2048, pos="rope")).eval())


def run_engine(run: str) -> tuple[Engine, dict | None, str]:
    from imo.engine.cli import load_run

    run_id, model, text, chat = load_run(run)
    return Engine(model, text=text), chat, run_id


def measure(eng: Engine, chat: dict | None, prompts: int, max_tokens: int) -> dict:
    texts = [item.text for item in generate("plain", prompts, seed=0)]
    rows = {}
    for name, schema in SCHEMAS.items():
        grammar = compile_schema(schema, eng.text, eng.cfg.vocab_size)
        free_ok = fast_ok = slow_ok = 0
        calls_fast = calls_slow = 0
        mask_share, per_token = [], []
        same = 0
        for text in texts:
            ids = eng.text.encode(extract_prompt(schema, text, chat)[0])
            [free] = eng.complete(ids, GenerationConfig(strategy="greedy", max_tokens=max_tokens))
            free_ok += strictly_valid(free.text.strip(), schema)
            slow = constrained_generate(eng, ids, grammar, max_tokens=max_tokens, fast_forward=False)
            fast = constrained_generate(eng, ids, grammar, max_tokens=max_tokens)
            slow_ok += slow.complete and strictly_valid(slow.text, schema)
            fast_ok += fast.complete and strictly_valid(fast.text, schema)
            same += fast.text == slow.text
            calls_slow += slow.forward_calls
            calls_fast += fast.forward_calls
            if slow.tokens:
                mask_share.append(slow.mask_seconds / slow.seconds)
                per_token.append(1e6 * slow.mask_seconds / len(slow.tokens))
        n = len(texts)
        rows[name] = {"prompts": n, "valid_unconstrained": free_ok / n, "valid_constrained": slow_ok / n,
                      "valid_constrained_ff": fast_ok / n, "ff_same_answer": same / n,
                      "forward_calls_no_ff": calls_slow, "forward_calls_ff": calls_fast,
                      "ff_call_reduction": 1 - calls_fast / max(1, calls_slow),
                      "mask_share_median": statistics.median(mask_share) if mask_share else None,
                      "mask_us_per_token_median": statistics.median(per_token) if per_token else None}
    return rows


def task_schema(item) -> dict:
    """The JSON schema of an item's fields: typed, defaults stated, every key required."""
    props = {}
    for f in item.fields:
        p = {"type": f.type, "description": f.description, "default": f.default}
        if f.type in ("integer", "number"):
            p.update(minimum=-1, maximum=1_000_000)
        else:
            p["maxLength"] = 40
        props[f.name] = p
    return {"type": "object", "additionalProperties": False, "required": list(props), "properties": props}


def extraction(eng: Engine, chat: dict | None, n: int, max_tokens: int) -> dict:
    """The extraction tasks under constrained decoding, scored by imo.prompt.score: the reference
    row beside the A/B arms (every answer is well-formed JSON; are the values right?)."""
    from imo.prompt.score import score_answer, summarize

    scores, incomplete = [], 0
    for item in generate("plain", n, seed=0):
        schema = task_schema(item)
        grammar = compile_schema(schema, eng.text, eng.cfg.vocab_size)
        prompt = extract_prompt({**schema, "title": item.example().subject}, item.text, chat)[0]
        out = constrained_generate(eng, eng.text.encode(prompt), grammar, max_tokens=max_tokens)
        if not out.complete:  # counted, not scored (an empty answer would count as true negatives)
            incomplete += 1
            continue
        scores.append(score_answer(item, out.text, "json"))
    s = summarize(scores, seed=0)
    return {"items": n, "incomplete": incomplete, "accuracy": s.accuracy.show(), "tpr": s.tpr.show(),
            "tnr": s.tnr.show(), "valid": s.valid.show()}


def markdown(rows: dict, label: str) -> str:
    lines = [f"| Schema ({label}) | Prompts | Valid, unconstrained | Valid, constrained | ... with fast-forward "
             "| Same answer with ff | Forward calls saved by ff | Mask share of decode time | Mask per token |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['prompts']} | {100 * r['valid_unconstrained']:.1f}% | "
                     f"{100 * r['valid_constrained']:.1f}% | {100 * r['valid_constrained_ff']:.1f}% | "
                     f"{100 * r['ff_same_answer']:.0f}% | {100 * r['ff_call_reduction']:.1f}% | "
                     f"{100 * (r['mask_share_median'] or 0):.2f}% | {r['mask_us_per_token_median'] or 0:.0f} us |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--run", help="a run to measure instead of the random byte model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--extraction", type=int, default=0, metavar="N",
                    help="instead: N extraction items under constrained decoding, scored exactly")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.run:
        eng, chat, label = run_engine(args.run)
    else:
        eng, chat, label = random_byte_engine(), None, "random byte GPT 2x64"
    began = time.time()
    if args.extraction:
        print(json.dumps({"model": label, "load": os.getloadavg(),
                          "extraction": extraction(eng, chat, args.extraction, args.max_tokens),
                          "minutes": round((time.time() - began) / 60, 2)}, indent=2))
        return
    rows = measure(eng, chat, args.prompts, args.max_tokens)
    info = {"model": label, "machine": platform.processor() or platform.machine(), "threads": args.threads,
            "load": os.getloadavg(), "minutes": round((time.time() - began) / 60, 2)}
    print(json.dumps({"info": info, "rows": rows}, indent=2))
    if args.markdown:
        print(markdown(rows, label))


if __name__ == "__main__":
    main()
