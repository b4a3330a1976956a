"""Passkey episodes in the format of landmark attention (Mohtashami & Jaggi 2023), over bytes.

A long stretch of the same garbage sentences hides one needle, "The pass key is N. Remember it.
N is the pass key.", at a chosen depth; the episode ends with the question, and the model must
continue with the 5 digits of N. Beside the format of the paper (which draws N in [1, 50000]),
keys here always have 5 digits (10000-99999), and an episode may hide distractors, other
5-digit numbers in a different sentence ("The door code is M. Forget it."), so a model that
repeats any number it saw does not pass.

    ep = episode(2048, depth=0.5, rng=random.Random(0), distractors=1)
    ep.prompt, ep.answer     # bytes; the model reads prompt and must continue with answer
"""

import random
from dataclasses import dataclass

GARBAGE = b"The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
QUESTION = b"What is the pass key? The pass key is "
INTRO = b"There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "


def needle(key: int) -> bytes:
    return f"The pass key is {key}. Remember it. {key} is the pass key. ".encode()


def distractor(number: int) -> bytes:
    return f"The door code is {number}. Forget it. ".encode()


# the shortest episode with one distractor: intro, needle, distractor, question and answer
MIN_BYTES = len(INTRO) + len(needle(99999)) + len(distractor(99999)) + len(QUESTION) + 5


@dataclass(frozen=True)
class Episode:
    prompt: bytes
    answer: bytes  # the 5 digits
    key_at: int  # byte offset of the needle in the prompt
    length: int  # len(prompt) + len(answer)


def episode(length: int, depth: float, rng: random.Random, distractors: int = 0) -> Episode:
    """An episode of `length` bytes (prompt plus answer) with the needle starting at `depth` of
    the garbage (0: right after the intro, 1: just before the question)."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    key = rng.randint(10000, 99999)
    others = [rng.randint(10000, 99999) for _ in range(distractors)]
    others = [n if n != key else (n + 1 - 10000) % 90000 + 10000 for n in others]
    answer = str(key).encode()
    inserts = [needle(key)] + [distractor(n) for n in others]
    fill = length - len(INTRO) - len(QUESTION) - len(answer) - sum(map(len, inserts))
    if fill < 0:
        raise ValueError(f"an episode needs at least {length - fill} bytes, got {length}")
    hay = (GARBAGE * (fill // len(GARBAGE) + 1))[:fill]
    at = int(round(depth * fill))
    places = [at] + [rng.randint(0, fill) for _ in others]
    # insert from the back so earlier offsets stay valid; the needle's own offset is computed after
    order = sorted(range(len(inserts)), key=lambda i: places[i], reverse=True)
    for i in order:
        hay = hay[: places[i]] + inserts[i] + hay[places[i] :]
    prompt = INTRO + hay + QUESTION
    return Episode(prompt, answer, prompt.index(inserts[0]), len(prompt) + len(answer))


def training_episode(lo: int, hi: int, rng: random.Random) -> bytes:
    """prompt + answer of a random length in [lo, hi], a random depth and 0-1 distractors."""
    ep = episode(rng.randint(lo, hi), rng.random(), rng, distractors=rng.randint(0, 1))
    return ep.prompt + ep.answer
