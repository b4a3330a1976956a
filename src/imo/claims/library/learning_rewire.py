"""The rewired-tickets claim (issue 19; imo.learn.rewire): the notes' crazy idea, "pick random
top-weight neurons, take input from (important & far away) neurons' output; repeat winning
lottery?". A learned skip from the most important units of the first hidden layer into the
strongest units of the last one, made during training, then lottery-ticket rewinding; against
the plain lottery ticket keeping exactly as many weights. Its own module, so its fingerprint
covers no other claim's code.

    imo check rewired-tickets --quick
"""

from __future__ import annotations

from typing import Any

from imo.claims.plotting import plt, save_figure
from imo.claims.registry import Claim, Context, Rule, register

SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(rounds=1, epochs=1, rewire_step=5),
    "quick": dict(),  # RewireSetup's defaults: 64-300-300-100-10, 10 epochs, 12 rounds of 20%
    "full": dict(),
}


def measure_rewired(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    from imo.data.vision import load_digits
    from imo.learn.rewire import RewireSetup, rewired_tickets

    ctx.log(f"rewired tickets ({budget}, seed {seed})")
    rec = rewired_tickets(load_digits(seed), RewireSetup(**SIZES[budget]), seed=seed)
    last = rec["rounds"][-1]
    return {**rec, "fraction_left": last["fraction_left"], "acc_plain": last["acc_plain"],
            "acc_rewired": last["acc_rewired"], "ticket_gain_points": float(rec["gain_points"])}


def plot_rewired(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    for f in per_seed:
        xs = [100 * r["fraction_left"] for r in f["rounds"]]
        first = f is per_seed[0]
        ax.plot(xs, [100 * r["acc_plain"] for r in f["rounds"]], "o-", color="C0", alpha=0.7, ms=3,
                label="plain ticket" if first else None)
        ax.plot(xs, [100 * r["acc_rewired"] for r in f["rounds"]], "s-", color="C1", alpha=0.7, ms=3,
                label="rewired ticket" if first else None)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights left, % of the plain network (equal for both)")
    ax.set_ylabel("test accuracy %")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("8x8 digits, 64-300-300-100-10, rewind to initialisation", fontsize=10)
    save_figure(fig, path)


@register
def rewired_tickets() -> Claim:
    return Claim(
        id="rewired-tickets",
        statement="Rewiring the strongest units to read important, far-away units, then looking for a winning "
                  "lottery ticket in the rewired network, gives a better ticket than the plain network does.",
        source="notes: \"pick random top-weight neurons, take input from (important & far away) neurons' output; "
               "repeat winning lottery?\" (issue 19)",
        experiment="MLP 64-300-300-100-10 on scikit-learn's 8x8 digits (a seeded 1,348/449 split), Adam 1.2e-3, "
                   "batch 60, 10 epochs per training. Rewired arm: after 45 steps the 20 last-hidden units with the "
                   "largest incoming weights get a learned skip (zero-initialised) from the 30 first-hidden units "
                   "of highest mean activation x outgoing weight norm. Both arms from the same initial weights; "
                   "then 12 rounds of global magnitude pruning (20% per round), rewinding to the initialisation "
                   "and retraining, every round keeping exactly the same number of weights in both arms (6.9% of "
                   "the plain network at the end). Metric: rewired minus plain test accuracy at the last round, points.",
        anchor="Frankle & Carbin 2019 (\"The lottery ticket hypothesis\"): LeNet-300-100 tickets match the dense "
               "network's accuracy down to about 3.6% of the weights on MNIST",
        rule=Rule(metric="ticket_gain_points", op=">", threshold=0.0, noise=1.5,
                  meaning="the rewired ticket is more accurate than the plain ticket with the same number of weights"),
        measure=measure_rewired, plot=plot_rewired, tags=("learning", "sparsity"))
