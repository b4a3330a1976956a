"""Ability decoders and courses on the skills battery (issue 19; imo.tasks.skills).

The notes: "every human ability requires a decoder from context token", and "think of AI as a
kid, we are designing games to see which game helps the kid grow". Both experiments train one
small byte-level transformer (imo.model.GPT blocks) on lines `<skill> <input>=<answer>\\n`, with
the loss on the answer bytes only, and score exact answers by greedy decoding.

**Decoders.** One shared trunk (the GPT's embedding, blocks and final norm) reads the line. The
next byte is read off the trunk by a decoder: either one decoder per skill (an MLP d -> h -> 256,
picked by the line's skill) or one shared decoder with k times the hidden width (d -> k*h -> 256),
so both arms have the same parameters (up to k-1 bias vectors). `interference_run` trains on the
old skills, scores them, then adds a new skill and trains on it alone: the interference is how
much the old skills lose (points), beside how well the new one is learnt.

**Courses.** `course_run` trains the same model (shared decoder) on every skill at difficulties 1
and 2 for a fixed number of steps, with the same examples in expectation and only their order
changed: easy-to-hard (the first half of the steps difficulty 1, then difficulty 2), random (each
example's difficulty drawn at random) or hard-to-easy. It scores both difficulties every
`eval_every` steps: final accuracy and the first step at which the mean accuracy reaches a
threshold.

    rec = interference_run("per-skill", SkillsRunConfig(), seed=0)
    rec = course_run("easy-to-hard", SkillsRunConfig(), seed=0)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from imo.errors import ConfigError

HEADS = ("per-skill", "shared")
ORDERS = ("easy-to-hard", "random", "hard-to-easy")
NEWLINE = 10


@dataclass
class SkillsRunConfig:
    skills: tuple[str, ...] = ("count", "copy", "reverse", "sort", "add", "compare", "grid")
    new_skill: str = "grid"  # decoders: the skill added last (it must be one of `skills`)
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    head_hidden: int = 64  # per-skill decoder width; the shared one is len(skills) times wider
    steps: int = 1500  # decoders: steps on the old skills; courses: total steps
    new_steps: int = 500  # decoders: steps on the new skill alone
    batch: int = 32
    lr: float = 3e-3
    n_train: int = 2000  # training problems per skill (and per difficulty)
    n_test: int = 100  # test problems per skill (and per difficulty), none shared with training
    eval_every: int = 250  # courses: steps between scorings
    threshold: float = 0.5  # courses: the mean accuracy whose first crossing is reported

    def check(self) -> None:
        from imo.tasks.skills import SKILLS

        bad = [s for s in self.skills if s not in SKILLS]
        if bad or len(set(self.skills)) != len(self.skills) or not self.skills:
            raise ConfigError(f"--skills must be distinct names from {', '.join(SKILLS)}, got {','.join(self.skills)}")
        if self.new_skill not in self.skills or len(self.skills) < 2:
            raise ConfigError(f"--new-skill {self.new_skill!r} must be one of --skills, beside at least one other")
        for name in ("n_layer", "n_embd", "n_head", "head_hidden", "steps", "new_steps", "batch", "n_train",
                     "n_test", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"--n-head {self.n_head} must divide --n-embd {self.n_embd}")
        if not self.lr > 0 or not 0 < self.threshold <= 1:
            raise ConfigError(f"--lr must be > 0 and --threshold in (0, 1], got {self.lr}, {self.threshold}")


class SkillModel(nn.Module):
    """imo's GPT blocks as the trunk; decoders per skill or one shared (equal parameters)."""

    def __init__(self, cfg: SkillsRunConfig, heads: str, context: int = 64):
        super().__init__()
        from imo.model.config import ModelConfig
        from imo.model.gpt import GPT

        if heads not in HEADS:
            raise ConfigError(f"unknown decoders {heads!r}; choose {' or '.join(HEADS)}")
        mc = ModelConfig(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, context_length=context,
                         pos="rope", attn="sdpa", tie_weights=True)
        self.gpt = GPT(mc)  # its tied lm_head is not used: the decoders below read the trunk
        self.heads, self.skills = heads, list(cfg.skills)
        k, d, h = len(cfg.skills), cfg.n_embd, cfg.head_hidden

        def mlp(width: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, 256))

        self.decoders = nn.ModuleList([mlp(h) for _ in range(k)] if heads == "per-skill" else [mlp(k * h)])

    def trunk(self, idx: torch.Tensor) -> torch.Tensor:
        g = self.gpt
        pos = torch.arange(idx.size(1))
        x = g.transformer.wte(idx)
        pe = g.positions.embed(pos)
        if pe is not None:
            x = x + pe
        for i, block in enumerate(g.transformer.h):
            x = block(x, pos, None, i)
        return g.transformer.ln_f(x)

    def forward(self, idx: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        """idx (B, T) bytes, skill (B,) indices into self.skills -> logits (B, T, 256)."""
        h = self.trunk(idx)
        if self.heads == "shared":
            return self.decoders[0](h)
        out = h.new_zeros(*h.shape[:2], 256)
        for s in skill.unique().tolist():
            rows = skill == s
            out[rows] = self.decoders[s](h[rows])
        return out

    def decoder_params(self) -> int:
        return sum(p.numel() for p in self.decoders.parameters())


def problems(cfg: SkillsRunConfig, difficulty: int, seed: int) -> dict[str, tuple[list, list]]:
    """{skill: (train problems, test problems)}, disjoint, from imo.tasks.split."""
    from imo.tasks import get, split

    return {s: split(get(f"skill-{s}"), difficulty, cfg.n_train, cfg.n_test, seed + 101 * difficulty)
            for s in cfg.skills}


def encode(batch: list, skills: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Problems -> (inputs (B, T), targets (B, T) with -100 outside the answer, skill indices (B,))."""
    lines = [(p.prompt + p.answer + "\n").encode() for p in batch]
    T = max(len(b) for b in lines) - 1
    idx = torch.zeros(len(lines), T, dtype=torch.long)
    tgt = torch.full((len(lines), T), -100, dtype=torch.long)
    for i, (b, p) in enumerate(zip(lines, batch, strict=True)):
        t = torch.tensor(list(b), dtype=torch.long)
        idx[i, : len(b) - 1] = t[:-1]
        start = len(p.prompt.encode()) - 1  # the position whose next byte is the first answer byte
        tgt[i, start: len(b) - 1] = t[start + 1:]
    sk = torch.tensor([skills.index(p.task.removeprefix("skill-")) for p in batch])
    return idx, tgt, sk


def train_steps(model: SkillModel, opt: torch.optim.Optimizer, draw: Callable[[], list], steps: int) -> float:
    """`steps` Adam steps on batches from draw(); the mean loss of the last 50."""
    model.train()
    recent: list[float] = []
    for _ in range(steps):
        idx, tgt, sk = encode(draw(), model.skills)
        logits = model(idx, sk)
        loss = F.cross_entropy(logits.view(-1, 256), tgt.view(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        recent = (recent + [loss.item()])[-50:]
    return sum(recent) / max(len(recent), 1)


@torch.no_grad()
def accuracy(model: SkillModel, tests: list, max_answer: int = 12) -> float:
    """Exact-match accuracy of greedy answers (up to the newline), batched by prompt length."""
    from imo.tasks import get

    model.eval()
    groups: dict[tuple[str, int], list] = {}
    for p in tests:
        groups.setdefault((p.task, len(p.prompt.encode())), []).append(p)
    right = 0
    for (task, _), group in groups.items():
        idx = torch.tensor([list(p.prompt.encode()) for p in group], dtype=torch.long)
        sk = torch.full((len(group),), model.skills.index(task.removeprefix("skill-")))
        done = torch.zeros(len(group), dtype=torch.bool)
        out: list[list[int]] = [[] for _ in group]
        for _ in range(max_answer + 1):
            nxt = model(idx, sk)[:, -1].argmax(-1)
            for i, b in enumerate(nxt.tolist()):
                if not done[i]:
                    if b == NEWLINE:
                        done[i] = True
                    else:
                        out[i].append(b)
            if done.all():
                break
            idx = torch.cat([idx, nxt[:, None]], dim=1)
        t = get(task)
        right += sum(bool(done[i]) and t.check(p, bytes(out[i]).decode("latin-1")) for i, p in enumerate(group))
    return right / max(len(tests), 1)


def _sampler(pools: list[list], rng: random.Random, batch: int) -> Callable[[], list]:
    return lambda: [rng.choice(rng.choice(pools)) for _ in range(batch)]


def _model(cfg: SkillsRunConfig, heads: str, seed: int) -> tuple[SkillModel, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = SkillModel(cfg, heads)
    return model, torch.optim.Adam(model.parameters(), lr=cfg.lr)


def interference_run(heads: str, cfg: SkillsRunConfig, seed: int = 0,
                     log: Callable[[str], None] | None = None) -> dict:
    """Train on every skill but cfg.new_skill (difficulty 1), score; train on the new skill alone,
    score again. Interference: the mean drop of the old skills' accuracy, in points."""
    cfg.check()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = problems(cfg, 1, seed)
    old = [s for s in cfg.skills if s != cfg.new_skill]
    model, opt = _model(cfg, heads, seed)
    rng = random.Random(seed)
    loss1 = train_steps(model, opt, _sampler([data[s][0] for s in old], rng, cfg.batch), cfg.steps)
    before = {s: accuracy(model, data[s][1]) for s in old}
    new_before = accuracy(model, data[cfg.new_skill][1])
    if log:
        log(f"{heads}: after {cfg.steps} steps on {','.join(old)}: "
            + " ".join(f"{s} {100 * a:.0f}%" for s, a in before.items()))
    loss2 = train_steps(model, opt, _sampler([data[cfg.new_skill][0]], rng, cfg.batch), cfg.new_steps)
    after = {s: accuracy(model, data[s][1]) for s in old}
    new_after = accuracy(model, data[cfg.new_skill][1])
    drop = {s: 100 * (before[s] - after[s]) for s in old}
    if log:
        log(f"{heads}: after {cfg.new_steps} steps on {cfg.new_skill} alone: "
            + " ".join(f"{s} {100 * a:.0f}%" for s, a in after.items()) + f"; {cfg.new_skill} {100 * new_after:.0f}%")
    return {"heads": heads, "seed": seed, "config": asdict(cfg), "params": sum(p.numel() for p in model.parameters()),
            "decoder_params": model.decoder_params(), "old_skills": old, "before": before, "after": after,
            "drop_points": drop, "interference_points": sum(drop.values()) / len(drop),
            "old_accuracy_before": sum(before.values()) / len(before), "new_skill_before": new_before,
            "new_skill_after": new_after, "loss_old": loss1, "loss_new": loss2, "seconds": time.perf_counter() - t0}


def difficulty_at(order: str, step: int, steps: int, rng: random.Random) -> int:
    """The difficulty of the examples at `step` of `steps` under a course order."""
    if order == "random":
        return rng.choice((1, 2))
    first_half = step < steps // 2
    return (1 if first_half else 2) if order == "easy-to-hard" else (2 if first_half else 1)


def course_run(order: str, cfg: SkillsRunConfig, seed: int = 0, log: Callable[[str], None] | None = None) -> dict:
    """Train on every skill at difficulties 1 and 2 for cfg.steps, the difficulty per batch set
    by `order` (random: per example); score both difficulties every cfg.eval_every steps."""
    if order not in ORDERS:
        raise ConfigError(f"unknown order {order!r}; choose {', '.join(ORDERS)}")
    cfg.check()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = {d: problems(cfg, d, seed) for d in (1, 2)}
    model, opt = _model(cfg, "shared", seed)
    rng = random.Random(seed)
    pools = {d: [data[d][s][0] for s in cfg.skills] for d in (1, 2)}
    tests = {d: [p for s in cfg.skills for p in data[d][s][1]] for d in (1, 2)}
    curve, reached, step = [], None, 0
    while step < cfg.steps:
        n = min(cfg.eval_every, cfg.steps - step)

        def draw():
            nonlocal step
            d_batch = [difficulty_at(order, step, cfg.steps, rng) for _ in range(cfg.batch)]
            if order != "random":
                d_batch = [d_batch[0]] * cfg.batch
            step += 1
            return [rng.choice(rng.choice(pools[d])) for d in d_batch]

        train_steps(model, opt, draw, n)
        acc = {d: accuracy(model, tests[d]) for d in (1, 2)}
        mean = (acc[1] + acc[2]) / 2
        curve.append({"step": step, "easy": acc[1], "hard": acc[2], "mean": mean})
        if reached is None and mean >= cfg.threshold:
            reached = step
        if log:
            log(f"{order} step {step}: easy {100 * acc[1]:.1f}% hard {100 * acc[2]:.1f}% mean {100 * mean:.1f}%")
    last = curve[-1]
    return {"order": order, "seed": seed, "config": asdict(cfg), "curve": curve, "final_easy": last["easy"],
            "final_hard": last["hard"], "final_mean": last["mean"], "steps_to_threshold": reached,
            "seconds": time.perf_counter() - t0}
