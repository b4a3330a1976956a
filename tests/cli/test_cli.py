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
    assert "n_head: 2" in show and "n_layer: 1" in show and "n_embd: 32" in show and "steps: 3" in show
    imo("train", "--config", str(toml), "--preset", "small", "--steps", "1", "--quiet")  # the flag wins
    show = imo("runs", "show", imo("runs", "--ids").stdout.split()[0]).stdout
    assert "preset: small" in show and "n_layer: 1" in show  # ... and the file still beats the preset


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
        (["train", "--lr", "-1"], ["lr must be > 0"]),
        (["--store", "/tmp", "runs"], ["is a directory"]),
        (["--store", "/nonexistent-imo/s.sqlite", "runs"], ["does not exist", "mkdir -p"]),
        (["train", "--name", " "], ["--name must not be empty"]),
    ],
)
def test_bad_input(args, fragments):
    res = imo(*args, check=False)
    assert_user_error(res, *fragments)
    assert imo("runs", "--ids").stdout.split() == []  # no run was recorded for bad input


def test_quiet_prints_the_run_id_name_and_tags():
    res = imo("train", *SMALL, "--steps", "2", "-q", "--name", "my-run", "--tags", "a, b")
    from imo.runs.store import RunStore

    (run,) = RunStore.open().list()
    assert res.stdout.split() == [run["id"]]
    assert run["name"] == "my-run" and run["tags"] == ["a", "b"]
    assert imo("runs", "--ids", "--tag", "b").stdout.split() == [run["id"]]


def test_interrupted_train_exits_128_plus_the_signal(monkeypatch):
    import signal

    from typer.testing import CliRunner

    import imo.cli
    import imo.train.trainer as T

    imo.cli._mount()  # idempotent: main() mounts the commands, CliRunner calls the app directly
    for sig in (signal.SIGINT, signal.SIGTERM):
        monkeypatch.setattr(T, "run_training", lambda *a, sig=sig, **k: T.Outcome("abc123", sig, True))
        res = CliRunner().invoke(imo.cli.app, ["train", "--steps", "2", "-q"])
        assert res.exit_code == 128 + sig and res.stdout.split() == ["abc123"]


def test_cuda_asked_for_on_a_cpu_machine_leaves_no_run():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_user_error(imo("train", *SMALL, "--device", "cuda", check=False), "CUDA is not available")
    assert imo("runs", "--ids").stdout.split() == []


def test_bad_input_about_a_run(tmp_path):
    imo("train", *SMALL, "--pos", "learned", "--steps", "2", "--quiet")
    rid = imo("runs", "--ids").stdout.split()[0]
    assert_user_error(imo("eval", rid, "--context", "64", check=False), "longer than the learned position table")
    assert_user_error(imo("eval", rid, "--corpus", "nope", check=False), "unknown corpus")
    assert_user_error(imo("sample", rid, "--temperature", "-1", check=False), "temperature")
    assert_user_error(imo("train", "--resume", rid, "--pos", "rope", check=False), "--resume keeps", "--pos")
    assert_user_error(imo("train", "--resume", rid, check=False), "has finished")
    assert_user_error(imo("eval", rid, "--max-bytes", "0", check=False), "max-bytes must be >= 1")
    png = tmp_path / "curves.png"
    png.write_bytes(b"mine")
    assert_user_error(imo("runs", "compare", rid, "-o", str(png), check=False), "exists; use --force")
    assert png.read_bytes() == b"mine"
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    assert_user_error(imo("train", "--config", str(bad), check=False), "not valid TOML")
    bad.write_text("[model]\nwidth = 3\n")
    assert_user_error(imo("train", "--config", str(bad), check=False), "unknown model field", "n_embd")
    bad.write_text('[train]\nlr = "fast"\n')
    assert_user_error(imo("train", "--config", str(bad), check=False), "train.lr must be float")
    bad.write_text("[model]\nn_layer = 2.5\n")
    assert_user_error(imo("train", "--config", str(bad), check=False), "model.n_layer must be int")
    from imo.runs.store import RunStore

    run_dir = RunStore.open().run_dir(rid)
    ckpt = next(run_dir.glob("ckpt-*")) / "model.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert_user_error(imo("eval", rid, check=False), "corrupt")
    assert_user_error(imo("sample", rid, check=False), "corrupt")
    assert not list(Path(run_dir).glob(".*tmp*"))  # nothing half-written left behind


def test_help_for_every_command():
    for cmd in ["train", "eval", "sample", "corpora", "runs", "demo", "export", "claims", "check", "report"]:
        assert "Usage" in imo(cmd, "--help").stdout
