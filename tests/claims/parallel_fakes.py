"""Fake claims that can travel to worker processes: their measure is a module-level function
(an instance of a module-level class), so pickle sends it by name; claim_fakes' closures cannot go to a
spawned process. Everything a fake does is in its arguments, not in the environment, so workers
started before a test behave as the test says.

    add(noisy_claim("fan-a", shift=0.3, log=tmp_path / "seeds.log"))   # with fake_registry
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imo.claims.registry import Claim, Rule


@dataclass(frozen=True)
class NoisyMeasure:
    """A seeded computation: the figures depend only on the seed, never on the process. Each
    measurement appends "claim seed pid" to `log`; a seed in `stop_seeds` meets a Ctrl-C."""

    cid: str
    shift: float
    fail_seed: int | None = None
    stop_seeds: tuple[int, ...] = ()
    log: str | None = None

    def __call__(self, budget: str, seed: int, ctx) -> dict:
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as f:  # one short line: appends stay whole
                f.write(f"{self.cid} {seed} {os.getpid()}\n")
        if seed in self.stop_seeds:
            raise KeyboardInterrupt
        if seed == self.fail_seed:
            raise ValueError(f"seed {seed} has no corpus")
        x = np.random.default_rng(seed).normal(size=1000)
        return {"gap": float(x.mean()) + self.shift, "spread": float(x.std()), "_pid": os.getpid()}


def noisy_claim(cid: str, shift: float, fail_seed: int | None = None, stop_seeds: tuple[int, ...] = (),
                log: Path | None = None, tags: tuple[str, ...] = ()) -> Claim:  # fmt: skip
    # an instance's __module__ is its class's: the code fingerprint hashes this module's file
    measure = NoisyMeasure(cid, shift, fail_seed, stop_seeds, None if log is None else str(log))
    return Claim(
        id=cid,
        statement=f"the fake claim {cid} holds",
        source="tests",
        experiment="the mean of 1000 seeded normal draws, shifted",
        rule=Rule(metric="gap", op=">", threshold=0.0, noise=0.05, meaning="the shift is real"),
        measure=measure,
        tags=tags,
    )
