"""Round trips, the container's checks and the decoder's refusals (imo.zip)."""

import io
import struct

import numpy as np
import pytest

from imo.errors import ImoError
from imo.zip import container as C
from imo.zip.codec import compress_bytes, compress_stream, decompress_bytes, segments
from imo.zip.settings import ZipSettings

TEXT = (b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
        b"nothing to do: once or twice she had peeped into the book her sister was reading. ") * 12
FAST = ZipSettings.build(level=1, predictor="stats", streams=16)


def roundtrip(data: bytes, s: ZipSettings = FAST) -> bytes:
    blob = compress_bytes(data, s)
    assert decompress_bytes(blob) == data
    return blob


@pytest.mark.parametrize("data", [
    b"", b"x", b"\x00" * 3000, bytes(range(256)) * 6, "Grüße, naïve café — ½ €".encode("latin-1", "replace") * 40,
    struct.pack("<100d", *np.linspace(-3, 7, 100)) + b"\xff\xfe\x00\x01" * 50,
], ids=["empty", "one-byte", "zeros", "all-bytes", "non-utf8", "binary"])
def test_round_trip(data):
    roundtrip(data)


@pytest.mark.parametrize("predictor", ["stats", "net", "mix"])
def test_each_predictor_round_trips_and_compresses_text(predictor):
    blob = roundtrip(TEXT, ZipSettings.build(level=1, predictor=predictor, streams=16))
    f = io.BytesIO(blob)
    assert C.read_header(f)["settings"]["predictor"] == predictor
    body = len(blob) - f.tell()
    # repetitive text: the statistics get far below 8 bits/byte; the network alone learns
    # slowly from 2 KB but must still beat 8
    assert 8 * body / len(TEXT) < (7.0 if predictor == "net" else 4.0)


def test_random_bytes_expand_by_at_most_header_and_one_percent():
    data = np.random.default_rng(0).integers(0, 256, 16384, dtype=np.uint8).tobytes()
    blob = roundtrip(data, ZipSettings.build(level=1, predictor="stats", streams=64))
    f = io.BytesIO(blob)
    C.read_header(f)
    frames_and_trailer = 8 + 48
    assert len(blob) - f.tell() <= 1.01 * len(data) + frames_and_trailer


def test_blocks_and_stored_blocks():
    """Several blocks (bounded memory) in one file; an incompressible block is stored raw and the
    model still learns from it on both sides."""
    rng = np.random.default_rng(1)
    data = TEXT[:1400] + rng.integers(0, 256, 700, dtype=np.uint8).tobytes() + TEXT[:1500]
    s = ZipSettings.build(level=1, predictor="stats", streams=4, block_size=700)
    stats = compress_stream(io.BytesIO(data), out := io.BytesIO(), s)
    assert stats.blocks == -(-len(data) // 700) and stats.stored_blocks >= 1
    assert decompress_bytes(out.getvalue()) == data


def test_deterministic():
    assert compress_bytes(TEXT, FAST) == compress_bytes(TEXT, FAST)


def test_segments_cover_the_block_once():
    for n in (1, 7, 8, 9, 100, 1001):
        length, used = segments(n, 8)
        assert (used - 1) * length < n <= used * length and used <= 8


@pytest.fixture(scope="module")
def blob():
    return compress_bytes(TEXT[:600], FAST)


def refuses(data: bytes, match: str | None = None) -> None:
    with pytest.raises(C.ZipFormatError, match=match):
        decompress_bytes(data)


def test_foreign_and_truncated_input(blob):
    refuses(b"PK\x03\x04 not ours", "signature")
    refuses(b"", "signature")
    for cut in (5, 12, len(blob) // 2, len(blob) - 40, len(blob) - 1):
        refuses(blob[:cut])
    refuses(blob + b"x", "after the trailer")


def test_corrupt_payload_fails_the_checksum(blob):
    f = io.BytesIO(blob)
    C.read_header(f)
    bad = bytearray(blob)
    bad[f.tell() + 8 + 2] ^= 0x55  # the first coder word (its last bits may be slack; these are not)
    refuses(bytes(bad))


def _with_header(blob: bytes, edit) -> bytes:
    f = io.BytesIO(blob)
    header = C.read_header(f)
    edit(header)
    out = io.BytesIO()
    C.write_header(out, header)
    return out.getvalue() + f.read()


def test_fingerprint_mismatch_is_refused(blob):
    refuses(_with_header(blob, lambda h: h.update(fingerprint="0" * 16)), "fingerprint")


def test_bad_settings_and_version_are_refused(blob):
    from imo.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown zip settings"):
        decompress_bytes(_with_header(blob, lambda h: h["settings"].update(warp=9)))
    with pytest.raises(ConfigError, match="streams"):
        decompress_bytes(_with_header(blob, lambda h: h["settings"].update(streams=0)))
    refuses(blob[:4] + bytes([9]) + blob[5:], "version 9")
    refuses(_with_header(blob, lambda h: h.update(mode="pretrained")), "mode")


def test_decoder_fuzz_never_hangs_or_returns_wrong_bytes(blob):
    """Random edits of a valid file: the decoder either returns the original (an edit it does not
    read, none here) or raises ZipFormatError; it stops at the block lengths, so it cannot hang."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(1, 255)), min_size=1, max_size=4),
           st.integers(0, len(blob)))
    def check(edits, cut):
        bad = bytearray(blob)
        for pos, x in edits:
            bad[pos] ^= x
        for candidate in (bytes(bad), bytes(bad[:cut])):
            try:
                out = decompress_bytes(candidate)
            except C.ZipFormatError:
                continue
            except ImoError:  # an edited header can name impossible settings: also one line, exit 2
                continue
            assert out == TEXT[:600]

    check()


@pytest.mark.slow
def test_five_texts_round_trip_with_the_defaults(shared_data):
    """An 8 KB slice from the middle of each benchmark text, default settings (the mix)."""
    for name in ("alice29.txt", "asyoulik.txt", "lcet10.txt", "plrabn12.txt", "tinyshakespeare.txt"):
        data = (shared_data / name).read_bytes()
        piece = data[len(data) // 2: len(data) // 2 + 8192]
        blob = roundtrip(piece, ZipSettings.build())
        assert len(blob) < len(piece) * 0.5, name


def test_every_mid_stream_flip_is_refused_cleanly(blob):
    """Issue 12: single-byte flips inside the coder words (not only the header) used to reach the
    range decoder's AssertionError. Flips of every third payload byte (two masks, alternating)
    must give the original or ZipFormatError, nothing else."""
    f = io.BytesIO(blob)
    C.read_header(f)
    start, end = f.tell() + 8, len(blob) - 48  # first coder word .. the end marker
    assert end - start >= 16
    outcomes = {"refused": 0, "same": 0}
    for pos in range(start, end, 3):
        for mask in ((0xEC, 0x01)[pos % 2],):
            bad = bytearray(blob)
            bad[pos] ^= mask
            try:
                out = decompress_bytes(bytes(bad))
            except C.ZipFormatError:
                outcomes["refused"] += 1
                continue
            assert out == TEXT[:600]  # a flip in slack bits of the last word
            outcomes["same"] += 1
    assert outcomes["refused"] > outcomes["same"]


def test_decoder_assertion_becomes_a_format_error(blob, monkeypatch):
    """Whatever the entropy decoder raises when words and frequencies disagree (corruption, or a
    machine whose predictions differ) surfaces as ZipFormatError."""
    import constriction

    class Broken:
        def __init__(self, words):
            pass

        def decode(self, family, freq):
            raise AssertionError("Tried to decode from compressed data that is invalid")

    monkeypatch.setattr(constriction.stream.queue, "RangeDecoder", Broken)
    refuses(blob, "range decoder failed")
