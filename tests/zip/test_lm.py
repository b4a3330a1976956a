"""Pretrained mode through the engine's KV cache (imo.zip.lm): round trips with a tiny byte run and
a tiny BPE import, cached probabilities equal to the full forward's, and clean refusals (another
model, a missing model, a foreign machine, corrupt input)."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from imo.runs.store import RunStore
from imo.train.config import RunConfig
from imo.train.trainer import train_or_reuse
from imo.zip import container as C
from imo.zip.lm import (
    LM,
    LMSettings,
    compress_lm,
    decompress_lm,
    model_info,
    probabilities,
    run_block,
)

TEXT = b"the cat sat on the mat. the dog sat on the log. " * 6 + bytes(range(256)) + b"\xff\xfe caf\xc3\xa9"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def byte_run(seed: int = 0) -> str:
    cfg = RunConfig.build(preset=None, model=dict(n_layer=1, n_embd=32, n_head=4, context_length=32),
                          train=dict(corpus="python-docs", steps=3, batch_size=4, warmup=1, seed=seed))
    return train_or_reuse(cfg, store=RunStore.open(), quiet=True)


def zip_lm(data: bytes, info: dict, s: LMSettings) -> bytes:
    out = io.BytesIO()
    compress_lm(io.BytesIO(data), out, info, s)
    return out.getvalue()


def unzip_lm(blob: bytes, run: str | None = None) -> bytes:
    src, out = io.BytesIO(blob), io.BytesIO()
    decompress_lm(src, out, C.read_header(src), run=run)
    return out.getvalue()


def with_header(blob: bytes, change) -> bytes:
    """The same file with its header edited by `change(header)`."""
    src = io.BytesIO(blob)
    header = C.read_header(src)
    change(header)
    out = io.BytesIO()
    C.write_header(out, header)
    return out.getvalue() + src.read()


def run_cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imo", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC, **(env or {})}, timeout=300)


@pytest.fixture
def run_and_info():
    run = byte_run()
    return run, model_info(run)


def test_byte_run_round_trips_through_the_cache_with_slides_blocks_and_any_bytes(run_and_info):
    _, info = run_and_info
    for data in (TEXT, b"", b"x", bytes(np.random.default_rng(0).integers(0, 256, 700, dtype=np.uint8))):
        for s in (LMSettings(streams=4, window=8), LMSettings(streams=3, window=32, block_size=100)):
            blob = zip_lm(data, info, s)
            assert unzip_lm(blob) == data
    header = C.read_header(io.BytesIO(zip_lm(TEXT, info, LMSettings(streams=4))))
    assert header["mode"] == "lm" and header["portable"] is False and header["coding"] == "byte"
    assert header["model"]["sha256"] == info["sha256"] and header["model"]["model_bytes"] > 0
    assert header["env"]["capability"] == torch.backends.cpu.get_cpu_capability()


def test_cached_probabilities_equal_the_full_forward_ones(run_and_info):
    run, info = run_and_info
    lm = LM(info)
    data = TEXT[:100]
    segs = [lm.tokens(data[:50]), lm.tokens(data[50:])]
    seen = []

    def step(t, rows, probs):
        seen.append((t, list(rows), probs.copy()))
        return [segs[b][t] for b in rows]

    window = 32
    run_block(lm, [len(x) for x in segs], window, step)
    model = lm.engine.model
    ctx = {b: [lm.start] for b in range(2)}  # what each row's cache holds, the rule written out
    restarts = 0
    for t, rows, probs in seen:
        for i, b in enumerate(rows):
            with torch.no_grad():
                full = model(torch.tensor([ctx[b]]))[0][0, -1].float().numpy()
            np.testing.assert_allclose(probs[i], probabilities(full[None])[0], rtol=1e-5, atol=1e-7)
            held = len(ctx[b])
            ctx[b].append(segs[b][t])
            if held + 1 > window:  # full: the cache restarts from the last quarter
                ctx[b], restarts = ctx[b][-(window // 4):], restarts + 1
    assert len(seen) == 50 and restarts == 2


def test_bpe_import_codes_canonical_tokens_of_any_bytes(tmp_path):
    pytest.importorskip("gguf")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "importers"))
    from tiny_gguf import write_tiny_gguf

    from imo.importers.gguf import import_gguf

    run = import_gguf(write_tiny_gguf(tmp_path / "tiny.gguf"), name="tiny")
    info = model_info(run)
    assert info["tokenizer_sha256"]
    lm = LM(info)
    data = b"hello world, the return <|im_end|> of print\n" * 3 + b"\x80\xff\xc3 caf\xc3\xa9 12345"
    toks = lm.tokens(data)
    assert len(toks) < len(data) and b"".join(lm.pieces[t] for t in toks) == data
    blob = zip_lm(data, info, LMSettings(streams=2, window=16))
    assert C.read_header(io.BytesIO(blob))["coding"] == "canonical BPE tokens"
    assert unzip_lm(blob) == data


def test_bytes_without_a_token_are_escaped(tmp_path, monkeypatch):
    """A vocabulary without a token for some bytes (SmolLM2 has none for 0xff) still codes them."""
    pytest.importorskip("gguf")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "importers"))
    import tiny_gguf

    from imo.data.tokenizer import _byte_level_alphabet
    from imo.importers.gguf import import_gguf

    tokens, merges, types = tiny_gguf.vocab()
    gone = {c for c, b in _byte_level_alphabet().items() if b in (0x04, 0xFE, 0xFF)}
    keep = [i for i, t in enumerate(tokens) if t not in gone]
    monkeypatch.setattr(tiny_gguf, "vocab", lambda: ([tokens[i] for i in keep], merges, [types[i] for i in keep]))
    info = model_info(import_gguf(tiny_gguf.write_tiny_gguf(tmp_path / "t.gguf"), name="gaps"))
    lm = LM(info)
    assert lm.escapes == 3
    data = b"hello \xff\xfe world \x04 the\x04\xff" * 4  # 0x04: valid UTF-8 the tokenizer would drop
    assert unzip_lm(zip_lm(data, info, LMSettings(streams=2, window=16))) == data


def test_another_or_a_missing_model_is_refused_in_one_line(run_and_info, tmp_path):
    run, info = run_and_info
    other = byte_run(seed=1)
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    r = run_cli(["zip", str(src), "--mode", "pretrained", "--model", run, "--streams", "4", "-q"])
    assert r.returncode == 0, r.stderr
    packed = tmp_path / "a.txt.imz"
    r = run_cli(["unzip", str(packed), "-o", str(tmp_path / "b"), "--model", other, "-q"])
    assert r.returncode == 2 and "not the model" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = run_cli(["unzip", str(packed), "-o", str(tmp_path / "b"), "-q"], env={"IMO_STORE": str(tmp_path / "s.sqlite")})
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "b").exists()
    r = run_cli(["unzip", str(packed), "-o", str(tmp_path / "b"), "-q"])
    assert r.returncode == 0 and (tmp_path / "b").read_bytes() == TEXT


def test_a_foreign_machine_is_refused_cleanly(run_and_info, tmp_path):
    run, info = run_and_info
    blob = zip_lm(TEXT, info, LMSettings(streams=4))
    for key, value in (("cpu", "Another CPU"), ("capability", "NEON"), ("torch", "0.0.1")):
        with pytest.raises(C.ZipFormatError, match="not portable.*made"):
            unzip_lm(with_header(blob, lambda h, k=key, v=value: h["env"].update({k: v})))
    with pytest.raises(C.ZipFormatError, match="fingerprint mismatch"):
        unzip_lm(with_header(blob, lambda h: h.update(fingerprint="0" * 16)))
    packed = tmp_path / "a.imz"
    packed.write_bytes(blob)
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":  # pin torch's kernels to another capability
        r = run_cli(["unzip", str(packed), "-o", str(tmp_path / "a"), "-q"], env={"ATEN_CPU_CAPABILITY": "default"})
        assert r.returncode == 2 and "not portable" in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "a").exists()


def test_corrupt_or_truncated_input_is_a_clean_error(run_and_info):
    _, info = run_and_info
    blob = zip_lm(TEXT * 3, info, LMSettings(streams=4))
    src = io.BytesIO(blob)
    C.read_header(src)
    payload = src.tell() + 8  # the first block's payload, after its two u32 lengths
    for pos in (payload + 1, payload + 40, len(blob) - 80, len(blob) - 30):
        bad = bytearray(blob)
        bad[pos] ^= 0x5A
        with pytest.raises(C.ZipFormatError):
            unzip_lm(bytes(bad))
    for cut in (len(blob) - 10, len(blob) // 2, payload):
        with pytest.raises(C.ZipFormatError):
            unzip_lm(blob[:cut])
    with pytest.raises(C.ZipFormatError, match="settings"):
        unzip_lm(with_header(blob, lambda h: h["settings"].update(streams=0)))


def test_bench_row_and_cli_refusals(run_and_info, tmp_path, capsys):
    from imo.zip.bench import bench_files

    run, info = run_and_info
    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)
    (row,) = bench_files([src], predictors=(), baselines=(), model=info, lm_settings=LMSettings(streams=4))
    assert row.tool == "imo pretrained (KV cache)" and row.model_bytes == info["model_bytes"]
    assert row.original == len(TEXT) and row.flops_per_byte > 0
    from imo_cli import imo

    assert imo("zip", str(src), "--mode", "pretrained", "--model", run, "--level", "3") == 2
    assert "do not apply" in capsys.readouterr().err
    assert imo("zip", str(src), "--mode", "pretrained", "--model", run, "--streams", "0") == 2
    assert "--streams" in capsys.readouterr().err
    assert not (tmp_path / "a.txt.imz").exists()
    assert imo("zip", str(src), "--level", "1", "-q") == 0  # a cm file: --model does not apply to it
    assert imo("unzip", str(tmp_path / "a.txt.imz"), "-o", str(tmp_path / "b"), "--model", run) == 2
    assert "--model is for pretrained-mode files" in capsys.readouterr().err
