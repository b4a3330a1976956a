"""`imo prompt ab` against `imo serve` (a subprocess on a free localhost port) on a tiny byte-model
run: every call is answered and recorded, the recorded answer is the engine's own greedy answer to
the recorded prompt, the transcript re-scores to the printed figures, and the chat API on a model
without a chat template is refused once, in one line, with a hint."""

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from imo.cli import main
from imo.engine.config import GenerationConfig
from imo.prompt import ab
from imo.runs.store import RunStore
from imo.train.config import RunConfig
from imo.train.trainer import train

VARIANTS = """
[tasks]
n = 3
[request]
max_tokens = 12
[[variant]]
name = "json"
[[variant]]
name = "records"
answer = "records"
types = false
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served():
    # the rendered prompts are ~1.5 KB, so the byte model needs a 2048-byte context
    cfg = RunConfig.build(preset=None, model=dict(n_layer=1, n_embd=32, n_head=4, context_length=2048),
                          train=dict(corpus="python-docs", steps=2, batch_size=1, warmup=1, eval_every=2))
    run_id = train(cfg, store=RunStore.open(), quiet=True)
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "imo", "serve", run_id, "--port", str(port), "--quiet"],
                            env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 120
        while True:
            try:
                httpx.get(url + "/models")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
                time.sleep(0.2)
        yield run_id, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_ab_against_imo_serve_on_a_byte_model(served, tmp_path, capsys):
    run_id, url = served
    variants = tmp_path / "v.toml"
    variants.write_text(VARIANTS)
    out = tmp_path / "t.jsonl"
    with pytest.raises(SystemExit) as e:
        main(["prompt", "ab", str(variants), "--endpoint", url, "--api", "chat", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "no chat template" in err and "--api completions" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()

    try:
        main(["prompt", "ab", str(variants), "--endpoint", url, "--api", "completions", "--out", str(out),
              "--json", "-q", "--concurrency", "3"])
    except SystemExit as e:
        assert e.code in (0, None)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    header, calls = ab.read_transcript(out)
    assert header["model"] == run_id and len(calls) == 6
    assert all(c["error"] is None and c["response"]["usage"]["completion_tokens"] <= 12 for c in calls)
    assert json.loads(ab.summaries_json(ab.rescore(out))) == printed
    assert set(printed) == {"json", "records"} and all(s["items"] == 3 for s in printed.values())

    from imo.engine.cli import load_run
    from imo.engine.decode import Engine

    _, model, text, _ = load_run(run_id)
    eng = Engine(model, text=text)
    for c in calls[:2]:  # what was recorded is what the engine answers to the recorded prompt
        [want] = eng.complete(text.encode(c["request"]["prompt"]), GenerationConfig(strategy="greedy", max_tokens=12))
        assert c["response"]["text"] == want.text
