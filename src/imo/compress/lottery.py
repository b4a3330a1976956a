"""Lottery tickets: iterative magnitude pruning with rewinding, mask criteria and ablations.

Frankle & Carbin 2019 ("The lottery ticket hypothesis"): train a dense network, remove p% of the
surviving weights of each layer (the output layer at half the rate), rewind the survivors to
their values at step k (k = 0: the original initialisation) and retrain; repeat. The network
found this way (the "winning ticket") trains to the dense accuracy with a fraction of the
weights, where the same mask with freshly drawn weights (random re-initialisation) or a random
mask of the same per-layer sparsity (random pruning) does worse.

Zhou et al. 2019 ("Deconstructing lottery tickets") compare mask criteria, scores computed from
the weights at the rewind point w_i and after training w_f (higher is kept): large_final |w_f|,
magnitude_increase |w_f| - |w_i|, large_init_large_final min(|w_i|, |w_f|) (large at both
ends), movement |w_f - w_i|, and random.

The network is an MLP (LeNet-300-100's shape, 64-300-100-10 on 8x8 digits) trained with Adam;
everything is seeded, so a run repeats exactly.

    rounds = iterative_pruning(load("digits"), LotterySetup(rounds=8), seed=0)
    rounds[-1]["fraction_left"], rounds[-1]["acc_ticket"], rounds[-1]["acc_reinit"]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.compress.prune import get_mask, keep_masks, masks_from_scores, select, set_mask
from imo.data.vision import Images
from imo.errors import ConfigError
from imo.registry import Registry


class MLP(nn.Module):
    """Fully connected ReLU network; `input_shape` lets data-free pruners (SynFlow) feed it."""

    def __init__(self, sizes: tuple[int, ...] = (64, 300, 100, 10)) -> None:
        super().__init__()
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ConfigError(f"MLP sizes must be >= 2 positive widths, got {sizes}")
        self.sizes = tuple(sizes)
        self.input_shape = (sizes[0],)
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)])

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


@dataclass(frozen=True)
class LotterySetup:
    sizes: tuple[int, ...] = (64, 300, 100, 10)
    rate: float = 0.2  # fraction of the surviving weights removed per round (output layer: half)
    rounds: int = 8  # 0.8^8 = 16.8% of the weights left
    rewind_step: int = 0  # k: rewind to the weights after k optimizer steps (0 = initialisation)
    epochs: int = 10
    batch: int = 60
    lr: float = 1.2e-3  # Frankle & Carbin's Adam rate for LeNet-300-100

    def __post_init__(self) -> None:
        if not 0 < self.rate < 1:
            raise ConfigError(f"pruning rate must be in (0, 1), got {self.rate}")
        for name in ("rounds", "epochs", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rewind_step < 0:
            raise ConfigError(f"rewind_step must be >= 0, got {self.rewind_step}")


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).float().mean())


def weights(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_mlp(model: MLP, data: Images, setup: LotterySetup, seed: int,
              capture_step: int | None = None) -> tuple[float, dict[str, Tensor] | None]:
    """Train with Adam (masks re-applied after every step); returns the test accuracy and the
    weights after `capture_step` steps (the rewind point; step 0 = before training)."""
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=setup.lr)
    hook = keep_masks(opt, model)
    gen = torch.Generator().manual_seed(seed)
    captured = weights(model) if capture_step == 0 else None
    step = 0
    model.train()
    for _ in range(setup.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), setup.batch):
            idx = order[i:i + setup.batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step == capture_step:
                captured = weights(model)
    hook.remove()
    model.eval()
    if capture_step is not None and captured is None:
        raise ConfigError(f"rewind step {capture_step} is beyond the {step} training steps")
    return accuracy(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)), captured


# --- mask criteria (Zhou et al. 2019) ------------------------------------------------------------

CRITERIA: Registry = Registry("mask criterion")  # fn(w_init, w_final, gen) -> scores
CRITERIA.register("large_final")(lambda wi, wf, gen: wf.abs())
CRITERIA.register("magnitude_increase")(lambda wi, wf, gen: wf.abs() - wi.abs())
CRITERIA.register("large_init_large_final")(lambda wi, wf, gen: torch.minimum(wi.abs(), wf.abs()))
CRITERIA.register("movement")(lambda wi, wf, gen: (wf - wi).abs())
CRITERIA.register("random")(lambda wi, wf, gen: torch.rand(wf.shape, generator=gen))


def layer_rates(model: MLP, rate: float) -> dict[str, float]:
    """Per-round pruning rate of each layer: `rate`, the output layer half of it (Frankle & Carbin)."""
    names = list(select(model))
    return {n: rate / 2 if n == names[-1] else rate for n in names}


def fraction_left(model: nn.Module) -> float:
    mods = select(model)
    return sum(int(get_mask(m).sum()) for m in mods.values()) / sum(m.weight.numel() for m in mods.values())


def prune_round(model: MLP, w_ref: dict[str, Tensor], criterion: str, rate: float, gen: torch.Generator) -> None:
    """Remove `rate` of each layer's surviving weights (output layer rate/2) by `criterion`,
    comparing the trained weights in `model` with the reference weights w_ref."""
    crit = CRITERIA.get(criterion)
    mods = select(model)
    old = {n: get_mask(m) for n, m in mods.items()}
    scores = {n: crit(w_ref[f"{n}.weight"], m.weight.detach(), gen) for n, m in mods.items()}
    sparsity = {n: 1.0 - (1.0 - r) * float(old[n].float().mean()) for n, r in layer_rates(model, rate).items()}
    masks = masks_from_scores(scores, old, sparsity, "layer")
    for n, m in mods.items():
        set_mask(m, masks[n])


def rewind_(model: MLP, w: dict[str, Tensor]) -> None:
    """Set every parameter to `w` and re-apply the masks (surviving weights get their step-k values)."""
    masks = {n: get_mask(m) for n, m in select(model).items()}
    model.load_state_dict(w)
    for n, m in select(model).items():
        set_mask(m, masks[n])


def branch_reinit(model: MLP, seed: int) -> MLP:
    """The same masks on freshly drawn weights (the random re-initialisation ablation)."""
    torch.manual_seed(seed)
    fresh = MLP(model.sizes)
    for n, m in select(fresh).items():
        set_mask(m, get_mask(select(model)[n]))
    return fresh


def branch_random_prune(model: MLP, w_rewind: dict[str, Tensor], gen: torch.Generator) -> MLP:
    """A random mask with the same number of weights per layer, on the rewound weights."""
    other = MLP(model.sizes)
    other.load_state_dict(w_rewind)
    for n, m in select(other).items():
        kept = int(get_mask(select(model)[n]).sum())
        score = torch.rand(m.weight.shape, generator=gen)
        mask = masks_from_scores({n: score}, {n: torch.ones_like(score, dtype=torch.bool)},
                                 {n: 1.0 - kept / score.numel()}, "layer")[n]
        set_mask(m, mask)
    return other


def iterative_pruning(data: Images, setup: LotterySetup, seed: int, criterion: str = "large_final",
                      branches: bool = True, log=lambda msg: None) -> list[dict]:
    """Rounds of train -> prune -> rewind -> retrain. Round 0 is the dense network. Each round
    records the fraction of weights left and the test accuracy of the ticket and (branches=True)
    of the random re-initialisation and random pruning at the same sparsity."""
    CRITERIA.get(criterion)
    torch.manual_seed(seed)
    model = MLP(setup.sizes)
    acc, w_k = train_mlp(model, data, setup, seed, capture_step=setup.rewind_step)
    rounds = [{"round": 0, "fraction_left": 1.0, "acc_ticket": acc, "acc_reinit": acc, "acc_random": acc}]
    gen = torch.Generator().manual_seed(10_000 + seed)
    for r in range(1, setup.rounds + 1):
        prune_round(model, w_k, criterion, setup.rate, gen)
        rewind_(model, w_k)
        acc, _ = train_mlp(model, data, setup, seed)
        row = {"round": r, "fraction_left": fraction_left(model), "acc_ticket": acc}
        if branches:
            row["acc_reinit"], _ = train_mlp(branch_reinit(model, 20_000 + seed), data, setup, seed)
            row["acc_random"], _ = train_mlp(branch_random_prune(model, w_k, gen), data, setup, seed)
        log(f"round {r}: {row['fraction_left']:.3f} of weights, ticket {acc:.3f}")
        rounds.append(row)
    return rounds


def criterion_accuracy(data: Images, setup: LotterySetup, seed: int, criterion: str, fraction: float) -> float:
    """One-shot variant for ranking criteria: train dense, keep `fraction` of each layer's weights
    (output layer: the same compression at half the pruned share) by the criterion, rewind,
    retrain; the test accuracy."""
    torch.manual_seed(seed)
    model = MLP(setup.sizes)
    _, w_k = train_mlp(model, data, setup, seed, capture_step=setup.rewind_step)
    gen = torch.Generator().manual_seed(30_000 + seed)
    prune_round(model, w_k, criterion, 1.0 - fraction, gen)
    rewind_(model, w_k)
    acc, _ = train_mlp(model, data, setup, seed)
    return acc


def collapsed(model: MLP) -> tuple[bool, float]:
    """(some layer is wholly pruned or no input reaches the output, number of input -> output paths
    left). Paths = 1^T M_L ... M_1 1 over the masks, in float64 (Tanaka et al.'s layer collapse)."""
    masks = [get_mask(m).double() for m in select(model).values()]
    v = torch.ones(masks[0].shape[1], dtype=torch.float64)
    for m in masks:
        v = m @ v
    paths = float(v.sum())
    return any(not bool(m.any()) for m in masks) or paths == 0.0, paths
