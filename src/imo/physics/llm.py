"""The "LLM as physicist" row of the physics exam (issue 21): imo's byte GPT reads a ball
trajectory written as text and writes the positions at a queried horizon.

The text format (fixed width, so every prompt of one exam has the same length and decodes in one
batch). One example, for 3 balls:

    R3124,4210 M120,090,150 H050
    0342 0781 0510 0220 0900 0120
    0361 0779 0522 0241 0880 0131
    ...                                   (one line per LINE_S = 0.1 s of the 0.5 s context)
    =0352 0700 0530 0180 0880 0050

- header: `R` the ramp's two intercepts (its height on the left wall, its foot on the floor) in
  mm; `M` each ball's mass in units of 10 g; `H` the query horizon in hundredths of a second;
- state lines: every ball's x and y in mm (4 digits, zero-padded, clamped to 0..9999), one line
  per time step, the first at the start of the context and the last at its end (6 lines for 0.5 s);
- after the marker `=`: the answer, the balls' x and y at the horizon in the same format, then a
  newline. Training puts the loss on the answer bytes only (the prompt's targets are -100).

Training text comes from training scenes (seeds 1000000, ..., disjoint from the exam's seeds
0, 1, ...): windows of context + horizon at random offsets and one of the exam's horizons, drawn
afresh each step by the generator `imo.train.loop.fit` owns (seeded, so a run repeats exactly).
The model is an `imo.model.GPT` (byte vocabulary) trained by `imo.train.loop.fit`; answers are
decoded greedily by `imo.engine.decode.Engine` and parsed back to numbers. An answer that does not
parse (wrong digit count, missing numbers, stray bytes) is counted and scored as the
constant-velocity guess for that scene and horizon (`imo.physics.baselines.predict` with no
gravity), so the error row always covers every test scene; the parse rate is reported beside it.

    f = fit(train_scenes, LLMConfig(steps=1000))
    rows = forecast_errors(f, test_scenes)  # {"errors": {0.25: radii, ...}, "parsed": ..., ...}
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from imo.errors import ConfigError
from imo.physics.baselines import HORIZONS_S, predict
from imo.physics.scenes import Scene

LINE_S = 0.1  # seconds between the state lines of a prompt
MARK = b"="  # the answer follows this byte
DIGITS = 4  # mm per coordinate: 0000..9999
IGNORE = -100  # targets without loss (F.cross_entropy's default ignore_index)


@dataclass(frozen=True)
class LLMConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    context_length: int = 256
    steps: int = 1000
    batch: int = 32           # examples per step
    lr: float = 3e-3
    warmup: int = 50
    context_s: float = 0.5
    seed: int = 0

    def check(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise ConfigError("steps and batch must be >= 1")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")


def _mm(v: np.ndarray | float) -> np.ndarray:
    return np.clip(np.rint(np.asarray(v, float) * 1000), 0, 10 ** DIGITS - 1).astype(np.int64)


def _line(pos: np.ndarray) -> bytes:
    """pos (balls, 2) metres -> b"xxxx yyyy xxxx yyyy ..." (no newline)."""
    return " ".join(f"{v:0{DIGITS}d}" for v in _mm(pos).reshape(-1)).encode()


def header(scene: Scene, horizon_s: float) -> bytes:
    w = scene.walls
    ramp = _mm([w[4, 1], w[4, 2]]) if len(w) > 4 else np.zeros(2, np.int64)
    mass = np.clip(np.rint(scene.masses * 100), 0, 999).astype(np.int64)
    h = int(round(horizon_s * 100))
    if not 0 < h <= 999:
        raise ConfigError(f"horizon {horizon_s} s is outside the format's 0.01..9.99 s")
    return (f"R{ramp[0]:04d},{ramp[1]:04d} M" + ",".join(f"{m:03d}" for m in mass) + f" H{h:03d}\n").encode()


def _context_frames(hz: int, context_s: float) -> list[int]:
    """Frame offsets (from the window start) of the state lines: 0, 6, ..., 30 at 60 Hz."""
    c, every = int(round(context_s * hz)), int(round(LINE_S * hz))
    if every < 1 or c % every:
        raise ConfigError(f"context {context_s} s is not a whole number of {LINE_S} s lines at {hz} Hz")
    return list(range(0, c + 1, every))


def prompt(scene: Scene, horizon_s: float, start: int = 0, context_s: float = 0.5) -> bytes:
    """The prompt for the window that begins at frame `start`, ending with the marker."""
    lines = [_line(scene.states[start + f, :, :2]) for f in _context_frames(scene.config.hz, context_s)]
    return header(scene, horizon_s) + b"\n".join(lines) + b"\n" + MARK


def answer(scene: Scene, horizon_s: float, start: int = 0, context_s: float = 0.5) -> bytes:
    """The true answer bytes (the positions at the horizon) with the closing newline."""
    hz = scene.config.hz
    target = start + int(round(context_s * hz)) + int(round(horizon_s * hz))
    return _line(scene.states[target, :, :2]) + b"\n"


def parse(text: bytes | str, balls: int) -> np.ndarray | None:
    """An answer (the bytes after the marker, with or without the newline) -> (balls, 2) metres,
    or None when it is not exactly 2 * balls numbers of DIGITS digits separated by single spaces."""
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    text = text.rstrip(b"\n")
    if not re.fullmatch(rb"\d{%d}( \d{%d}){%d}" % (DIGITS, DIGITS, 2 * balls - 1), text):
        return None
    return np.array([int(t) for t in text.split()], float).reshape(balls, 2) / 1000


@dataclass
class LLMForecaster:
    model: torch.nn.Module
    cfg: LLMConfig
    balls: int
    steps: int
    seconds: float
    train_bpb: float
    example_bytes: int

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def to_dict(self) -> dict:
        return {"config": asdict(self.cfg), "parameters": self.parameters, "steps": self.steps,
                "seconds": round(self.seconds, 1), "train_bpb_last": self.train_bpb,
                "example_bytes": self.example_bytes}


def _windows(scenes: list[Scene], context_s: float, horizons_s: tuple[float, ...]):
    """For each horizon, the largest window start every training scene allows."""
    hz, frames = scenes[0].config.hz, len(scenes[0].states)
    c = int(round(context_s * hz))
    last = {h: frames - 1 - c - int(round(h * hz)) for h in horizons_s}
    if min(last.values()) < 0:
        raise ConfigError(f"training scenes are shorter than {context_s + max(horizons_s)} s")
    return last


def example_batch(scenes: list[Scene], gen: torch.Generator, batch: int, context_s: float = 0.5,
                  horizons_s: tuple[float, ...] = HORIZONS_S) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) byte ids (batch, T): random scene, horizon and window start per row; y is x shifted
    by one with IGNORE on every prompt position (loss on the answer and its newline only)."""
    last = _windows(scenes, context_s, horizons_s)
    rows_x, rows_y = [], []
    for _ in range(batch):
        s = scenes[int(torch.randint(len(scenes), (1,), generator=gen))]
        h = horizons_s[int(torch.randint(len(horizons_s), (1,), generator=gen))]
        start = int(torch.randint(last[h] + 1, (1,), generator=gen))
        p, a = prompt(s, h, start, context_s), answer(s, h, start, context_s)
        ids = list(p + a)
        rows_x.append(ids[:-1])
        rows_y.append([IGNORE] * (len(p) - 1) + ids[len(p):])
    return torch.tensor(rows_x), torch.tensor(rows_y)


def fit(scenes: list[Scene], cfg: LLMConfig, quiet: bool = True) -> LLMForecaster:
    """Train a byte GPT on answer-masked examples from `scenes` through imo.train.loop.fit."""
    from imo.model import GPT, ModelConfig
    from imo.train.loop import FitConfig
    from imo.train.loop import fit as loop_fit

    cfg.check()
    if not scenes:
        raise ConfigError("no training scenes")
    balls = scenes[0].states.shape[1]
    length = len(prompt(scenes[0], max(HORIZONS_S), 0, cfg.context_s)) + 5 * 2 * balls
    if length - 1 > cfg.context_length:
        raise ConfigError(f"{balls} balls make {length}-byte examples, more than the context of "
                          f"{cfg.context_length}; use fewer balls or a longer context")
    torch.manual_seed(cfg.seed)
    model = GPT(ModelConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                            context_length=cfg.context_length, dropout=0.0))
    _windows(scenes, cfg.context_s, HORIZONS_S)  # refuse short scenes before training
    fc = FitConfig(steps=cfg.steps, lr=cfg.lr, warmup=min(cfg.warmup, cfg.steps), seed=cfg.seed,
                   eval_every=max(cfg.steps, 1), log_every=max(cfg.steps, 1), ckpt_every=cfg.steps + 1)
    t0 = time.perf_counter()
    res = loop_fit(model, lambda gen, m: example_batch(scenes, gen, cfg.batch, cfg.context_s), fc,
                   quiet=quiet, label="physics-llm")
    model.eval()
    return LLMForecaster(model, cfg, balls, res.steps, time.perf_counter() - t0, res.train_bpb, length)


def forecast_errors(f: LLMForecaster, scenes: list[Scene],
                    horizons_s: tuple[float, ...] = HORIZONS_S) -> dict:
    """Greedy answers for every test scene and horizon (context from frame 0, as the other rows).
    Returns {"errors": {h: mean radii}, "parsed": {h: share}, "unparsed_examples": [...],
    "answers": [...]} (the first two scenes' answers and truths at each horizon, to read);
    an unparsed answer is scored as the constant-velocity guess."""
    from imo.engine.decode import Engine

    eng = Engine(f.model)
    cfg0 = scenes[0].config
    c = int(round(f.cfg.context_s * cfg0.hz))
    errors, parsed, bad, shown = {}, {}, [], []
    for h in horizons_s:
        k = int(round(h * cfg0.hz))
        if c + k >= len(scenes[0].states):
            raise ConfigError(f"scenes are shorter than {f.cfg.context_s + h} s")
        prompts = [prompt(s, h, 0, f.cfg.context_s) for s in scenes]
        outs = eng.generate(prompts, temperature=0, max_tokens=5 * 2 * f.balls, stop=[b"\n"])
        d, ok = [], 0
        for i, (s, out) in enumerate(zip(scenes, outs, strict=True)):
            if i < 2:
                shown.append({"seed": s.seed, "horizon_s": h, "answer": out[0].data.decode("latin-1"),
                              "truth": answer(s, h, 0, f.cfg.context_s).decode().strip()})
            guess = parse(out[0].data, f.balls)
            if guess is None:
                if len(bad) < 5:
                    bad.append({"seed": s.seed, "horizon_s": h, "answer": out[0].data.decode("latin-1")})
                guess = predict(s.states[: c + 1, :, :2], h, s.config.hz, 0.0)
            else:
                ok += 1
            d.extend((np.linalg.norm(guess - s.states[c + k, :, :2], axis=-1) / s.config.radius).tolist())
        errors[h], parsed[h] = float(np.mean(d)), ok / len(scenes)
    return {"errors": errors, "parsed": parsed, "unparsed_examples": bad, "answers": shown}
