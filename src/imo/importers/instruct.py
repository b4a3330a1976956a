"""Instruction data for fine-tuning a chat model: JSONL conversations, rendered with the run's own
chat template and tokenized so that only the assistant's answer is trained on.

A line of the file is either {"messages": [{"role": ..., "content": ...}, ...]} (the last message
is the assistant's answer) or {"prompt": "...", "response": "..."} (one user turn and its answer).
Each example becomes the token ids the model sees at chat time: the prompt exactly as `imo chat`
encodes it (template up to the assistant's turn), then the answer with the template's end of turn;
the targets are the next ids over the answer only (-100, which cross-entropy ignores, elsewhere),
the usual supervised fine-tuning loss of instruction tuning (Ouyang et al. 2022, section 3.5).

`terse_answers` generates a small set for tests and benchmarks: short factual questions whose
answers are one word or number, the opposite of a chatty model's habit.

    convs = read_conversations(Path("train.jsonl"))
    examples = encode_conversations(tok, spec, convs, context=256)   # [(ids, targets), ...]
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from imo.errors import DataError
from imo.files import read_jsonl

IGNORE = -100  # F.cross_entropy's default ignore_index


def read_conversations(path: Path) -> list[list[dict]]:
    """Every line of a JSONL file as a list of chat messages; a bad line is one clear error."""
    path = Path(path)
    convs = []
    for n, row in read_jsonl(path, "instruction file"):
        if isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str):
            msgs = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
        elif isinstance(row, dict) and isinstance(row.get("messages"), list):
            msgs = row["messages"]
        else:
            raise DataError(f"{path.name} line {n}: expected {{\"prompt\", \"response\"}} or {{\"messages\": [...]}}")
        if not msgs or not isinstance(msgs[-1], dict) or msgs[-1].get("role") != "assistant":
            raise DataError(f"{path.name} line {n}: the last message must be the assistant's answer")
        convs.append(msgs)
    if not convs:
        raise DataError(f"instruction file '{path}' has no examples")
    return convs


def encode_conversation(tok, spec: dict, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(input ids, target ids) of one conversation, both of the same length."""
    from imo.importers.chat import render

    prompt = render(spec["template"], messages[:-1], spec, add_generation_prompt=True)
    full = render(spec["template"], messages, spec, add_generation_prompt=False)
    if not full.startswith(prompt):
        raise DataError("the chat template does not render a conversation as its prompt followed by the answer")
    p, a = tok.encode(prompt), tok.encode(full[len(prompt):])
    if not a:
        raise DataError("an example has an empty answer")
    ids = p + a
    targets = [IGNORE] * (len(p) - 1) + a  # position i predicts ids[i + 1]
    return ids[:-1], targets


def encode_conversations(tok, spec: dict | None, convs: list[list[dict]], context: int) -> list[tuple[list[int], list[int]]]:
    if not spec or not spec.get("template"):
        raise DataError("chat fine-tuning data needs a run with a chat template (an imported instruct model)")
    out = []
    for n, msgs in enumerate(convs, 1):
        ids, targets = encode_conversation(tok, spec, msgs)
        if len(ids) > context:
            raise DataError(f"example {n} is {len(ids)} tokens, longer than the context {context}; use a longer --context")
        out.append((ids, targets))
    return out


# --- a generated instruction set: terse answers ------------------------------------------------

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
            "Egypt": "Cairo", "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo",
            "Greece": "Athens", "Poland": "Warsaw", "Austria": "Vienna", "Cuba": "Havana", "Chile": "Santiago"}
OPPOSITES = {"hot": "cold", "big": "small", "fast": "slow", "up": "down", "happy": "sad", "light": "dark",
             "early": "late", "full": "empty", "open": "closed", "old": "new", "hard": "soft", "wet": "dry"}
PLURALS = {"mouse": "mice", "child": "children", "foot": "feet", "tooth": "teeth", "city": "cities",
           "box": "boxes", "leaf": "leaves", "woman": "women", "knife": "knives", "goose": "geese"}


def terse_answers(n: int, seed: int = 0) -> list[dict]:
    """`n` {"prompt", "response"} pairs: capitals, opposites, plurals and small sums, each answered
    with one word or number and a full stop. Seeded, so a test or benchmark regenerates its set."""
    rng = random.Random(seed)
    kinds = [
        lambda: (lambda c: (f"What is the capital of {c}?", CAPITALS[c]))(rng.choice(sorted(CAPITALS))),
        lambda: (lambda w: (f"What is the opposite of {w}?", OPPOSITES[w]))(rng.choice(sorted(OPPOSITES))),
        lambda: (lambda w: (f"What is the plural of {w}?", PLURALS[w]))(rng.choice(sorted(PLURALS))),
        lambda: (lambda a, b: (f"What is {a} plus {b}?", str(a + b)))(rng.randint(1, 20), rng.randint(1, 20)),
    ]
    out = []
    for i in range(n):
        q, a = kinds[i % len(kinds)]()
        out.append({"prompt": q, "response": a[0].upper() + a[1:] + "."})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    from imo.atomic import write_text

    write_text(Path(path), "".join(json.dumps(r) + "\n" for r in rows))
    return Path(path)
