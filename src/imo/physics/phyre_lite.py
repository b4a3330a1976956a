"""PHYRE-lite: place-one-ball puzzles in pymunk, generated from seeds, scored by AUCCESS.

PHYRE (Bakhtin et al. 2019, arXiv:1908.05656) poses 2-D puzzles in which an agent places one
red ball, (x, y, radius), so that once the world runs, a green object touches a goal object.
PHYRE is not installable here, so this is a small reimplementation of its protocol in pymunk:

- A *task* is a template and a seed. The seed draws the template's geometry. The goal is that the
  green ball touches the target (a blue bar or ball) within `SECONDS` s. PHYRE also asks that the
  contact last 3 s; here one touch is enough. Success is exact: pymunk's collision handler.
- An *action* is a point of the unit cube, mapped to x, y in the 10 m box and a radius in
  [R_MIN, R_MAX]. An action whose ball would overlap a body or leave the box is invalid, and
  invalid actions are not attempts (as in PHYRE).
- Only tasks that doing nothing does not solve and that some action solves are kept. The
  solvability check tries up to FILTER_TRIES actions from a stream of its own. Task (template,
  i) is the i-th seed of that template to pass both checks.
- AUCCESS (PHYRE section 3.2): let s_k be the share of tasks solved within k attempts, for k =
  1..100. AUCCESS = sum_k w_k s_k / sum_k w_k with w_k = log(k + 1) - log(k). It weights early
  successes most.
- Splits: *within-template* trains and tests on disjoint seeds of every template.
  *Cross-template* trains on the other templates and tests on the held-out one, one fold per
  template.

Agents: `random` tries valid actions from a seeded stream. `ranker` scores a pool of candidate
actions with gradient-boosted trees trained on simulated random actions of the training tasks,
and tries the best first, as PHYRE's DQN agent ranks its sampled actions. `oracle` runs the
simulator in the loop: it simulates up to `ORACLE_BUDGET` candidates and submits the successful
ones first.

    task = make_task("ledge", 3)
    simulate(task, (0.4, 0.7, 0.5)).solved      # exact
    auccess([solved_at_attempt, ...])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from imo.errors import ConfigError
from imo.physics import require_pymunk

TEMPLATES = ("ledge", "deflect", "two-balls", "basket", "valley")
W = H = 10.0
R_MIN, R_MAX = 0.2, 0.8
SECONDS, HZ, SUBSTEPS = 5.0, 60, 2
BAR = 0.1               # static bar radius (half thickness), metres
ATTEMPTS = 100
FILTER_TRIES = 200
ORACLE_BUDGET = 1000
GREEN, TARGET, RED = 11, 12, 13
MAX_BARS = 6


@dataclass(frozen=True)
class Task:
    template: str
    index: int           # the index-th accepted seed of the template
    seed: int            # the seed that drew its geometry
    bars: tuple          # static bars ((x1, y1, x2, y2), ...), not the box
    green: tuple         # (x, y, r): the green ball, at rest at t = 0
    target: tuple        # ("bar", x1, y1, x2, y2) or ("ball", x, y, r): the goal object

    @property
    def name(self) -> str:
        return f"{self.template}:{self.index}"


@dataclass(frozen=True)
class Outcome:
    valid: bool
    solved: bool
    frame: int = -1      # the frame of the first green-target touch


def to_world(action) -> tuple[float, float, float]:
    a = np.clip(np.asarray(action, float), 0.0, 1.0)
    return float(a[0] * W), float(a[1] * H), float(R_MIN + a[2] * (R_MAX - R_MIN))


def _draw(template: str, rng: np.random.Generator):
    """(bars, green, target) of one template's geometry."""
    u = rng.uniform
    if template == "ledge":  # green rests on a ledge; the target pad lies on the floor beyond one end
        h, x0, w = u(3, 6), u(2.5, 4.5), u(2, 3.5)
        gr = u(0.3, 0.5)
        gx = u(x0 + gr, x0 + w - gr)
        side = rng.choice([-1, 1])
        lo, hi = (x0 + w + u(0.3, 1.5), None) if side > 0 else (None, x0 - u(0.3, 1.5))
        pad = (lo, min(lo + u(1.0, 2.0), W - 0.2)) if side > 0 else (max(hi - u(1.0, 2.0), 0.2), hi)
        return [(x0, h, x0 + w, h)], (gx, h + BAR + gr, gr), ("bar", pad[0], BAR, pad[1], BAR)
    if template == "deflect":  # green falls onto a slanted bar that throws it away from the target
        gx, gy, gr = u(3.5, 6.5), u(7.5, 9.0), u(0.3, 0.5)
        side = rng.choice([-1, 1])  # the way the slant throws the ball
        cx, cy, half, tilt = gx + side * u(0.0, 0.3), u(3.0, 5.0), u(0.8, 1.4), u(0.25, 0.5)
        dx, dy = half * math.cos(tilt), half * math.sin(tilt)
        bar = (cx - dx, cy + side * dy, cx + dx, cy - side * dy)
        t0 = gx - side * u(0.6, 1.5)
        pad = sorted((t0, t0 - side * u(1.5, 2.5)))
        pad = (max(pad[0], 0.2), min(pad[1], W - 0.2))
        return [bar], (gx, gy, gr), ("bar", pad[0], BAR, pad[1], BAR)
    if template == "two-balls":  # green and a blue ball at rest on the floor, apart
        gr, br = u(0.3, 0.5), u(0.3, 0.6)
        gx = u(1.5, 8.5)
        side = rng.choice([-1, 1])
        bx = gx + side * u(1.5, 3.5)
        if not 0.5 < bx < W - 0.5:
            bx = gx - side * u(1.5, 3.5)
        bars = []
        if rng.uniform() < 0.5:  # sometimes a low step between them on the floor
            mx = (gx + bx) / 2
            bars.append((mx - 0.2, BAR, mx + 0.2, BAR + u(0.05, 0.25)))
        return bars, (gx, gr + 0.05, gr), ("ball", bx, br + 0.05, br)
    if template == "basket":  # green rests on a high shelf; the target is the floor of a basket
        h, x0, w = u(3, 5), u(1.0, 4.0), u(1.5, 2.5)
        gr = u(0.3, 0.45)
        gx = u(x0 + gr, x0 + w - gr)
        bx0 = u(x0 + w + 0.3, min(x0 + w + 1.5, W - 2.7))
        bw, bh = u(1.5, 2.5), u(0.5, 1.0)
        bars = [(x0, h, x0 + w, h), (bx0, BAR, bx0, bh), (bx0 + bw, BAR, bx0 + bw, bh)]
        return bars, (gx, h + BAR + gr, gr), ("bar", bx0 + 0.15, 0.3, bx0 + bw - 0.15, 0.3)
    if template == "valley":  # green rests in a V on the floor; the target pad is outside it
        cx, half, depth = u(3.0, 7.0), u(1.0, 1.5), u(0.25, 0.5)
        gr = u(0.3, 0.45)
        bars = [(cx - half, depth, cx, BAR), (cx, BAR, cx + half, depth)]
        # the ball rests where it touches both slopes: on the axis, above the vertex
        slope = math.atan2(depth - BAR, half)
        gy = BAR + (gr + BAR) / math.cos(slope)
        side = rng.choice([-1, 1])
        p0 = cx + side * (half + u(0.2, 0.8))
        pad = sorted((p0, p0 + side * u(1.0, 2.0)))
        pad = (max(pad[0], 0.2), min(pad[1], W - 0.2))
        return bars, (cx, gy, gr), ("bar", pad[0], BAR, pad[1], BAR)
    raise ConfigError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")


def _space(task: Task):
    pymunk = require_pymunk()
    space = pymunk.Space()
    space.gravity = (0.0, -9.81)
    sb = space.static_body
    shapes = []
    for x1, y1, x2, y2 in [(0, 0, W, 0), (W, 0, W, H), (W, H, 0, H), (0, H, 0, 0)]:
        shapes.append(pymunk.Segment(sb, (x1, y1), (x2, y2), 0.05))
    for x1, y1, x2, y2 in task.bars:
        shapes.append(pymunk.Segment(sb, (x1, y1), (x2, y2), BAR))
    kind, *t = task.target
    if kind == "bar":
        tgt = pymunk.Segment(sb, (t[0], t[1]), (t[2], t[3]), BAR)
        shapes.append(tgt)
    else:
        body = pymunk.Body()
        body.position = (t[0], t[1])
        tgt = pymunk.Circle(body, t[2])
        space.add(body)
        shapes.append(tgt)
    tgt.collision_type = TARGET
    gx, gy, gr = task.green
    gb = pymunk.Body()
    gb.position = (gx, gy)
    green = pymunk.Circle(gb, gr)
    green.collision_type = GREEN
    space.add(gb)
    shapes.append(green)
    for s in shapes:
        s.elasticity, s.friction = 0.5, 0.5
        if s.body.body_type == pymunk.Body.DYNAMIC:
            s.density = 1.0
    space.add(*shapes)
    return space


def _place_red(space, x: float, y: float, r: float) -> bool:
    """Add the red ball if it fits (inside the box, touching nothing); True when added."""
    pymunk = require_pymunk()
    if not (r + 0.05 < x < W - r - 0.05 and r + 0.05 < y < H - r - 0.05):
        return False
    body = pymunk.Body()
    body.position = (x, y)
    ball = pymunk.Circle(body, r)
    if space.shape_query(ball):
        return False
    ball.elasticity, ball.friction, ball.density = 0.5, 0.5, 1.0
    ball.collision_type = RED
    space.add(body, ball)
    return True


def run(task: Task, action=None, record: bool = False):
    """Simulate the task with the red ball of `action` (None: no ball). Returns the Outcome, and
    with record=True also the green ball's positions (frames, 2)."""
    space = _space(task)
    if action is not None and not _place_red(space, *to_world(action)):
        return (Outcome(False, False), None) if record else Outcome(False, False)
    hit = [False]

    def begin(arbiter, space, data) -> None:
        hit[0] = True

    space.on_collision(GREEN, TARGET, begin=begin)
    green = next(s for s in space.shapes if s.collision_type == GREEN).body
    dt = 1.0 / (HZ * SUBSTEPS)
    path = []
    for f in range(int(SECONDS * HZ) + 1):
        for _ in range(SUBSTEPS if f else 0):
            space.step(dt)
        if record:
            path.append((green.position.x, green.position.y))
        if hit[0]:
            out = Outcome(True, True, f)
            return (out, np.array(path)) if record else out
    out = Outcome(True, False)
    return (out, np.array(path)) if record else out


def simulate(task: Task, action) -> Outcome:
    return run(task, action)


def actions(seed: int | list[int], n: int) -> np.ndarray:
    """n points of the unit cube from a seeded stream."""
    return np.random.default_rng(seed).uniform(0, 1, (n, 3))


_STREAM = {"filter": 1, "random": 2, "ranker": 3, "oracle": 4, "train": 5}


def stream(task: Task, kind: str, n: int) -> np.ndarray:
    return actions([_STREAM[kind], TEMPLATES.index(task.template), task.seed], n)


def make_task(template: str, index: int) -> Task:
    """The index-th seed of `template` whose task doing nothing fails and some action solves."""
    if template not in TEMPLATES:
        raise ConfigError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    if index < 0:
        raise ConfigError(f"task index must be >= 0, got {index}")
    accepted, seed = -1, 0
    while True:
        task = _candidate(template, seed, accepted + 1)
        if task is not None:
            accepted += 1
            if accepted == index:
                return task
        seed += 1
        if seed > 100 * (index + 10):
            raise ConfigError(f"template {template}: too few solvable seeds")


_CACHE: dict = {}


def _candidate(template: str, seed: int, index: int) -> Task | None:
    key = (template, seed)
    if key not in _CACHE:
        rng = np.random.default_rng([TEMPLATES.index(template), seed])
        bars, green, target = _draw(template, rng)
        task = Task(template, -1, seed, tuple(tuple(map(float, b)) for b in bars),
                    tuple(map(float, green)), (target[0], *map(float, target[1:])))
        ok = not run(task).solved and any(run(task, a).solved for a in stream(task, "filter", FILTER_TRIES))
        _CACHE[key] = task if ok else None
    t = _CACHE[key]
    return None if t is None else Task(t.template, index, t.seed, t.bars, t.green, t.target)


def tasks(template: str, n: int, first: int = 0) -> list[Task]:
    """Tasks first .. first + n - 1 of the template (made in one pass over its seeds)."""
    out, accepted, seed = [], -1, 0
    while len(out) < n:
        t = _candidate(template, seed, accepted + 1)
        if t is not None:
            accepted += 1
            if accepted >= first:
                out.append(t)
        seed += 1
        if seed > 100 * (first + n + 10):
            raise ConfigError(f"template {template}: too few solvable seeds")
    return out


# ---- scoring ----------------------------------------------------------------------------------

def auccess(solved_at: list[int | None], attempts: int = ATTEMPTS) -> float:
    """PHYRE's AUCCESS from each task's first successful attempt (1-based; None: unsolved)."""
    if not solved_at:
        raise ConfigError("AUCCESS needs at least one task")
    ks = np.arange(1, attempts + 1)
    w = np.log(ks + 1) - np.log(ks)
    first = np.array([a if a is not None else attempts + 1 for a in solved_at])
    s = np.array([(first <= k).mean() for k in ks])
    return float((w * s).sum() / w.sum())


def attempts_until_solved(task: Task, candidates: np.ndarray, attempts: int = ATTEMPTS) -> int | None:
    """Try the candidates in order, skipping invalid ones; the 1-based attempt that solves it."""
    k = 0
    for a in candidates:
        out = simulate(task, a)
        if not out.valid:
            continue
        k += 1
        if out.solved:
            return k
        if k >= attempts:
            return None
    return None


def valid_actions(task: Task, candidates: np.ndarray) -> np.ndarray:
    space = _space(task)
    keep = []
    pymunk = require_pymunk()
    for a in candidates:
        x, y, r = to_world(a)
        ok = r + 0.05 < x < W - r - 0.05 and r + 0.05 < y < H - r - 0.05
        if ok:
            probe = pymunk.Circle(pymunk.Body(1.0, 1.0), r)
            probe.body.position = (x, y)
            ok = not space.shape_query(probe)
        keep.append(ok)
    return candidates[np.array(keep, bool)] if len(candidates) else candidates


def random_agent(task: Task, attempts: int = ATTEMPTS) -> int | None:
    return attempts_until_solved(task, stream(task, "random", 20 * attempts), attempts)


def oracle_agent(task: Task, budget: int = ORACLE_BUDGET, attempts: int = ATTEMPTS) -> int | None:
    """Simulate up to `budget` valid candidates; submit a successful one first if any was found
    (so it solves at attempt 1), else the task counts as unsolved within `attempts`."""
    cands = valid_actions(task, stream(task, "oracle", 4 * budget))[:budget]
    return 1 if any(simulate(task, a).solved for a in cands) else None


def features(task: Task, acts: np.ndarray) -> np.ndarray:
    """(n, d): what the ranker sees of a task and each action, the same for every template."""
    gx, gy, gr = task.green
    kind, *t = task.target
    if kind == "bar":
        tx, ty, tsize, tball = (t[0] + t[2]) / 2, (t[1] + t[3]) / 2, abs(t[2] - t[0]) / 2, 0.0
    else:
        tx, ty, tsize, tball = t[0], t[1], t[2], 1.0
    side = 1.0 if tx >= gx else -1.0
    bars = sorted(task.bars, key=lambda b: -(b[1] + b[3]))[:MAX_BARS]
    flat = np.zeros(4 * MAX_BARS)
    for i, b in enumerate(bars):  # bars relative to the green ball, mirrored towards the target
        flat[4 * i:4 * i + 4] = (side * (b[0] - gx), b[1] - gy, side * (b[2] - gx), b[3] - gy)
    task_part = np.concatenate([[gx, gy, gr, side * (tx - gx), ty - gy, tsize, tball, len(bars)], flat])
    rows = []
    for a in acts:
        x, y, r = to_world(a)
        dx, dy = side * (x - gx), y - gy
        gap = math.hypot(x - gx, y - gy) - r - gr
        rows.append([x, y, r, dx, dy, gap, abs(dx) - r - gr, dx / (abs(dy) + 1e-3),
                     side * (x - tx), y - ty])
    return np.hstack([np.repeat(task_part[None], len(acts), 0), np.array(rows)]) if rows else \
        np.zeros((0, len(task_part) + 10))


@dataclass
class Ranker:
    model: object
    examples: int
    positive_share: float
    info: dict = field(default_factory=dict)

    def order(self, task: Task, candidates: np.ndarray) -> np.ndarray:
        p = self.model.predict_proba(features(task, candidates))[:, 1]
        return candidates[np.argsort(-p, kind="stable")]


def fit_ranker(train: list[Task], per_task: int = 100, trees: int = 300, seed: int = 0) -> Ranker:
    """Gradient-boosted trees on (task, action) -> solved, from `per_task` simulated valid random
    actions of each training task."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    if not train:
        raise ConfigError("the ranker needs training tasks")
    xs, ys = [], []
    for task in train:
        acts = valid_actions(task, stream(task, "train", 4 * per_task))[:per_task]
        xs.append(features(task, acts))
        ys += [simulate(task, a).solved for a in acts]
    x, y = np.vstack(xs), np.array(ys)
    if y.all() or not y.any():
        raise ConfigError("the ranker's training actions have only one outcome")
    model = HistGradientBoostingClassifier(max_iter=trees, learning_rate=0.05, early_stopping=False,
                                           random_state=seed)
    with threadpool_limits(1):
        model.fit(x, y)
    return Ranker(model, len(y), float(y.mean()))


def ranker_agent(ranker: Ranker, task: Task, pool: int = 1000, attempts: int = ATTEMPTS) -> int | None:
    cands = valid_actions(task, stream(task, "ranker", 4 * pool))[:pool]
    return attempts_until_solved(task, ranker.order(task, cands), attempts)


def evaluate(train_per_template: int = 20, test_per_template: int = 10, per_task: int = 100,
             pool: int = 1000, oracle_budget: int = ORACLE_BUDGET, trees: int = 300,
             seed: int = 0, templates: tuple[str, ...] = TEMPLATES) -> dict:
    """AUCCESS of random, ranker and oracle in the within-template and cross-template splits.
    Training tasks are each template's first `train_per_template`; test tasks the next ones."""
    if train_per_template < 1 or test_per_template < 1 or per_task < 1 or pool < 1:
        raise ConfigError("task counts, per-task actions and the pool must be >= 1")
    train = {t: tasks(t, train_per_template) for t in templates}
    test = {t: tasks(t, test_per_template, first=train_per_template) for t in templates}
    every = [x for t in templates for x in test[t]]
    rnd = {x.name: random_agent(x) for x in every}
    orc = {x.name: oracle_agent(x, oracle_budget) for x in every}
    out: dict = {"templates": list(templates), "train_per_template": train_per_template,
                 "test_per_template": test_per_template, "per_task": per_task, "pool": pool,
                 "oracle_budget": oracle_budget}
    within = fit_ranker([x for t in templates for x in train[t]], per_task, trees, seed)
    rk = {x.name: ranker_agent(within, x, pool) for x in every}
    out["within"] = {"random": auccess(list(rnd.values())), "ranker": auccess(list(rk.values())),
                     "oracle": auccess(list(orc.values())),
                     "ranker_train_positive_share": within.positive_share,
                     "per_template": {t: {"random": auccess([rnd[x.name] for x in test[t]]),
                                          "ranker": auccess([rk[x.name] for x in test[t]]),
                                          "oracle": auccess([orc[x.name] for x in test[t]])}
                                      for t in templates}}
    if len(templates) > 1:
        folds = {}
        for held in templates:
            r = fit_ranker([x for t in templates if t != held for x in train[t]], per_task, trees, seed)
            folds[held] = {"random": auccess([rnd[x.name] for x in test[held]]),
                           "ranker": auccess([ranker_agent(r, x, pool) for x in test[held]]),
                           "oracle": auccess([orc[x.name] for x in test[held]])}
        out["cross"] = {k: float(np.mean([f[k] for f in folds.values()]))
                        for k in ("random", "ranker", "oracle")}
        out["cross"]["per_template"] = folds
    return out
