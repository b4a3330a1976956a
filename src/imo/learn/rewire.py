"""Rewiring, as in the notes' crazy idea: "pick random top-weight neurons, take input from
(important & far away) neurons' output; repeat winning lottery?".

The network is the lottery-ticket MLP of imo.compress.lottery made one layer deeper,
64-300-300-100-10 on the 8x8 digits. During training, at step `rewire_step`, the `targets` units
of the last hidden layer with the largest incoming weights (L2 norm of their row) start to take
input from the `sources` most important units of the first hidden layer, two layers below: a
learned skip (a masked nn.Linear, its weights starting at zero), importance being a unit's mean
activation on the training digits times the norm of its outgoing weights. Training goes on with
the skip. Then lottery-ticket rewinding (Frankle & Carbin 2019, as imo.compress.lottery; here
with one global magnitude ranking, so both arms can keep exactly the same number of weights):
keep the largest surviving weights, rewind them to their values at step `rewind_step`, retrain,
repeat. The plain ticket is the same procedure without the skip; at every round both tickets
keep exactly the same number of weights (the plain network's count times the fraction left).

    rec = rewired_tickets(load_digits(0), RewireSetup(), seed=0)
    rec["rounds"][-1]["acc_plain"], rec["rounds"][-1]["acc_rewired"]
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.compress.lottery import MLP, accuracy, weights
from imo.compress.prune import get_mask, keep_masks, masks_from_scores, select, set_mask
from imo.errors import ConfigError


@dataclass(frozen=True)
class RewireSetup:
    sizes: tuple[int, ...] = (64, 300, 300, 100, 10)
    targets: int = 20  # units of the last hidden layer that get the skip
    sources: int = 30  # units of the first hidden layer they read
    rewire_step: int = 45  # when the skip is made (2 of the 10 epochs at batch 60 on 1,348 digits)
    rewind_step: int = 0  # the lottery rewind point (0: the initialisation)
    rate: float = 0.2  # share of the surviving weights removed per round
    rounds: int = 12  # 0.8^12 = 6.9% of the plain network's weights left
    epochs: int = 10
    batch: int = 60
    lr: float = 1.2e-3

    def __post_init__(self) -> None:
        if len(self.sizes) < 4:
            raise ConfigError(f"rewiring needs at least two hidden layers between input and output, got {self.sizes}")
        if not 1 <= self.targets <= self.sizes[-2] or not 1 <= self.sources <= self.sizes[1]:
            raise ConfigError(f"--targets must be in 1..{self.sizes[-2]} and --sources in 1..{self.sizes[1]}")
        if not 0 < self.rate < 1:
            raise ConfigError(f"--rate must be in (0, 1), got {self.rate}")
        for name in ("rounds", "epochs", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.rewire_step < 0 or self.rewind_step < 0:
            raise ConfigError("--rewire-step and --rewind-step must be >= 0")


class RewiredMLP(MLP):
    """The MLP plus `skip`, a masked linear map from the first hidden layer's output into the last
    hidden layer's pre-activation; its mask is empty (no connection) until `rewire_` fills it."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__(sizes)
        layers = self.layers  # registered after the skip, so the output layer stays the last module
        del self.layers
        self.skip = nn.Linear(sizes[1], sizes[-2], bias=False)
        nn.init.zeros_(self.skip.weight)
        self.layers = layers
        set_mask(self.skip, torch.zeros_like(self.skip.weight, dtype=torch.bool))

    def hidden(self, x: Tensor) -> list[Tensor]:
        """The post-ReLU output of every hidden layer."""
        hs: list[Tensor] = []
        for i, layer in enumerate(self.layers[:-1]):
            z = layer(x)
            if i == len(self.layers) - 2:
                z = z + self.skip(hs[0])
            x = F.relu(z)
            hs.append(x)
        return hs

    def forward(self, x: Tensor) -> Tensor:
        return self.layers[-1](self.hidden(x)[-1])


@torch.no_grad()
def rewire_(model: RewiredMLP, x: Tensor, targets: int, sources: int) -> tuple[list[int], list[int]]:
    """Connect the `targets` last-hidden units with the largest incoming weights to the `sources`
    most important first-hidden units (mean activation on x times outgoing weight norm)."""
    last_in = model.layers[-2].weight  # (n_last, n_prev)
    target_units = last_in.norm(dim=1).argsort(descending=True)[:targets]
    h0 = model.hidden(x)[0]
    importance = h0.mean(0) * model.layers[1].weight.norm(dim=0)
    source_units = importance.argsort(descending=True)[:sources]
    mask = torch.zeros_like(model.skip.weight, dtype=torch.bool)
    mask[target_units[:, None], source_units[None, :]] = True
    set_mask(model.skip, mask)
    return sorted(target_units.tolist()), sorted(source_units.tolist())


def train(model: MLP, data, setup: RewireSetup, seed: int, capture_step: int | None = None,
          rewire_at: int | None = None) -> tuple[float, dict[str, Tensor] | None, dict]:
    """Adam with the masks re-applied after every step, seeded batch order; optionally capture the
    weights after `capture_step` steps and rewire (a RewiredMLP) after `rewire_at` steps (the
    optimiser then starts on the skip with fresh moments). Returns the test accuracy, the captured
    weights and what was rewired."""
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=setup.lr)
    hook = keep_masks(opt, model)
    gen = torch.Generator().manual_seed(seed)
    captured = weights(model) if capture_step == 0 else None
    wired: dict = {}
    step = 0
    model.train()
    for _ in range(setup.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), setup.batch):
            if rewire_at is not None and step == rewire_at:
                t, s = rewire_(model, x, setup.targets, setup.sources)
                wired = {"step": step, "targets": t, "sources": s}
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
    if rewire_at is not None and not wired:
        raise ConfigError(f"rewire step {rewire_at} is beyond the {step} training steps")
    return accuracy(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)), captured, wired


def nonzeros(model: nn.Module) -> int:
    return sum(int(get_mask(m).sum()) for m in select(model).values())


def prune_to_(model: nn.Module, keep: int) -> None:
    """Keep exactly `keep` weights, the largest |w| over every layer together (pruned ones stay pruned)."""
    mods = select(model)
    total = sum(m.weight.numel() for m in mods.values())
    old = {n: get_mask(m) for n, m in mods.items()}
    scores = {n: m.weight.detach().abs() for n, m in mods.items()}
    masks = masks_from_scores(scores, old, (total - keep) / total, "global")
    for n, m in mods.items():
        set_mask(m, masks[n])


def rewind_(model: nn.Module, w: dict[str, Tensor]) -> None:
    masks = {n: get_mask(m) for n, m in select(model).items()}
    model.load_state_dict(w)
    for n, m in select(model).items():
        set_mask(m, masks[n])


def rewired_tickets(data, setup: RewireSetup, seed: int = 0, log=None) -> dict:
    """Both arms: dense training (the rewired one rewires at setup.rewire_step), then
    setup.rounds of prune -> rewind -> retrain at equal weight counts."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    arms: dict[str, dict] = {}
    for arm in ("plain", "rewired"):
        torch.manual_seed(seed)  # the same initial weights for the shared layers
        model = MLP(setup.sizes) if arm == "plain" else RewiredMLP(setup.sizes)
        acc, w_k, wired = train(model, data, setup, seed, capture_step=setup.rewind_step,
                                rewire_at=setup.rewire_step if arm == "rewired" else None)
        arms[arm] = {"model": model, "w_k": w_k, "dense_acc": acc, "wired": wired}
    base = sum(m.weight.numel() for m in select(arms["plain"]["model"]).values())
    rounds = [{"round": 0, "weights": base, "fraction_left": 1.0, "acc_plain": arms["plain"]["dense_acc"],
               "acc_rewired": arms["rewired"]["dense_acc"], "skip_weights": nonzeros(arms["rewired"]["model"].skip)}]
    for r in range(1, setup.rounds + 1):
        keep = round(base * (1 - setup.rate) ** r)
        row = {"round": r, "weights": keep, "fraction_left": keep / base}
        for arm in ("plain", "rewired"):
            a = arms[arm]
            prune_to_(a["model"], keep)
            rewind_(a["model"], a["w_k"])
            acc, _, _ = train(a["model"], data, setup, seed)
            row[f"acc_{arm}"] = acc
        row["skip_weights"] = int(get_mask(arms["rewired"]["model"].skip).sum())
        if log:
            log(f"round {r}: {keep:,} weights ({100 * keep / base:.1f}%): plain {100 * row['acc_plain']:.1f}%, "
                f"rewired {100 * row['acc_rewired']:.1f}% ({row['skip_weights']} skip weights kept)")
        rounds.append(row)
    return {"setup": asdict(setup), "seed": seed, "wired": arms["rewired"]["wired"], "rounds": rounds,
            "gain_points": 100 * (rounds[-1]["acc_rewired"] - rounds[-1]["acc_plain"]),
            "seconds": time.perf_counter() - t0}
