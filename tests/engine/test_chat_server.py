"""`/v1/chat/completions` and `/v1/completions` on a BPE model (tiny_bpe), through the official
`openai` client on a localhost server: the answer is the engine's for the rendered template,
streaming equals non-streaming, stop strings cut across token boundaries, end-of-sequence ids
end an answer, logprobs join to the text, and bad requests get a 4xx with a one-line message."""

import json

import httpx
import openai
import pytest
from tiny_bpe import CHAT, EOS, engine

from imo.engine.config import GenerationConfig
from imo.engine.prefix import PrefixTree
from imo.engine.server import ServerThread, create_app
from imo.importers.chat import render

MODEL = "run-bpe"
HELLO = [{"role": "user", "content": "hello wörld 🙂"}]


@pytest.fixture(scope="module")
def server():
    with ServerThread(create_app(engine(PrefixTree(4096)), MODEL, chat=CHAT)) as url:
        yield url


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="none", max_retries=0, timeout=30)


def prompt_ids(messages=HELLO) -> list[int]:
    return engine().text.encode(render(CHAT["template"], messages, CHAT))


def collect_stream(stream) -> tuple[dict, dict, list]:
    texts, reasons, chunks = {}, {}, []
    for chunk in stream:
        chunks.append(chunk)
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                reasons[c.index] = c.finish_reason
    return texts, reasons, chunks


def test_models_and_a_greedy_chat_answer_is_the_engines(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    r = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=20, temperature=0)
    ids = prompt_ids()
    [want] = engine().complete(ids, GenerationConfig(strategy="greedy", max_tokens=20))
    c = r.choices[0]
    assert r.object == "chat.completion" and c.message.role == "assistant" and c.message.content == want.text
    assert c.finish_reason == want.finish_reason
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == 20


def test_streaming_equals_non_streaming_with_logprobs(client):
    kw = dict(model=MODEL, messages=HELLO, max_tokens=24, temperature=1.0, seed=5, n=2, logprobs=True,
              top_logprobs=2)
    whole = client.chat.completions.create(**kw)
    texts, reasons, chunks = collect_stream(client.chat.completions.create(**kw, stream=True))
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]
    assert reasons == {c.index: c.finish_reason for c in whole.choices}
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
    for c in whole.choices:  # the token texts join to the answer; bytes are the tokens' own
        lp = c.logprobs.content
        assert "".join(t.token for t in lp) == c.message.content and all(len(t.top_logprobs) == 2 for t in lp)
        assert bytes(b for t in lp for b in t.bytes).decode("utf-8", "replace") == c.message.content
    streamed = [t.token for ch in chunks for c in ch.choices if c.index == 0 and c.logprobs for t in c.logprobs.content]
    assert "".join(streamed) == texts[0]
    # the same rows as Engine.generate (per-row seeds)
    outs = engine().generate([prompt_ids()], n=2, max_tokens=24, temperature=1.0, seed=5)
    assert [c.text for c in outs[0]] == [c.message.content for c in whole.choices]


def stops_across_tokens(eng, c) -> list[tuple[str, int]]:
    """Two-letter stops that span a token boundary at their first occurrence, and one-letter
    stops inside a token, with the byte offset where each begins."""
    pieces = [eng.text.piece(t) for t in c.tokens]
    out, start = [], 0
    for i, p in enumerate(pieces):
        if i and pieces[i - 1][-1:].isalpha() and p[:1].isalpha():
            s = pieces[i - 1][-1:] + p[:1]
            if c.data.find(s) == start - 1 and not any(len(x) == 2 for x, _ in out):
                out.append((s.decode(), start - 1))
        if len(p) >= 2 and p[1:2].isalpha() and c.data.find(p[1:2]) == start + 1 and not any(len(x) == 1 for x, _ in out):
            out.append((p[1:2].decode(), start + 1))
        start += len(p)
    return out


@pytest.mark.parametrize("stream", [False, True])
def test_stop_strings_cut_across_token_boundaries(client, stream):
    eng = engine()
    ids = prompt_ids()
    [[free]] = eng.generate([ids], max_tokens=40, temperature=1.0, seed=0)  # the server's answer without stops
    stops = stops_across_tokens(eng, free)
    assert len(stops) == 2, "the seeded answer must have both kinds of stop"
    for stop, at in stops:
        want = free.data[:at].decode("utf-8", "replace")
        kw = dict(model=MODEL, messages=HELLO, max_tokens=40, temperature=1.0, seed=0, stop=[stop])
        if stream:
            texts, reasons, _ = collect_stream(client.chat.completions.create(**kw, stream=True))
            text, reason = texts.get(0, ""), reasons[0]
        else:
            r = client.chat.completions.create(**kw)
            text, reason = r.choices[0].message.content, r.choices[0].finish_reason
        assert text == want and reason == "stop"
        # /v1/completions with the same prompt as token ids: the same cut
        r = client.completions.create(model=MODEL, prompt=ids, max_tokens=40, temperature=1.0, seed=0, stop=[stop],
                                      stream=stream)
        got = "".join(c.text for ch in r for c in ch.choices) if stream else r.choices[0].text
        assert got == want


def test_completions_on_bpe_text_prompts_and_end_of_sequence(server, client):
    r = client.completions.create(model=MODEL, prompt="hello wörld", max_tokens=10, temperature=0, logprobs=1)
    eng = engine()
    [want] = eng.complete(eng.ids("hello wörld"), GenerationConfig(strategy="greedy", max_tokens=10))
    c = r.choices[0]
    assert c.text == want.text and "".join(c.logprobs.tokens) == c.text
    assert r.usage.prompt_tokens == len(eng.ids("hello wörld"))
    # an answer that meets <|im_end|> ends there with "stop" and shows none of it
    greedy = eng.complete(prompt_ids(), GenerationConfig(strategy="greedy", max_tokens=30))[0]
    assert EOS not in greedy.tokens
    with ServerThread(create_app(engine(eos=(greedy.tokens[3],)), MODEL, chat=CHAT)) as url:
        cl = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=30)
        a = cl.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=30, temperature=0)
        texts, reasons, _ = collect_stream(cl.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=30,
                                                                      temperature=0, stream=True))
    first = greedy.tokens.index(greedy.tokens[3])
    assert a.choices[0].finish_reason == "stop" and reasons[0] == "stop"
    assert a.choices[0].message.content == texts[0] == eng.text.decode(greedy.tokens[:first])
    assert a.usage.completion_tokens == first + 1  # the end token was generated, though not shown


@pytest.mark.parametrize("body,status,msg", [
    ({}, 400, "messages is required"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, 400, "messages"),
    ({"messages": HELLO, "top_logprobs": 2}, 400, "top_logprobs needs logprobs"),
    ({"messages": HELLO, "max_tokens": 4, "max_completion_tokens": 4}, 400, "not both"),
    ({"messages": HELLO, "max_tokens": 500}, 400, "lower max_tokens to at most"),
    ({"messages": HELLO, "temperature": 0, "n": 2}, 400, "identical"),
    ({"messages": HELLO, "tools": []}, 400, "unsupported field 'tools'"),
    ({"messages": HELLO, "model": "gpt-4"}, 404, "unknown model"),
])
def test_bad_chat_requests_get_a_one_line_4xx(server, body, status, msg):
    r = httpx.post(server + "/v1/chat/completions", json=body)
    err = r.json()["error"]
    assert r.status_code == status and msg in err["message"] and "\n" not in err["message"], err
    assert set(err) == {"message", "type", "param", "code"}


def test_chat_on_a_run_without_a_template_is_refused(server):
    with ServerThread(create_app(engine(), MODEL)) as url:
        r = httpx.post(url + "/v1/chat/completions", json={"messages": HELLO})
        assert r.status_code == 400 and "no chat template" in r.json()["error"]["message"]
        lines = [ln for ln in httpx.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": 3,
                                                                        "stream": True}).text.splitlines() if ln]
        assert lines[-1] == "data: [DONE]" and json.loads(lines[0][6:])["object"] == "text_completion"
