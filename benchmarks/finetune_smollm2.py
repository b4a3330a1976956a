"""A LoRA fine-tune of SmolLM2-135M-Instruct (issue 15) on a generated instruction set: terse
one-word answers (imo/importers/instruct.py: capitals, opposites, plurals, small sums), against
the chatty answers of the instruct model. Prints the validation loss before and after (bits per
byte of the answers), the seconds, and greedy answers before and after to questions of the same
kinds whose subjects are not in the set.

Everything runs through imo's own commands' code: `imo import smollm2`, `imo train --init-from
smollm2 --corpus chat:qa.jsonl --lora-rank R`, `imo chat --once`, in a store of its own.

    IMO_STORE=/tmp/ft/store.sqlite flock /tmp/imo-heavy.lock python benchmarks/finetune_smollm2.py --steps 60
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

# held out: none of these subjects is in the generated set's tables
QUESTIONS = ["What is the capital of Australia?", "What is the opposite of loud?", "What is 23 plus 19?",
             "What is the plural of sheep?"]


def answers(run: str, max_tokens: int = 40) -> list[str]:
    from imo.importers.chat import ChatSession
    from imo.importers.cli import load_chat_run

    model, tok, spec = load_chat_run(run)
    return [ChatSession(model, tok, spec, [{"role": "user", "content": q}], max_tokens=max_tokens).next_answer()
            for q in QUESTIONS]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--rank", type=int, default=8, help="LoRA rank; 0: a full fine-tune")
    ap.add_argument("--lr", type=float, default=None, help="default: imo train's (1e-3 LoRA, 5e-5 full)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--work", type=Path, default=Path("/tmp/imo-ft-smollm2"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if "IMO_STORE" not in os.environ:
        a.work.mkdir(parents=True, exist_ok=True)
        os.environ["IMO_STORE"] = str(a.work / "store.sqlite")
    from imo.importers.gguf import import_gguf, smollm2_path
    from imo.importers.instruct import terse_answers, write_jsonl
    from imo.model.lora import LoRAConfig
    from imo.runs.store import RunStore
    from imo.train.finetune import finetune, train_config

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    print(f"# {platform.processor() or platform.machine()}, {a.threads} threads, torch {torch.__version__}, "
          f"commit {commit}, load {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    with RunStore.open() as store:
        found = [r["id"] for r in store.list(kind="import") if r["name"] == "smollm2"]
    base = found[0] if found else import_gguf(smollm2_path(), name="smollm2")
    print(f"import: {time.perf_counter() - t0:.1f} s (run {base})")
    qa = write_jsonl(a.work / "qa.jsonl", terse_answers(a.examples, seed=0))
    before = answers(base)
    t = train_config({"corpus": f"chat:{qa}", "steps": a.steps, "lr": a.lr, "batch_size": a.batch_size,
                      "dtype": a.dtype}, a.rank)
    t0 = time.perf_counter()
    lora = LoRAConfig(rank=a.rank, alpha=2.0 * a.rank) if a.rank else None
    out = finetune(base, t, context=128, lora=lora, quiet=True)
    seconds = time.perf_counter() - t0
    with RunStore.open() as store:
        f = store.get(out.run_id)["figures"]
    after = answers(out.run_id)
    what = f"LoRA rank {a.rank}, alpha {2 * a.rank}, q/k/v/o/gate/up/down" if a.rank else "full fine-tune"
    print(f"\n{what}; {f['trainable_params']:,} of {f['params']:,} parameters train; {a.examples} examples "
          f"(the last 10% validation), batch {a.batch_size}, {a.steps} steps, lr {t.lr:g}, {f['dtype']}; "
          f"load {os.getloadavg()[0]:.2f} at the end\n")
    print("| validation bits/byte (answers) before | after | bits/token after | fit s (with evals) | fine-tune wall s |")
    print("|--:|--:|--:|--:|--:|")
    print(f"| {f['val_bpb_before']:.3f} | {f['val_bpb']:.3f} | {f['val_bits_per_token']:.3f} | {f['seconds']:.0f} | {seconds:.0f} |")
    print("\n| question (held out) | before | after |\n|:--|:--|:--|")
    for q, b, c in zip(QUESTIONS, before, after, strict=True):
        print(f"| {q} | {b.replace(chr(10), ' ')} | {c.replace(chr(10), ' ')} |")
    print(f"\nrun {out.run_id}")


if __name__ == "__main__":
    main()
