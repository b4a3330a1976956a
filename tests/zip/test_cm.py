"""The integer cm predictor (imo.zip.cm): round trips, compiled == interpreted, the golden files,
and decoding in other processes with PyTorch's and MKL's kernels pinned (identical bytes)."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imo.errors import ConfigError
from imo.zip import cm
from imo.zip import container as C
from imo.zip.codec import compress_bytes, decompress_bytes
from imo.zip.settings import ZipSettings

CM = ZipSettings.build(level=1, predictor="cm")
TEXT = (b"The Mock Turtle sighed deeply, and drew the back of one flapper across his eyes. He looked at "
        b"Alice, and tried to speak, but for a minute or two sobs choked his voice. ") * 10
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "zip"


@pytest.mark.parametrize("data", [
    b"", b"x", b"\x00" * 5000, bytes(range(256)) * 4, "Grüße — ½ €".encode("utf-16"),
    np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
], ids=["empty", "one-byte", "zeros", "all-bytes", "non-utf8", "random"])
def test_round_trip(data):
    blob = compress_bytes(data, CM)
    assert decompress_bytes(blob) == data
    assert len(blob) <= len(data) + 200  # random input is stored, never expanded by more than framing


def test_compresses_text_and_blocks_continue_the_model():
    one = compress_bytes(TEXT, CM)
    assert 8 * len(one) / len(TEXT) < 2.0
    blocks = ZipSettings.build(level=1, predictor="cm", block_size=512)
    many = compress_bytes(TEXT, blocks)
    assert decompress_bytes(many) == TEXT
    # the model carries over between blocks: framing costs bytes, relearning would cost far more
    assert len(many) < len(one) + 8 * (len(TEXT) // 512 + 1) + 40


@pytest.mark.parametrize("model", [*cm.MODELS.values(), cm.ONE_LAYER], ids=[*cm.MODELS, "one-layer"])
def test_compiled_and_interpreted_give_the_same_bytes(model):
    """The kernel is integer code: numba's machine code and the Python interpreter agree."""
    pytest.importorskip("numba")
    data = TEXT[:700]
    compiled = cm.encode(cm.State.new(12, model), data)
    slow = cm.encode(cm.State.new(12, model), data, interpreted=True)
    assert compiled == slow
    assert cm.decode(cm.State.new(12, model), compiled, len(data), interpreted=True) == data


def test_levels_name_their_model_and_older_files_mean_full():
    """Level 1 is the fast model, 2 and 3 the full one; the header always names it, and a header
    from before the levels (no cm_model) is the full model, as it was written."""
    sizes = {}
    for level, model in [(1, "fast"), (2, "full")]:
        blob = compress_bytes(TEXT, ZipSettings.build(level=level, predictor="cm"))
        header = C.read_header(io.BytesIO(blob))
        assert header["settings"]["cm_model"] == model
        assert decompress_bytes(blob) == TEXT
        sizes[model] = len(blob)
    assert sizes["full"] < sizes["fast"]  # the full model's extra contexts and mixer pay off
    old = ZipSettings.from_header({"level": 1, "predictor": "cm"})
    assert old.cm_model == "full" and ZipSettings.build(level=1, predictor="cm").cm_model == "fast"
    with pytest.raises(ConfigError, match="cm_model must be one of full, fast, max"):
        ZipSettings.from_header({"level": 1, "predictor": "cm", "cm_model": "huge"})
    with pytest.raises(ConfigError, match="cm predictor only"):
        ZipSettings.build(level=1, predictor="stats", cm_model="fast")


def test_version_1_and_unknown_versions():
    blob = compress_bytes(TEXT, CM)
    assert blob[4] == C.FORMAT_VERSION == 2
    with pytest.raises(C.ZipFormatError, match="version 3 is not supported; this imo reads versions 1, 2"):
        decompress_bytes(blob[:4] + b"\x03" + blob[5:])


def golden_files():
    return sorted(GOLDEN.glob("v*/*.imz"))


@pytest.mark.parametrize("packed", golden_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_files_decode(packed):
    """Files made by earlier versions (tests/data/zip/vN, each original beside NAME.imz). cm files
    must decode everywhere; a float-predictor file may only be refused by its fingerprint (made
    on another machine's kernels), in one line."""
    original = packed.with_suffix("").read_bytes()
    with open(packed, "rb") as f:
        header = C.read_header(f)
    if header["settings"]["predictor"] == "cm":
        assert decompress_bytes(packed.read_bytes()) == original
        return
    try:
        assert decompress_bytes(packed.read_bytes()) == original
    except C.ZipFormatError as e:
        assert "fingerprint" in str(e)


def test_golden_files_exist_for_each_version():
    assert {p.parent.name for p in golden_files()} >= {"v1", "v2"}


def _imo(args, env_extra=None, data=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "imo", *args], env=env, input=data, capture_output=True,
                          timeout=300)


def test_subprocess_round_trip(tmp_path):
    """zip in one process, unzip in another (no state shared but the file)."""
    src = tmp_path / "t.txt"
    src.write_bytes(TEXT)
    assert _imo(["zip", str(src), "-q"]).returncode == 0
    src.rename(tmp_path / "orig.txt")
    done = _imo(["unzip", str(tmp_path / "t.txt.imz"), "-q"])
    assert done.returncode == 0, done.stderr
    assert src.read_bytes() == TEXT


def _capabilities() -> list[dict[str, str]]:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    pins = [{"ATEN_CPU_CAPABILITY": "default"}, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}]
    if " avx2" in flags:
        pins.append({"ATEN_CPU_CAPABILITY": "avx2"})
    if " avx512f" in flags:
        pins.append({"ATEN_CPU_CAPABILITY": "avx512"})
    return pins


@pytest.mark.slow
def test_decoding_with_pinned_kernels_gives_identical_bytes(tmp_path, shared_data):
    """Issue 16: a file made with the default kernels decodes to the same bytes with PyTorch's
    kernels pinned to each CPU capability and MKL's to AVX2 (the cm predictor at each level).
    The float predictors may refuse such a machine, but only in one line with exit 2."""
    data = (shared_data / "alice29.txt").read_bytes()[:20000]
    src = tmp_path / "a.txt"
    src.write_bytes(data)
    assert _imo(["zip", str(src), "-q"]).returncode == 0
    assert _imo(["zip", str(src), "-q", "--predictor", "mix", "--level", "1", "-o", str(tmp_path / "m.imz")]).returncode == 0
    for level in (1, 3):  # the fast and max models too
        assert _imo(["zip", str(src), "-q", "--level", str(level), "-o", str(tmp_path / f"l{level}.imz")]).returncode == 0
    decode_levels = ("import sys; from pathlib import Path; from imo.zip.codec import decompress_bytes; "
                     "sys.stdout.buffer.write(b''.join(decompress_bytes(Path(a).read_bytes()) for a in sys.argv[1:]))")
    for pin in _capabilities():
        done = _imo(["unzip", str(tmp_path / "a.txt.imz"), "-o", "-"], pin)
        assert done.returncode == 0 and done.stdout == data, (pin, done.stderr)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **pin}
        done = subprocess.run([sys.executable, "-c", decode_levels, str(tmp_path / "l1.imz"), str(tmp_path / "l3.imz")],
                              env=env, capture_output=True, timeout=300)
        assert done.returncode == 0 and done.stdout == data + data, (pin, done.stderr)
        done = _imo(["unzip", str(tmp_path / "m.imz"), "-o", "-"], pin)
        assert (done.returncode == 0 and done.stdout == data) or (
            done.returncode == 2 and done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr), (pin, done.stderr)


def test_corrupt_and_truncated_cm_files_are_refused():
    """The binary arithmetic decoder cannot fail, so a flipped payload byte decodes to other bytes:
    the trailer's SHA-256 must refuse every one of them (unless it returns the original: a flip
    in the final flush's slack bits), and every truncation."""
    blob = compress_bytes(TEXT[:800], CM)
    f = io.BytesIO(blob)
    C.read_header(f)
    start, end = f.tell() + 8, len(blob) - 48
    for pos in [*range(start, end - 8, 3), *range(end - 8, end)]:
        bad = bytearray(blob)
        bad[pos] ^= 0xEC if pos % 2 else 0x01
        try:
            assert decompress_bytes(bytes(bad)) == TEXT[:800] and pos >= end - 4
        except C.ZipFormatError:
            pass
    for cut in range(0, len(blob), 11):
        with pytest.raises(C.ZipFormatError):
            decompress_bytes(blob[:cut])


@pytest.mark.parametrize("level", [1, 2, 3])
def test_cm_decoder_fuzz_refuses_in_one_error_or_returns_the_original(level):
    """Random edits and cuts of a cm file at each level (small tables): the decoder returns the
    original or raises one of imo's one-line errors, never anything else."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from imo.errors import ImoError

    data = TEXT[:500]
    blob = compress_bytes(data, ZipSettings.build(level=level, predictor="cm", table_bits=12))

    @settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(1, 255)), min_size=1, max_size=4),
           st.integers(0, len(blob)))
    def check(edits, cut):
        bad = bytearray(blob)
        for pos, x in edits:
            bad[pos] ^= x
        for candidate in (bytes(bad), bytes(bad[:cut])):
            try:
                assert decompress_bytes(candidate) == data
            except ImoError:  # ZipFormatError, or ConfigError for an edited header's settings
                pass

    check()
