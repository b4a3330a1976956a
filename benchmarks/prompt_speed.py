"""How fast SmolLM2 answers one generated task item greedily on one thread through imo's engine,
as the prompt claims ask it (imo.prompt.local.EngineChat: the chat template, the engine's greedy
decoding with a prefix tree; the answer cache is off here, so every answer is computed).

For each number of shots, the same `plain` items are asked in order; the first item of each kind
prefills that kind's shared prefix (system line and worked examples), the later ones reuse it
from the prefix tree. Reported per shots: seconds per item (mean, and mean over the items after
the first of their kind), prompt tokens per item, answer tokens per item, the share of prompt
tokens served from the prefix tree, and the engine's prefill and decode rates (time inside model
calls; decode includes attention over the whole prompt). Run under the heavy-job lock:

    flock /tmp/imo-heavy.lock python benchmarks/prompt_speed.py --items 6 --shots 0,8 --max-tokens 64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    import imo  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from imo.prompt.builder import PromptSpec, build_messages  # noqa: E402
from imo.prompt.local import smollm2_chat  # noqa: E402
from imo.prompt.tasks import generate, shots_for  # noqa: E402
from imo.runs.store import RunStore  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=6)
    ap.add_argument("--shots", default="0,8", help="comma-separated shot counts")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load = os.getloadavg()
    with RunStore.open() as store:
        t0 = time.perf_counter()
        chat = smollm2_chat(store)
        loaded = time.perf_counter() - t0
    chat.store = None  # compute every answer
    items = generate("plain", args.items, seed=args.seed)
    rows = []
    for k in (int(s) for s in args.shots.split(",")):
        st = chat.engine.stats
        before = dict(st.to_dict())
        seen, per, later = set(), [], []
        prompt_tokens = answer_tokens = 0
        for it in items:
            msgs = build_messages(PromptSpec(shots=k), it.fields, it.example(), shots_for(it, k, args.seed) if k else [])
            t = time.perf_counter()
            n0 = chat.counters.answer_tokens
            chat(msgs, args.max_tokens)
            dt = time.perf_counter() - t
            per.append(dt)
            (later if it.kind in seen else []).append(dt)
            seen.add(it.kind)
            prompt_tokens += len(chat.ids(msgs))
            answer_tokens += chat.counters.answer_tokens - n0
        d = {key: st.to_dict()[key] - before[key] for key in before}
        rows.append({"shots": k, "items": len(items), "s_per_item": sum(per) / len(per),
                     "s_per_item_after_first_of_kind": sum(later) / len(later) if later else None,
                     "prompt_tokens_per_item": prompt_tokens / len(items), "answer_tokens_per_item": answer_tokens / len(items),
                     "prefill_reused_share": d["prefill_reused"] / max(d["prefill_reused"] + d["prefill_computed"], 1),
                     "generated": d["generated"], "model_seconds": d["seconds"]})
    print(json.dumps({"load_before": load, "load_after": os.getloadavg(), "model_load_s": loaded,
                      "max_tokens": args.max_tokens, "rows": rows}, indent=1))
    for r in rows:
        after = r["s_per_item_after_first_of_kind"]
        print(f"| {r['shots']} | {r['items']} | {r['s_per_item']:.2f} | {after if after is None else f'{after:.2f}'} | "
              f"{r['prompt_tokens_per_item']:.0f} | {r['answer_tokens_per_item']:.1f} | {r['prefill_reused_share']:.0%} |")


if __name__ == "__main__":
    main()
