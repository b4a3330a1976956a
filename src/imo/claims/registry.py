"""Claims: the notes' opinions as registered experiments with a rule stated before they run.

A claim declares everything that decides its verdict up front: the opinion (in imo's words),
where in the notes it comes from, the experiment, the metric and the decision rule, and the
published figure it is compared with. Its `measure` function runs the experiment once for a
budget and a seed and returns figures; the verdict is computed from those figures by the rule,
never written by hand.

    @register
    def my_claim() -> Claim:
        return Claim(id="my-claim", statement=..., source=..., experiment=..., anchor=None,
                     rule=Rule(metric="gap_bpb", op=">", threshold=0.0, noise=0.05, effect=0.0,
                               meaning="the wide model is better by more than noise"),
                     measure=measure, plot=plot)
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from imo.registry import Registry

BUDGETS = ("smoke", "quick", "full")
Budget = Literal["smoke", "quick", "full"]
SEEDS = {"smoke": 1, "quick": 1, "full": 3}  # full: >= 3 seeds, mean and 95% interval decide


@dataclass(frozen=True)
class Rule:
    """A decision rule stated before the run. The target is `threshold + effect` on the claim's
    side (`threshold - effect` for op "<"): supported if the whole band around the estimate lies
    beyond the target, refuted if the whole band lies short of it, inconclusive otherwise.

    full (>= 3 seeds): the band is the 95% t interval of the mean;
    smoke/quick (one seed, a preview): the band is estimate +- noise.
    """

    metric: str  # the key figure returned by measure()
    op: Literal[">", "<"]
    threshold: float
    noise: float  # the pre-stated one-seed noise band (half-width) of previews
    meaning: str  # what "supported" means, in words
    effect: float = 0.0  # the smallest effect beyond the threshold that matters

    def __post_init__(self) -> None:
        # decide() reads any op other than ">" as "<": a typo like ">=" would flip the verdict
        if self.op not in (">", "<"):
            raise ValueError(f"rule op {self.op!r} must be '>' or '<'")
        if not self.noise >= 0:  # also refuses NaN
            raise ValueError(f"rule noise {self.noise!r} must be >= 0")
        if not self.effect >= 0:
            raise ValueError(f"rule effect {self.effect!r} must be >= 0")

    @property
    def target(self) -> float:
        return self.threshold + self.effect if self.op == ">" else self.threshold - self.effect

    @property
    def falsifier(self) -> str:
        """The outcome that refutes the claim, in words."""
        short = "below" if self.op == ">" else "above"
        return (f"refuted if the whole band of {self.metric} lies {short} {self.target:g} "
                f"(three or more seeds: the 95% interval of the mean)")

    def describe(self) -> str:
        effect = ""
        if self.effect:
            effect = f" (threshold {self.threshold:g} {'+' if self.op == '>' else '-'} the smallest effect that matters {self.effect:g})"
        return (f"supported if {self.metric} {self.op} {self.target:g}{effect} holds for the whole band: "
                f"three or more seeds, the 95% t interval of the mean; a one-seed preview, the value "
                f"+- the noise band {self.noise:g}; {self.falsifier}; otherwise inconclusive. "
                f"Supported means: {self.meaning}")


# measure(budget, seed, ctx) -> figures (must include rule.metric); ctx gives access to the store
Measure = Callable[[str, int, "Context"], dict[str, Any]]
# plot(per_seed_figures, path) writes a PNG
Plot = Callable[[list[dict[str, Any]], Any], None]


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str  # the opinion in one sentence, imo's own words
    source: str  # where in the notes it comes from
    experiment: str  # what is run
    rule: Rule
    measure: Measure
    anchor: str | None = None  # the published figure it is compared with, with its source
    plot: Plot | None = None
    version: int = 1  # bump when the experiment changes, so stored seed results are not reused
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Context:
    """What a running claim may use: the run store (to reuse identical runs) and a progress
    callback; `quiet` silences nested training output."""

    store: Any
    quiet: bool = True
    log: Callable[[str], None] = lambda msg: None
    # the claim's code fingerprint (imo.claims.provenance): stored with each seed, and for
    # train_or_reuse(..., code_fingerprint=) so a run trained by other code is not reused
    code_fingerprint: str | None = None


CLAIMS: Registry[Claim] = Registry("claim")


def register(factory: Callable[[], Claim]) -> Callable[[], Claim]:
    """Register the claim a factory returns (a decorator). Duplicate ids raise."""
    claim = factory()
    if not isinstance(claim.rule, Rule):
        raise TypeError(f"claim {claim.id!r} must declare its Rule before it runs")
    CLAIMS.register(claim.id)(claim)
    return factory
