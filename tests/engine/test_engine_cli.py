"""`imo sample` strategies, alternatives and the interactive mode, and `imo serve` end to end on a
trained run (a subprocess on a free localhost port, always stopped)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
from typer.testing import CliRunner

from imo.cli import _mount, app
from imo.errors import ConfigError
from imo.runs.store import RunStore
from imo.train.config import RunConfig
from imo.train.trainer import train


@pytest.fixture
def run_id():
    cfg = RunConfig.build(preset=None, model=dict(n_layer=1, n_embd=32, n_head=4, context_length=64),
                          train=dict(corpus="python-docs", steps=3, batch_size=2, warmup=1, eval_every=3))
    return train(cfg, store=RunStore.open(), quiet=True)


def sample(*args: str, stdin: str = ""):
    _mount()
    return CliRunner().invoke(app, ["sample", *args], input=stdin)


def test_sample_strategies_alternatives_and_interactive(run_id):
    g = sample(run_id, "--prompt", "def ", "--tokens", "12", "--temperature", "0")
    assert g.exit_code == 0 and g.output.startswith("def ")
    assert sample(run_id, "--prompt", "def ", "--tokens", "12", "--strategy", "greedy").output == g.output
    b = sample(run_id, "--prompt", "def ", "--tokens", "8", "--strategy", "beam", "--n", "2")
    assert b.exit_code == 0 and b.output.count("--- answer") == 2 and "score" in b.output
    n = sample(run_id, "--prompt", "x", "--tokens", "8", "--n", "3", "--seed", "1", "--top-p", "0.9")
    assert n.exit_code == 0 and n.output.count("--- answer") == 3
    a = sample(run_id, "--prompt", "def ", "--tokens", "16", "--strategy", "greedy", "--alternatives", "2",
               "--threshold", "0.01")
    assert a.exit_code == 0 and a.output.count("--- answer") == 3 and "branched at token" in a.output
    i = sample(run_id, "--prompt", "def ", "--tokens", "16", "--strategy", "greedy", "--threshold", "0.01",
               "-i", stdin="r\nb\nq\n")
    assert i.exit_code == 0 and "--- answer 2" in i.output and " token " in i.output
    bad = sample(run_id, "--strategy", "greedy", "--top-k", "3")
    assert isinstance(bad.exception, ConfigError) and "--top-k only apply to --strategy sample" in str(bad.exception)
    bad = sample(run_id, "--strategy", "beam", "--alternatives", "1")
    assert isinstance(bad.exception, ConfigError)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_a_trained_run(run_id):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "imo", "serve", run_id[:8], "--port", str(port), "--quiet",
                             "--token-budget", "1000000"],
                            env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.time() + 120
        while True:
            try:
                models = httpx.get(url + "/models").json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "slow"
                time.sleep(0.2)
        assert [m["id"] for m in models["data"]] == [run_id]
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        r = client.completions.create(model=run_id, prompt="def ", max_tokens=5, temperature=0)  # named
        r2 = client.completions.create(model=None, prompt="def ", max_tokens=5, temperature=0)  # or omitted
        assert r.choices[0].text == r2.choices[0].text and r.usage.completion_tokens == 5
        with socket.socket() as s:  # bound to localhost only
            assert s.connect_ex(("127.0.0.1", port)) == 0
        _mount()
        taken = CliRunner().invoke(app, ["serve", run_id, "--port", str(port)])
        assert isinstance(taken.exception, ConfigError) and "cannot listen" in str(taken.exception)
        # the hang: a huge request in flight, then one Ctrl-C must stop the server cleanly
        got = {}
        long = threading.Thread(target=lambda: got.setdefault("r", httpx.post(
            url + "/completions", json={"prompt": "A", "max_tokens": 900_000}, timeout=120)))
        long.start()
        while httpx.get(url + "/imo/stats").json()["active_rows"] < 1:
            assert long.is_alive()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) in (0, 130)  # 130: imo reports the interrupt, one line
        long.join(timeout=30)
        assert got["r"].status_code == 503 and "shutting down" in got["r"].json()["error"]["message"]
        err = proc.stderr.read().decode()
        assert "Traceback" not in err and "CancelledError" not in err
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sample_takes_raw_bytes_and_names_the_flags(run_id, tmp_path):
    raw = "\udcff\udcfeabc"  # argv `$'\\xff\\xfeabc'` as Python decodes it (surrogateescape)
    a = sample(run_id, "--prompt", raw, "--tokens", "6", "--temperature", "0", "--stop", "\udcff")
    assert a.exit_code == 0, a.output
    assert a.output.startswith("\ufffd\ufffdabc")
    f = tmp_path / "p.bin"
    f.write_bytes(b"\xff\xfeabc")
    b = sample(run_id, "--prompt-file", str(f), "--tokens", "6", "--temperature", "0", "--stop", "\udcff")
    assert b.exit_code == 0 and b.output == a.output
    both = sample(run_id, "--prompt", "x", "--prompt-file", str(f))
    assert isinstance(both.exception, ConfigError)
    long = sample(run_id, "--prompt", "x" * 100, "--tokens", "4")
    assert isinstance(long.exception, ConfigError) and "context" in str(long.exception)
    assert long.output == ""  # refused before anything is echoed
    for args, flag in ((["--tokens", "-1"], "--tokens"), (["--top-k", "0"], "--top-k"),
                       (["--n", "99"], "--n"), (["--strategy", "greedy", "--seed", "1"], "--seed")):
        bad = sample(run_id, *args)
        assert isinstance(bad.exception, ConfigError) and flag in str(bad.exception), (args, bad.exception)
        assert not any(f in str(bad.exception) for f in ("max_tokens", "top_k", "beam_width"))


@pytest.mark.slow
def test_sample_reads_raw_argv_bytes(run_id):
    """The real argv path: bytes that are no UTF-8, passed by the OS, not by a test runner."""
    out = subprocess.run([sys.executable, "-m", "imo", "sample", run_id, "--prompt", b"\xff\xfeabc", "--tokens",
                          "4", "--temperature", "0", "--stop", b"\xff"], capture_output=True, env=os.environ.copy(),
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.startswith("\ufffd\ufffdabc".encode())
