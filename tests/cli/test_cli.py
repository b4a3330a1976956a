"""The README's tour, end to end, and the bad-input contract: one line, exit code 2, no traceback,
nothing half-written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SMALL = ["--preset", "tiny", "--layers", "2", "--width", "32", "--context", "32", "--batch-size", "4"]


def imo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "imo", *args], capture_output=True, text=True,
                         env=os.environ.copy(), timeout=300)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def assert_user_error(res: subprocess.CompletedProcess, *fragments: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    first = res.stderr.strip().splitlines()[0]
    for f in fragments:
        assert f in res.stderr, (f, res.stderr)
    assert first.startswith(("imo: error:", "Usage:")), first


def test_tour_train_eval_sample_runs():
    out = imo("train", *SMALL, "--pos", "alibi", "--attn", "tiled", "--steps", "8", "--eval-every", "4").stdout
    assert "validation" in out
    ids = imo("runs", "--ids").stdout.split()
    assert len(ids) == 1
    rid = ids[0]
    ev = imo("eval", rid[:6]).stdout
    assert "bits/byte" in ev and float(ev.split()[0]) > 0
    longer = imo("eval", rid, "--context", "128").stdout  # alibi runs past its training length
    assert "context 128" in longer
    s1 = imo("sample", rid, "--prompt", "The ", "--tokens", "20", "--seed", "3").stdout
    s2 = imo("sample", rid, "--prompt", "The ", "--tokens", "20", "--seed", "3").stdout
    assert s1 == s2 and s1.startswith("The ")
    table = imo("runs").stdout
    assert rid in table and "finished" in table
    assert "val_bpb" in imo("runs", "show", rid).stdout
    assert "corpus" in imo("corpora").stdout


def test_config_file_and_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "tiny"\n[model]\nn_layer = 1\nn_embd = 32\nblock_size = 32\npos = "sinusoidal"\n'
                    "[train]\nsteps = 3\nbatch_size = 2\n")
    imo("train", "--config", str(toml), "--heads", "2", "--quiet")
    rid = imo("runs", "--ids").stdout.split()[0]
    show = imo("runs", "show", rid).stdout
    assert "sinusoidal" in show and "n_head" in show


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["train", "--corpus", "wikipedia"], ["unknown corpus 'wikipedia'", "python-docs"]),
        (["train", "--preset", "huge"], ["unknown preset 'huge'", "tiny, small, base"]),
        (["train", "--pos", "rotary"], ["unknown position encoding", "rope"]),
        (["train", "--attn", "flash"], ["unknown attention backend", "tiled"]),
        (["train", "--heads", "5"], ["does not divide"]),
        (["train", "--steps", "0"], ["steps must be a positive integer"]),
        (["train", "--minutes", "-1"], ["minutes must be > 0"]),
        (["train", "--steps", "5", "--minutes", "1"], ["either steps or minutes"]),
        (["train", "--corpus", "file:/nonexistent/x.txt"], ["does not exist"]),
        (["train", "--config", "/nonexistent.toml"], ["does not exist"]),
        (["train", "--resume", "abc"], ["no run matches"]),
        (["eval", "nope"], ["no run matches"]),
        (["sample", "nope"], ["no run matches"]),
        (["train", "--threads", "0"], ["threads must be >= 1"]),
    ],
)
def test_bad_input(args, fragments):
    res = imo(*args, check=False)
    assert_user_error(res, *fragments)
    assert imo("runs", "--ids").stdout.split() == []  # no run was recorded for bad input


def test_bad_input_about_a_run(tmp_path):
    imo("train", *SMALL, "--steps", "2", "--quiet")
    rid = imo("runs", "--ids").stdout.split()[0]
    assert_user_error(imo("eval", rid, "--context", "64", check=False), "longer than the learned position table")
    assert_user_error(imo("eval", rid, "--corpus", "nope", check=False), "unknown corpus")
    assert_user_error(imo("sample", rid, "--temperature", "-1", check=False), "temperature")
    assert_user_error(imo("train", "--resume", rid, "--pos", "rope", check=False), "--resume keeps", "--pos")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    assert_user_error(imo("train", "--config", str(bad), check=False), "not valid TOML")
    bad.write_text("[model]\nwidth = 3\n")
    assert_user_error(imo("train", "--config", str(bad), check=False), "unknown model field", "n_embd")
    from imo.runs.store import RunStore

    run_dir = RunStore.open().run_dir(rid)
    ckpt = next(run_dir.glob("ckpt-*")) / "model.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert_user_error(imo("eval", rid, check=False), "corrupt")
    assert_user_error(imo("sample", rid, check=False), "corrupt")
    assert not list(Path(run_dir).glob(".*tmp*"))  # nothing half-written left behind


def test_help_for_every_command():
    for cmd in ["train", "eval", "sample", "corpora", "runs", "demo"]:
        assert "Usage" in imo(cmd, "--help").stdout
