"""Verified properties: mathematical certainties that tests decide, not claims that evidence votes
on. The report lists them with the tests that back them (run by `make test` and CI).

    for p in PROPERTIES: p.name, p.statement, p.tests
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Property:
    name: str
    statement: str
    tests: tuple[str, ...]  # pytest node ids, relative to the repository root


PROPERTIES: tuple[Property, ...] = (
    Property(
        "positions break attention's symmetry",
        "Without position information, causal attention is permutation-equivariant over the "
        "prefix (x.y = y.x): a shuffle changes nothing but float rounding; with each encoding "
        "(learned, sinusoidal, RoPE, ALiBi) the output depends on order.",
        ("tests/model/test_gpt.py::test_no_positions_is_permutation_invariant_over_the_prefix",
         "tests/model/test_gpt.py::test_attention_without_positions_is_permutation_equivariant",
         "tests/model/test_gpt.py::test_positions_break_symmetry"),
    ),
    Property(
        "tiled attention is exact, in linear memory",
        "Tiling with an online softmax gives the same attention as the naive T x T form (forward "
        "and gradients, float64 gradcheck) and never allocates a T x T tensor.",
        ("tests/model/test_tiled.py::test_forward_matches_reference",
         "tests/model/test_tiled.py::test_gradients_match_reference",
         "tests/model/test_tiled.py::test_gradcheck_float64",
         "tests/model/test_tiled.py::test_no_T_by_T_tensor_in_forward_or_backward"),
    ),
)
