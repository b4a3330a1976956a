"""A mock policy with known step probabilities over one countdown problem, and brute force over
its tree: what every search method is checked against."""

import math
import random

from imo import tasks

TASK = tasks.get("countdown")
PROBLEM = TASK._problem(1, [3, 7, 8], 29, ["3*7=21", "21+8=29"])

# prefix -> (next line, probability); the only correct path is 3*7=21, 21+8=29 (p = 0.15), while
# the likeliest line at every step leads to 18
TREE: dict[str, list[tuple[str, float]]] = {
    "": [("3+7=10\n", 0.6), ("3*7=21\n", 0.3), ("8-3=5\n", 0.1)],
    "3+7=10\n": [("10+8=18\n", 0.7), ("10*8=80\n", 0.3)],
    "3*7=21\n": [("21+8=29\n", 0.5), ("21-8=13\n", 0.5)],
    "8-3=5\n": [("5*7=35\n", 1.0)],
}


def options(text: str) -> list[tuple[str, float]]:
    if text in TREE:
        return TREE[text]
    last = text.rstrip("\n").split("\n")[-1]
    return [(f"={last.split('=')[-1]}\n", 1.0)]  # after two steps: the answer line, always


class MockPolicy:
    task, difficulty = TASK, 1

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.generated = 0  # every token it wrote, counted here independently of the TokenBudget

    def reseed(self, seed: int) -> None:
        self.rng.seed(seed)

    def step(self, items, temperature):
        out = []
        for _, text in items:
            opts = options(text)
            if temperature == 0:
                line, p = max(opts, key=lambda o: o[1])
            else:
                w = [p ** (1 / temperature) for _, p in opts]
                line, p = self.rng.choices(opts, weights=w)[0]
            self.generated += len(line.encode())
            out.append((line, math.log(p)))
        return out


def paths(text: str = "", p: float = 1.0):
    """Every complete solution of the tree with its probability (brute force)."""
    for line, q in options(text):
        t = text + line
        if line.startswith("="):
            yield t, p * q
        else:
            yield from paths(t, p * q)
