"""The one table of classic compressors (imo.baselines): every row round-trips, names resolve."""

import pytest

from imo.baselines import BY_LABEL, COMPRESSORS, conditional_bpb, get
from imo.errors import ConfigError

TEXT = b"So she was considering in her own mind (as well as she could, for the hot day made her feel sleepy). " * 30


@pytest.mark.parametrize("key", list(COMPRESSORS))
def test_each_compressor_round_trips(key):
    c = COMPRESSORS[key]
    if not c.available():
        pytest.skip(f"{c.program} is not installed")
    blob = c.compress(TEXT)
    assert c.decompress(blob) == TEXT and len(blob) < len(TEXT) // 2  # zpaq: ~1 KB of archive header


def test_names_and_labels_resolve():
    assert get("xz") is get("xz -9e") is BY_LABEL["xz -9e"]
    with pytest.raises(ConfigError, match="unknown compressor"):
        get("lz4")


def test_conditional_bits_are_smaller_with_the_prefix():
    half = len(TEXT) // 2
    assert conditional_bpb("xz", TEXT[:half], TEXT[half:]) < conditional_bpb("xz", b"", TEXT[half:])
