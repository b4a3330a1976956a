"""One validated generation config for every decoding path (CLI, Python API, server).

Options that do not go together are refused at construction with one line saying why, in the
spirit of Hugging Face's GenerationConfig warnings, but as errors: a sampling knob on greedy
decoding, n > 1 identical greedy answers, more answers than beams.

    cfg = GenerationConfig(strategy="sample", temperature=0.8, top_p=0.9, seed=0, n=4)
"""

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from imo.errors import ConfigError

STRATEGIES = ("greedy", "sample", "beam")
ON_FULL = ("slide", "error")
MAX_N = 64  # rows of one request (n samples or beams)
MAX_STOPS = 4  # as OpenAI's API


@dataclass(frozen=True)
class GenerationConfig:
    strategy: str = "sample"  # greedy | sample | beam
    max_tokens: int = 128  # tokens (bytes) to generate at most
    temperature: float = 1.0  # sample only; > 0
    top_k: int | None = None  # sample only: keep the k most likely tokens
    top_p: float = 1.0  # sample only: keep the smallest set with this much probability (nucleus)
    seed: int | None = None  # sample only: the same seed gives the same text
    n: int = 1  # answers: samples from one prefill, or the best n beams
    beam_width: int = 4  # beam only
    length_penalty: float = 1.0  # beam only: a finished beam scores sum(log p) / length ** this
    stop: tuple[str | bytes, ...] = field(default_factory=tuple)  # generation ends after any of these
    on_full: str = "slide"  # when the context is full: slide the window, or refuse up front

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if self.on_full not in ON_FULL:
            raise ConfigError(f"unknown on_full {self.on_full!r}; choose one of: {', '.join(ON_FULL)}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 0:
            raise ConfigError(f"max_tokens must be an integer >= 0, got {self.max_tokens!r}")
        if not 1 <= self.n <= MAX_N:
            raise ConfigError(f"n must be between 1 and {MAX_N}, got {self.n}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature} (for temperature 0 use strategy greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 1 <= self.beam_width <= MAX_N:
            raise ConfigError(f"beam_width must be between 1 and {MAX_N}, got {self.beam_width}")
        if isinstance(self.stop, str | bytes) or not all(isinstance(s, str | bytes) and s for s in self.stop):
            raise ConfigError("stop must be a list of non-empty strings (or bytes)")
        if len(self.stop) > MAX_STOPS:
            raise ConfigError(f"at most {MAX_STOPS} stop strings, got {len(self.stop)}")
        sampling = {k: getattr(self, k) for k in ("temperature", "top_k", "top_p", "seed")
                    if getattr(self, k) != DEFAULTS[k]}
        if self.strategy != "sample" and sampling:
            raise ConfigError(f"{', '.join(sampling)} only apply to strategy sample, not {self.strategy}")
        if self.strategy != "beam":
            beam = [k for k in ("beam_width", "length_penalty") if getattr(self, k) != DEFAULTS[k]]
            if beam:
                raise ConfigError(f"{', '.join(beam)} only apply to strategy beam, not {self.strategy}")
        if self.strategy == "greedy" and self.n > 1:
            raise ConfigError("n > 1 with greedy decoding gives n identical answers; use strategy sample or beam")
        if self.strategy == "beam" and self.n > self.beam_width:
            raise ConfigError(f"n={self.n} answers need at least as many beams (beam_width={self.beam_width})")

    def replace(self, **changes: Any) -> "GenerationConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The field defaults, read from the dataclass itself (building a config would validate it).
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(GenerationConfig) if f.default is not MISSING}
