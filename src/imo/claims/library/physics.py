"""Claims about learned physics on the pymunk exam (imo.physics, issue 21).

* `physics-needs-structure`: an interaction network has objects, pairwise relations and local
  contacts built in. A transformer over the same state vectors (one token per ball and per wall
  segment) has to learn all of that. The claim is that the structure wins at equal parameters
  and equal training FLOPs. The transformer's width is the multiple of 4 whose parameter count is
  nearest the IN's. Its step count gives it the IN's training FLOPs, as torch's FlopCounterMode
  counts a training step of each. The metric is the transformer's mean position error at +1 s
  over the IN's, both rolled out from 0.5 s of context on held-out scenes.
* `experience-subset`: "in the physical world, AI will just be like us, only experience a subset
  of reality". An IN trained on scenes whose masses and frictions lie in a narrow range is
  tested on scenes outside it (heavier balls, rougher surfaces). The control is an IN of the same
  size and budget trained on the wide range, which has experienced those scenes. The metric is
  the narrow model's +1 s error outside its range over the wide model's error there. The plain
  ratio of the narrow model's error outside to inside is reported beside it.

    imo check physics-needs-structure --quick
    imo check experience-subset --quick
"""

from dataclasses import replace
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402

HORIZONS = (0.25, 0.5, 1.0, 2.0)
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(train=4, test=3, steps=10, hidden=16),
    "quick": dict(train=150, test=60, steps=800, hidden=48),
    "full": dict(train=400, test=150, steps=2000, hidden=64),
}
# experience-subset's ranges: masses (kg, each ball uniform in the range) and friction (per scene)
NARROW = dict(mass=(0.5, 1.0), friction=(0.2, 0.5))
WIDE = dict(mass=(0.5, 3.0), friction=(0.2, 1.2))
OUTSIDE = dict(mass=(2.0, 3.0), friction=(0.9, 1.2))


def scenes(first_seed: int, n: int, mass=None, friction=None) -> list:
    """n scenes of 3.5 s from consecutive seeds; with ranges, each scene's masses and friction
    are drawn from them (the friction from the scene's seed)."""
    from imo.physics.scenes import SceneConfig, generate

    base = SceneConfig(seconds=3.5)
    out = []
    for seed in range(first_seed, first_seed + n):
        cfg = base
        if mass is not None:
            fr = float(np.random.default_rng([seed, 7]).uniform(*friction))
            cfg = replace(base, mass_min=mass[0], mass_max=mass[1], friction=fr)
        out.append(generate(seed, cfg))
    return out


def _fit(train, model: str, hidden: int, steps: int, seed: int, layers: int = 2):
    from imo.physics import learned

    return learned.fit(train, learned.ForecastConfig(model=model, hidden=hidden, layers=layers,
                                                     steps=steps, seed=seed))


def matched_transformer_width(hidden: int, params: int, balls: int = 3) -> int:
    """The transformer width (a multiple of 4, for 4 heads) whose parameter count is nearest."""
    from imo.physics import learned

    def count(w):
        net = learned.build(learned.ForecastConfig(model="transformer", hidden=w), balls)
        return sum(p.numel() for p in net.parameters())

    return min(range(8, 4 * hidden + 1, 4), key=lambda w: abs(count(w) - params))


def measure_structure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.physics import learned

    torch.set_num_threads(1)
    s = SIZES[budget]
    train = scenes(1_000_000 + 10_000 * seed, s["train"])
    test = scenes(2_000_000 + 10_000 * seed, s["test"])
    net_in = _fit(train, "in", s["hidden"], s["steps"], seed)
    width = matched_transformer_width(s["hidden"], net_in.parameters)
    probe = learned.build(learned.ForecastConfig(model="transformer", hidden=width), 3)
    flops_in = learned.step_flops(net_in, test, net_in.config.batch)
    flops_tr = learned.step_flops(probe, test, net_in.config.batch)
    steps_tr = max(1, round(s["steps"] * flops_in / flops_tr))
    ctx.log(f"IN: {net_in.parameters} parameters, {flops_in:.3g} FLOPs a step; transformer "
            f"width {width}, {steps_tr} steps")
    net_tr = _fit(train, "transformer", width, steps_tr, seed)
    e_in, e_tr = learned.forecast_errors(net_in, test), learned.forecast_errors(net_tr, test)
    ctx.log(f"+1 s error: IN {e_in[1.0]:.2f}, transformer {e_tr[1.0]:.2f} radii")
    return {
        "error_ratio_1s": e_tr[1.0] / e_in[1.0],
        "in_errors": [e_in[h] for h in HORIZONS], "transformer_errors": [e_tr[h] for h in HORIZONS],
        "horizons_s": list(HORIZONS),
        "in_parameters": net_in.parameters, "transformer_parameters": net_tr.parameters,
        "transformer_width": width, "in_steps": s["steps"], "transformer_steps": steps_tr,
        "in_train_flops": flops_in * s["steps"], "transformer_train_flops": flops_tr * steps_tr,
        "in_seconds": net_in.seconds, "transformer_seconds": net_tr.seconds,
        "train_scenes": s["train"], "test_scenes": s["test"], "_runs": [],
    }


def measure_subset(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.physics import learned

    torch.set_num_threads(1)
    s = SIZES[budget]
    base = 3_000_000 + 10_000 * seed
    narrow_train = scenes(base, s["train"], **NARROW)
    wide_train = scenes(base, s["train"], **WIDE)
    inside = scenes(base + 5000, s["test"], **NARROW)
    outside = scenes(base + 7000, s["test"], **OUTSIDE)
    narrow = _fit(narrow_train, "in", s["hidden"], s["steps"], seed)
    wide = _fit(wide_train, "in", s["hidden"], s["steps"], seed)
    err = {f"{m}_{t}": learned.forecast_errors(model, sc)
           for m, model in (("narrow", narrow), ("wide", wide))
           for t, sc in (("inside", inside), ("outside", outside))}
    ctx.log("+1 s error: " + ", ".join(f"{k} {v[1.0]:.2f}" for k, v in err.items()))
    return {
        "outside_ratio": err["narrow_outside"][1.0] / err["wide_outside"][1.0],
        "narrow_outside_over_inside": err["narrow_outside"][1.0] / err["narrow_inside"][1.0],
        "inside_ratio": err["narrow_inside"][1.0] / err["wide_inside"][1.0],
        **{f"{k}_errors": [v[h] for h in HORIZONS] for k, v in err.items()},
        "horizons_s": list(HORIZONS), "parameters": narrow.parameters, "steps": s["steps"],
        "ranges": {"narrow": NARROW, "wide": WIDE, "outside": OUTSIDE},
        "train_scenes": s["train"], "test_scenes": s["test"], "_runs": [],
    }


def _plot(per_seed: list[dict[str, Any]], path, series: dict[str, str], title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    for i, (key, label) in enumerate(series.items()):
        for j, f in enumerate(per_seed):
            ax.plot(f["horizons_s"], f[key], "o-", color=f"C{i}", alpha=0.8,
                    label=label if j == 0 else None)
    ax.set_xlabel("forecast horizon (s) after 0.5 s of context")
    ax.set_ylabel("mean position error (ball radii)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_structure(per_seed, path) -> None:
    _plot(per_seed, path, {"in_errors": "interaction network",
                           "transformer_errors": "transformer (equal parameters and FLOPs)"},
          "held-out scenes, one line per seed")


def plot_subset(per_seed, path) -> None:
    _plot(per_seed, path, {"narrow_outside_errors": "narrow-range IN, outside its range",
                           "wide_outside_errors": "wide-range IN, same scenes",
                           "narrow_inside_errors": "narrow-range IN, inside its range"},
          "masses and frictions: experienced or not")


@register
def physics_needs_structure() -> Claim:
    return Claim(
        id="physics-needs-structure",
        statement="A model with objects and relations built in (an interaction network) forecasts "
                  "a bouncing-ball world better than a transformer over the same state vectors, "
                  "at equal parameters and equal training FLOPs.",
        source="source-notes: the components of physical intelligence (object movement "
               "prediction, vision to internal world modelling)",
        experiment="pymunk scenes: 3 balls in a 10 m box with a ramp (imo.physics.scenes). Both "
                   "models learn the one-frame correction to a free-flight step from the frame "
                   "pairs of 4/150/400 training scenes (smoke/quick/full) and are rolled out from "
                   "0.5 s of context on 3/60/150 held-out scenes. The IN has width 16/48/64 and "
                   "10/800/2000 steps of 128 frames; the transformer (2 layers, 4 heads, a token "
                   "per ball and per wall) has the nearest parameter count and the step count that "
                   "equals the IN's training FLOPs.",
        rule=Rule(metric="error_ratio_1s", op=">", threshold=1.0, effect=0.1, noise=0.3,
                  meaning="the transformer's mean position error at +1 s is more than 1.1 times "
                          "the interaction network's"),
        measure=measure_structure,
        plot=plot_structure,
        anchor="Battaglia et al. 2016 (arXiv:1612.00222): interaction networks predict n-body, "
               "bouncing-ball and string dynamics far better than MLP baselines given the same "
               "inputs",
        tags=("physics", "agents"),
    )


@register
def experience_subset() -> Claim:
    return Claim(
        id="experience-subset",
        statement="A physics model that has experienced only a subset of reality (a narrow range "
                  "of masses and frictions) forecasts worse outside it than a model that has "
                  "experienced that part too.",
        source="source-notes: in the physical world, AI will just be like us, only experience a "
               "subset of reality",
        experiment="Two interaction networks of the same width and budget (16/48/64 wide, "
                   "10/800/2000 steps; smoke/quick/full) learn from 4/150/400 pymunk scenes: one "
                   "with masses in [0.5, 1] kg and friction in [0.2, 0.5], one with masses in "
                   "[0.5, 3] kg and friction in [0.2, 1.2]. Both see the mass and the friction as "
                   "inputs. Both are scored at +1 s after 0.5 s of context on 3/60/150 scenes "
                   "outside the narrow range (masses in [2, 3] kg, friction in [0.9, 1.2]) and on "
                   "as many inside it.",
        rule=Rule(metric="outside_ratio", op=">", threshold=1.0, effect=0.25, noise=0.3,
                  meaning="outside the narrow range, the narrow model's +1 s error is more than "
                          "1.25 times the error of the model that was trained there"),
        measure=measure_subset,
        plot=plot_subset,
        anchor=None,
        tags=("physics", "agents"),
    )
