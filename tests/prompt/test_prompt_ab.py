"""`imo prompt ab` against a local stub of the OpenAI API (http.server on 127.0.0.1, in-process)
whose answers are known, so accuracy, TPR and TNR have exact expected values; the transcript
re-scores to the same figures; bad variants files and an unreachable endpoint exit 2 in one line."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imo.cli import main
from imo.prompt import ab
from imo.prompt.builder import PromptSpec, answer_text
from imo.prompt.tasks import generate

N = 12
VARIANTS = f"""
[tasks]
split = "plain"
n = {N}
seed = 4

[request]
max_tokens = 64

[[variant]]
name = "defaults"

[[variant]]
name = "no-defaults"
defaults = false

[[variant]]
name = "records"
answer = "records"

[[variant]]
name = "retry"
system = "first answer badly"
retries = 2

[[variant]]
name = "flaky"
system = "fail on the second item"
"""


class Stub(BaseHTTPRequestHandler):
    """Answers like a model whose behaviour is known: perfectly when told the defaults, filling
    every absent field when not (all negatives false positives), and in records with chatter."""

    items = {item.text: item for item in generate("plain", N, seed=4)}
    seen: list = []

    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0,
                                                                "owned_by": "me"}]})
        self._send(404, {"error": {"message": "no such route"}})

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Stub.seen.append(req)
        prompt = "\n".join(m["content"] for m in req["messages"]) if "messages" in req else req["prompt"]
        [item] = [i for t, i in self.items.items() if json.dumps(t)[1:-1] in prompt or t in prompt]
        if "fail on the second item" in prompt and item.id.endswith("-1"):
            return self._send(500, {"error": {"message": "boom", "type": "server_error"}})
        if "first answer badly" in prompt and "did not validate" not in prompt:
            text = 'Sure! {"age": "old"}'  # fails validation: a wrong type and missing keys
        elif "<|START|>" in prompt:
            text = "Here you go:\n" + answer_text(PromptSpec(answer="records"), item.fields, item.truth)
        elif "use the default below" in prompt:
            text = answer_text(PromptSpec(), item.fields, item.truth)
        else:
            text = json.dumps({f.name: item.truth[f.name] if item.truth[f.name] is not None
                               else ("Somewhere" if f.type == "string" else 3) for f in item.fields})
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if "messages" in req:
            return self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": req["model"],
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": text}}], "usage": usage})
        self._send(200, {"id": "x", "object": "text_completion", "created": 0, "model": req["model"],
                         "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                         "usage": usage})


@pytest.fixture(scope="module")
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def imo(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def ok(capsys, *argv):
    try:
        main(list(argv))
    except SystemExit as e:
        assert e.code in (0, None), capsys.readouterr().err
    return capsys.readouterr().out


def test_ab_scores_known_answers_exactly_and_the_transcript_rescores(stub, tmp_path, capsys):
    variants = tmp_path / "v.toml"
    variants.write_text(VARIANTS)
    out = tmp_path / "run.jsonl"
    Stub.seen.clear()
    printed = ok(capsys, "prompt", "ab", str(variants), "--endpoint", stub, "--out", str(out), "--json", "-q")
    got = json.loads(printed.strip().splitlines()[-1])
    items = generate("plain", N, seed=4)
    pos = sum(v is not None for i in items for v in i.truth.values())
    neg = 4 * N - pos
    d, nd, rec, retry = got["defaults"], got["no-defaults"], got["records"], got["retry"]
    assert retry["accuracy"]["value"] == 1.0 and retry["valid"]["value"] == 1.0  # the last attempt counts
    assert d["accuracy"]["value"] == d["tpr"]["value"] == d["tnr"]["value"] == d["valid"]["value"] == 1.0
    assert nd["tpr"]["value"] == 1.0 and nd["tnr"]["value"] == 0.0
    assert nd["accuracy"]["value"] == pytest.approx(pos / (pos + neg))
    lo, hi = nd["accuracy"]["low"], nd["accuracy"]["high"]
    assert lo < nd["accuracy"]["value"] < hi  # a real interval over items
    assert rec["accuracy"]["value"] == 1.0 and rec["valid"]["value"] == 0.0 and rec["outside_words"] == 3.0
    # every call is recorded, with its request; the model defaulted to the endpoint's only one
    header, calls = ab.read_transcript(out)
    flaky = got["flaky"]  # a call that failed is counted, and not scored as an empty answer
    assert flaky["errors"] == 1 and flaky["items"] == N - 1 and flaky["accuracy"]["value"] == 1.0
    assert header["model"] == "stub" and len(calls) == 5 * N and len(Stub.seen) == 6 * N
    assert sum(c["error"] is not None for c in calls) == 1
    assert all(c["request"]["model"] == "stub" and c["request"]["temperature"] == 0.0 for c in calls)
    assert {c["variant"] for c in calls} == {"defaults", "no-defaults", "records", "retry", "flaky"}
    for c in (c for c in calls if c["variant"] == "retry"):  # both attempts kept, the error fed back
        first, second = c["attempts"]
        assert "Field required" in first["validation_error"] and second["validation_error"] is None
        assert first["validation_error"] in second["request"]["messages"][-1]["content"]
        assert c["response"] == second["response"]
    again = json.loads(ok(capsys, "prompt", "ab", "--rescore", str(out), "--json").strip().splitlines()[-1])
    assert again == got
    # the completions API renders the same messages as one plain-text prompt
    out2 = tmp_path / "run2.jsonl"
    ok(capsys, "prompt", "ab", str(variants), "--endpoint", stub + "/v1", "--api", "completions",
       "--out", str(out2), "-q")
    _, calls2 = ab.read_transcript(out2)
    assert calls2[0]["request"]["prompt"].endswith("Assistant:") and ab.rescore(out2)["defaults"].tnr.value == 1.0


def test_refusals_are_one_line_and_exit_2(stub, tmp_path, capsys):
    variants = tmp_path / "v.toml"
    variants.write_text(VARIANTS)
    cases = {
        "[[variant]]\nname = \"a\"\nordr = \"x\"\n": "variant]] 1 ('a').ordr: unknown key",
        "[[variant]]\nname = \"a\"\nshots = \"two\"\n": "shots: Input should be a valid integer",
        "[[variant]]\nname = \"a\"\n[[variant]]\nname = \"a\"\n": "repeated: a",
        "[[variant]]\nname = \"a\"\nanswer = \"records\"\nretries = 1\n": "retries validate JSON answers",
        "[tasks]\nsplit = \"hard\"\n[[variant]]\nname = \"a\"\n": "split must be one of plain, abbrev",
        "[tasks]\nn = 3\n": "variant: required key missing",
        "[[variant]\nname=": "is not valid TOML",
    }
    for i, (text, want) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.toml"
        bad.write_text(text)
        code, out, err = imo(capsys, "prompt", "ab", str(bad), "--endpoint", stub, "--out", str(tmp_path / "o.jsonl"))
        assert code == 2 and want in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o.jsonl").exists()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, _, err = imo(capsys, "prompt", "ab", str(variants), "--endpoint", dead, "--out", str(tmp_path / "o.jsonl"))
    assert code == 2 and "cannot reach the endpoint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl").exists()
    (tmp_path / "o.jsonl").write_text("keep")
    code, _, err = imo(capsys, "prompt", "ab", str(variants), "--endpoint", stub, "--out", str(tmp_path / "o.jsonl"))
    assert code == 2 and "--force" in err and (tmp_path / "o.jsonl").read_text() == "keep"
    code, _, err = imo(capsys, "prompt", "ab", "--rescore", str(tmp_path / "o.jsonl"))
    assert code == 2 and "line 1 is not JSON" in err
    code, _, err = imo(capsys, "prompt", "ab", str(variants), "--rescore", str(tmp_path / "o.jsonl"))
    assert code == 2 and "not both" in err
    code, _, err = imo(capsys, "prompt", "ab", str(variants), "--endpoint", stub, "--model", "other",
                       "--api", "grpc")
    assert code == 2 and "--api must be chat or completions" in err


def test_the_shipped_variants_files_parse():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "benchmarks" / "prompt_variants"
    files = sorted(folder.glob("*.toml"))
    assert len(files) >= 2
    for f in files:
        spec = ab.load_variants(f)
        assert len(spec.variant) >= 2 and len(ab.plan(spec)) == len(spec.variant) * spec.tasks.n
