"""The server through the official `openai` client on a free localhost port: completions,
streaming, n > 1, logprobs, stop, the alternatives endpoints, stats, auth, error codes, body
limit, and a client that goes away mid-stream."""

import json
import time

import httpx
import openai
import pytest
import torch

from imo.engine.decode import Engine
from imo.engine.prefix import PrefixTree
from imo.engine.server import ServerThread, create_app
from imo.model import GPT, ModelConfig

MODEL = "run-test"


def tiny_engine() -> Engine:
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_embd=32, n_head=4, context_length=64, pos="rope")).eval()
    return Engine(model, PrefixTree(4096))


@pytest.fixture(scope="module")
def server():
    eng = tiny_engine()
    with ServerThread(create_app(eng, MODEL, api_key="sekret")) as url:
        yield url, eng


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="sekret", max_retries=0, timeout=30)


def test_models_and_greedy_completion_match_the_engine(client, server):
    assert [m.id for m in client.models.list().data] == [MODEL]
    r = client.completions.create(model=MODEL, prompt="hello", max_tokens=12, temperature=0, logprobs=2)
    from imo.engine.config import GenerationConfig

    [want] = tiny_engine().generate(list(b"hello"), GenerationConfig(strategy="greedy", max_tokens=12))
    c = r.choices[0]
    assert c.text == want.text and c.finish_reason == "length"
    assert c.logprobs.token_logprobs == pytest.approx(want.logprobs, abs=1e-4)
    assert all(len(t) == 2 for t in c.logprobs.top_logprobs)
    assert r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 12


def test_n_samples_seed_and_stop(client):
    kw = dict(model=MODEL, prompt="abc", max_tokens=10, temperature=1.0, n=3, seed=7)
    a = client.completions.create(**kw)
    b = client.completions.create(**kw)
    assert [c.text for c in a.choices] == [c.text for c in b.choices] and len(a.choices) == 3
    # an untrained model's bytes are random: stop at the first printable one after the first byte
    r = client.completions.create(**{**kw, "n": 1, "logprobs": 0})
    raw = [int(t[8:], 16) if t.startswith("bytes:") else ord(t) for t in r.choices[0].logprobs.tokens]
    i = next(i for i, t in enumerate(raw) if i > 0 and 32 <= t < 127)
    s = client.completions.create(**{**kw, "n": 1, "stop": [chr(raw[i])]})
    cut = raw.index(raw[i])
    assert s.choices[0].finish_reason == "stop" and s.choices[0].text == bytes(raw[:cut]).decode("utf-8", "replace")


def test_streaming_gives_the_same_text(client):
    kw = dict(model=MODEL, prompt="stream me", max_tokens=20, temperature=0.9, seed=1, n=2)
    whole = client.completions.create(**kw)
    pieces = {0: "", 1: ""}
    reasons = {}
    for chunk in client.completions.create(**kw, stream=True):
        for c in chunk.choices:
            pieces[c.index] += c.text
            if c.finish_reason:
                reasons[c.index] = c.finish_reason
    assert [pieces[0], pieces[1]] == [c.text for c in whole.choices] and reasons == {0: "length", 1: "length"}


def test_alternatives_endpoints(server):
    url, _ = server
    h = {"Authorization": "Bearer sekret"}
    r = httpx.post(url + "/v1/imo/sessions", headers=h,
                   json={"prompt": "the ", "max_tokens": 16, "temperature": 0, "threshold": 0.05,
                         "speculate": 100}).json()
    first = r["answer"]
    assert first["cost"]["forward_passes"] == 16 and r["branch_points"]
    nxt = httpx.post(url + f"/v1/imo/sessions/{r['id']}/reject", headers=h).json()["answer"]
    assert nxt["text"] != first["text"] and nxt["branched_from"]["answer"] == 0
    assert nxt["cost"]["forward_passes"] == 16 - nxt["branched_from"]["position"] - 1
    # the worker ran the speculation (queued after the first answer) before this request
    assert nxt["cost"]["speculative_passes"] == nxt["cost"]["forward_passes"]
    shown = httpx.get(url + f"/v1/imo/sessions/{r['id']}", headers=h).json()
    assert len(shown["answers"]) == 2
    assert httpx.delete(url + f"/v1/imo/sessions/{r['id']}", headers=h).status_code == 200
    assert httpx.post(url + f"/v1/imo/sessions/{r['id']}/reject", headers=h).status_code == 404


@pytest.mark.parametrize("body,msg", [
    (dict(prompt="x" * 65, max_tokens=2), "more than the model's context"),
    (dict(prompt="x", max_tokens=-1), "max_tokens"),
    (dict(prompt="x", top_p=1.5), "top_p"),
    (dict(prompt="x", n=65), "n must be"),
    (dict(prompt="x", temperature=0, n=2), "identical"),
    (dict(prompt="x", best_of=3), "unsupported field"),
    (dict(prompt="x", logprobs=9), "logprobs"),
])
def test_bad_parameters_are_400(client, body, msg):
    with pytest.raises(openai.BadRequestError, match=msg):
        client.completions.create(model=MODEL, **body)


def test_auth_malformed_json_unknown_model_and_body_limit(server):
    url, _ = server
    assert httpx.get(url + "/v1/models").status_code == 401
    assert httpx.get(url + "/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    h = {"Authorization": "Bearer sekret", "Content-Type": "application/json"}
    r = httpx.post(url + "/v1/completions", headers=h, content=b"{not json")
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"]
    r = httpx.post(url + "/v1/completions", headers=h, json={"model": "other", "prompt": "x"})
    assert r.status_code == 404 and MODEL in r.json()["error"]["message"]
    r = httpx.post(url + "/v1/completions", headers=h, content=b" " * (2 << 20))
    assert r.status_code == 413


def test_disconnect_mid_stream_frees_the_rows(server, client):
    url, eng = server
    h = {"Authorization": "Bearer sekret"}
    body = {"prompt": "long", "max_tokens": 2000, "temperature": 1.0, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", headers=h, json=body, timeout=30) as r:
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first[6:])["choices"]
    deadline = time.time() + 20
    while time.time() < deadline:
        stats = httpx.get(url + "/v1/imo/stats", headers=h).json()
        if stats["active_rows"] == 0:
            break
        time.sleep(0.05)
    assert stats["active_rows"] == 0 and stats["engine"]["generated"] < 2000
    assert stats["prefix_cache"]["lookups"] >= 1 and "hit_rate" in stats["prefix_cache"]
    r = client.completions.create(model=MODEL, prompt="still here", max_tokens=3, temperature=0)
    assert len(r.choices[0].text.encode()) <= 3 and r.choices[0].finish_reason == "length"
