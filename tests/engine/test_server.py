"""The server through the official `openai` client on a free localhost port: completions,
streaming, n > 1, logprobs, stop, the alternatives endpoints, stats, auth, error codes, body
limit, and a client that goes away mid-stream."""

import json
import threading
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
    with ServerThread(create_app(eng, MODEL, api_key="sekret", token_budget=1 << 20)) as url:
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
    # the server's rows are Engine.generate's rows (the same per-row seeds)
    [[raw]] = tiny_engine().generate([b"abc"], n=1, max_tokens=10, temperature=1.0, seed=7)
    r = client.completions.create(**{**kw, "n": 1})
    assert r.choices[0].text == raw.text
    # an untrained model's bytes are random: stop at the first printable one after the first byte
    data = raw.data
    i = next(i for i, t in enumerate(data) if i > 0 and 32 <= t < 127)
    s = client.completions.create(**{**kw, "n": 1, "stop": [chr(data[i])]})
    cut = data.index(data[i])
    assert s.choices[0].finish_reason == "stop" and s.choices[0].text == data[:cut].decode("utf-8", "replace")


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
    wait_for(url, lambda st: st["background_jobs"] == 0)
    nxt = httpx.post(url + f"/v1/imo/sessions/{r['id']}/reject", headers=h).json()["answer"]
    assert nxt["text"] != first["text"] and nxt["branched_from"]["answer"] == 0
    assert nxt["cost"]["forward_passes"] == 16 - nxt["branched_from"]["position"] - 1
    # the speculation ran (in slices, between other requests) before this request
    assert nxt["cost"]["speculative_passes"] == nxt["cost"]["forward_passes"]
    shown = httpx.get(url + f"/v1/imo/sessions/{r['id']}", headers=h).json()
    assert len(shown["answers"]) == 2
    assert httpx.delete(url + f"/v1/imo/sessions/{r['id']}", headers=h).status_code == 200
    assert httpx.post(url + f"/v1/imo/sessions/{r['id']}/reject", headers=h).status_code == 404


@pytest.mark.parametrize("body,msg", [
    (dict(prompt="x" * 65, max_tokens=2), "more than the model's context"),
    (dict(prompt="x", max_tokens=-1), "max_tokens"),
    (dict(prompt="x", top_p=1.5), "top_p"),
    (dict(prompt="x", n=65), "n: Input should be less than or equal to 64"),
    (dict(prompt="x", temperature=0, n=2), "identical"),
    (dict(prompt="x", best_of=3), "best_of is not supported"),
    (dict(prompt="x", presence_penalty=0.5), "presence_penalty is not supported"),
    (dict(prompt="x", echo=True), "echo is not supported"),
    (dict(prompt="x", logit_bias={"10": 5}), "logit_bias is not supported"),
    (dict(prompt="x", logprobs=9), "logprobs"),
    (dict(prompt="x", max_tokens=10**9), "budget is 1048576 tokens"),
    (dict(prompt=[], max_tokens=2), "prompt list is empty"),
    (dict(prompt="x", extra_body={"bogus": 1}), "unsupported field 'bogus'"),
    (dict(prompt="x", extra_body={"n": "2"}), "n: Input should be a valid integer"),
])
def test_bad_parameters_are_400(client, body, msg):
    with pytest.raises(openai.BadRequestError, match=msg):
        client.completions.create(model=MODEL, **body)


def wait_for(url, ok, timeout=20):
    h = {"Authorization": "Bearer sekret"}
    deadline = time.time() + timeout
    while True:
        st = httpx.get(url + "/v1/imo/stats", headers=h).json()
        if ok(st) or time.time() > deadline:
            return st
        time.sleep(0.02)


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
    assert r.status_code == 413 and "over the limit" in r.json()["error"]["message"]
    chunked = (b" " * 65536 for _ in range(40))  # no Content-Length: counted as it is read
    r = httpx.post(url + "/v1/completions", headers=h, content=chunked)
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"
    # unknown routes, a lone surrogate, a body that is no object: OpenAI's error object, never FastAPI's
    for method, path in (("GET", "/v1/nope"), ("POST", "/v1/embeddings"), ("GET", "/")):
        r = httpx.request(method, url + path, headers=h)
        assert r.status_code == 404 and set(r.json()) == {"error"} and path in r.json()["error"]["message"]
    r = httpx.get(url + "/v1/completions", headers=h)
    assert r.status_code == 405 and set(r.json()) == {"error"}
    r = httpx.post(url + "/v1/completions", headers=h, content=b'{"prompt": "a\\ud800b", "max_tokens": 2}')
    assert r.status_code == 400 and "lone surrogate" in r.json()["error"]["message"]
    r = httpx.post(url + "/v1/completions", headers=h, content=b'{"prompt": "a", "stop": ["\\udcff"]}')
    assert r.status_code == 400 and "surrogate" in r.json()["error"]["message"]
    r = httpx.post(url + "/v1/completions", headers=h, content=b'[1, 2]')
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]


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


def test_no_op_fields_list_prompts_and_logprob_tokens_join(client, server):
    url, eng = server
    noop = dict(presence_penalty=0, frequency_penalty=0, best_of=1, echo=False, logit_bias={}, user="u",
                suffix=None)
    r = client.completions.create(model=MODEL, prompt="abc", max_tokens=4, temperature=0, **noop)
    assert len(r.choices) == 1 and r.choices[0].finish_reason == "length"
    before = eng.stats.passes
    prompts = ["ab", "cd", "ab", "xyz"]
    r = client.completions.create(model=MODEL, prompt=prompts, max_tokens=6, temperature=0)
    assert [c.index for c in r.choices] == [0, 1, 2, 3] and r.usage.prompt_tokens == 9
    want = tiny_engine().generate([p.encode() for p in prompts], max_tokens=6, temperature=0)
    assert [c.text for c in r.choices] == [w[0].text for w in want]
    # a prefill per prompt, then one pass per token for each of the two groups (lengths 2 and 3)
    assert eng.stats.passes - before == 4 + 2 * 5
    ids = client.completions.create(model=MODEL, prompt=[[97, 98], [99, 100]], max_tokens=6, temperature=0)
    assert [c.text for c in ids.choices] == [c.text for c in r.choices[:2]]
    # logprob tokens are text pieces that join back to the text (no bytes:\x0a names)
    kw = dict(model=MODEL, prompt="\n", max_tokens=40, temperature=1.0, seed=3, logprobs=2, n=2)
    whole = client.completions.create(**kw)
    for c in whole.choices:
        assert "".join(c.logprobs.tokens) == c.text and not any("bytes:" in t for t in c.logprobs.tokens)
        assert c.logprobs.text_offset == [sum(map(len, c.logprobs.tokens[:i])) for i in range(len(c.text) and
                                                                                          len(c.logprobs.tokens))]
    pieces = {0: [], 1: []}
    for chunk in client.completions.create(**kw, stream=True):
        for c in chunk.choices:
            pieces[c.index] += c.logprobs.tokens
    assert ["".join(pieces[0]), "".join(pieces[1])] == [c.text for c in whole.choices]


def test_a_long_request_does_not_starve_a_short_one_and_is_cancelled_when_its_client_goes(server, client):
    url, eng = server
    h = {"Authorization": "Bearer sekret"}
    gone = {}

    def long_request():  # the client: a huge max_tokens, then it gives up
        try:
            httpx.post(url + "/v1/completions", headers=h, timeout=3,
                       json={"prompt": "A", "max_tokens": 500_000, "temperature": 1.0})
        except httpx.TimeoutException:
            gone["timed_out"] = True

    t = threading.Thread(target=long_request)
    t.start()
    st = wait_for(url, lambda st: st["active_rows"] >= 1)
    assert st["active_rows"] >= 1
    r = client.completions.create(model=MODEL, prompt="short", max_tokens=5, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5
    assert wait_for(url, lambda st: True)["active_rows"] >= 1  # the long one was still running
    # speculation for alternatives runs in slices: a completion is served while it is under way
    s = httpx.post(url + "/v1/imo/sessions", headers=h,
                   json={"prompt": "spec", "max_tokens": 48, "temperature": 0, "margin": "gap", "threshold": 1.0,
                         "speculate": 1_000_000}).json()
    r = client.completions.create(model=MODEL, prompt="short", max_tokens=3, temperature=0)
    assert r.usage.completion_tokens == 3
    assert wait_for(url, lambda st: True)["background_jobs"] == 1  # still speculating
    assert httpx.delete(url + f"/v1/imo/sessions/{s['id']}", headers=h).status_code == 200
    assert wait_for(url, lambda st: st["background_jobs"] == 0)["background_jobs"] == 0
    t.join(timeout=30)
    assert gone.get("timed_out")
    st = wait_for(url, lambda st: st["active_rows"] == 0)
    assert st["active_rows"] == 0 and st["engine"]["generated"] < 500_000  # cancelled, not run to the end


def test_the_first_stop_ends_live_requests_at_once():
    eng = tiny_engine()
    st = ServerThread(create_app(eng, MODEL, token_budget=1 << 20))
    url = st.__enter__()
    got = {}

    def plain():
        got["plain"] = httpx.post(url + "/v1/completions", timeout=60,
                                  json={"prompt": "A", "max_tokens": 500_000})

    def streamed():
        with httpx.stream("POST", url + "/v1/completions", timeout=60,
                          json={"prompt": "B", "max_tokens": 500_000, "stream": True}) as r:
            got["stream"] = [line for line in r.iter_lines() if line]

    threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
    for t in threads:
        t.start()
    deadline = time.time() + 20
    while st.server.started and time.time() < deadline:
        if httpx.get(url + "/v1/imo/stats").json()["active_rows"] >= 2:
            break
        time.sleep(0.02)
    assert st.stop(timeout=20)  # as the first Ctrl-C: the server ends, no second one needed
    for t in threads:
        t.join(timeout=20)
    assert got["plain"].status_code == 503 and "shutting down" in got["plain"].json()["error"]["message"]
    assert "shutting down" in got["stream"][-2] and got["stream"][-1] == "data: [DONE]"
    assert not st.server.server_state.tasks
