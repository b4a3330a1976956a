"""Fake claims with synthetic figures, for the claims tests.

    claim = fake_claim("wide-wins", [0.3, 0.2, 0.4])   # seed s measures gap = values[s]
"""

from collections.abc import Callable, Sequence
from pathlib import Path

from imo.claims.registry import Claim, Rule


def line_plot(figures: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=60)
    ax.plot([f["gap"] for f in figures], "o-")
    ax.set_xlabel("seed")
    fig.savefig(path)
    plt.close(fig)


def fake_claim(
    cid: str,
    values: Sequence[float],
    op: str = ">",
    threshold: float = 0.0,
    margin: float = 0.05,
    plot: bool = True,
    calls: list | None = None,
    fail_at: Callable[[int], BaseException | None] | None = None,
    version: int = 1,
    statement: str | None = None,
) -> Claim:
    """A claim whose seed s measures gap = values[s]; `calls` records (budget, seed) per call and
    `fail_at(seed)` may return an exception to raise instead."""

    def measure(budget: str, seed: int, ctx) -> dict:
        if calls is not None:
            calls.append((budget, seed))
        if fail_at is not None and (e := fail_at(seed)) is not None:
            raise e
        ctx.log(f"measuring {cid} seed {seed}")
        return {"gap": values[seed % len(values)], "width": 64 * (seed + 1), "_runs": [f"run-{cid}-{seed}"]}

    return Claim(
        id=cid,
        statement=statement or f"the fake claim {cid} holds",
        source="tests",
        experiment="synthetic figures",
        rule=Rule(metric="gap", op=op, threshold=threshold, noise=margin, meaning="the gap is real"),
        measure=measure,
        anchor="none, it is a test",
        plot=line_plot if plot else None,
        version=version,
    )
