"""`response_format` on `imo serve` (imo.engine.structured): a json_schema answer on
/v1/chat/completions (a BPE model with a chat template) and on /v1/completions (a byte model) is
strictly valid JSON of the schema and is exactly imo.engine.constrained's answer for the same
prompt; sampled rows repeat with their seed; streaming joins to the whole answer; json_object
gives an object; "text" is the ordinary path; a bad schema or field is a 400 in OpenAI's shape."""

import json
import sys
from pathlib import Path

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from mocklm import MockLM  # noqa: E402
from tiny_bpe import CHAT  # noqa: E402
from tiny_bpe import engine as bpe_engine  # noqa: E402

from imo.engine.config import GenerationConfig  # noqa: E402
from imo.engine.constrained import compile_schema, constrained_generate, strictly_valid  # noqa: E402
from imo.engine.decode import Engine  # noqa: E402
from imo.engine.server import ServerThread, create_app  # noqa: E402
from imo.importers.chat import render  # noqa: E402
from imo.prompt.schemas import SCHEMAS  # noqa: E402

HELLO = [{"role": "user", "content": "a person, please"}]
PERSON = SCHEMAS["person"]


def fmt(schema: dict, name: str = "person") -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def byte_engine() -> Engine:
    return Engine(MockLM(vocab=256, context_length=512))


@pytest.fixture(scope="module")
def bpe_url():
    with ServerThread(create_app(bpe_engine(), "bpe", chat=CHAT)) as url:
        yield url


@pytest.fixture(scope="module")
def byte_url():
    with ServerThread(create_app(byte_engine(), "bytes")) as url:
        yield url


def chat_ids(messages=HELLO) -> list[int]:
    return bpe_engine().text.encode(render(CHAT["template"], messages, CHAT))


def direct(eng: Engine, ids: list[int], schema: dict, cfg: GenerationConfig):
    out = constrained_generate(eng, ids, compile_schema(schema, eng.text, eng.cfg.vocab_size), cfg=cfg)
    assert out.complete, out
    return out


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_chat_json_schema_is_valid_and_is_the_constrained_answer(bpe_url, name):
    client = openai.OpenAI(base_url=bpe_url + "/v1", api_key="none", max_retries=0, timeout=60)
    r = client.chat.completions.create(model="bpe", messages=HELLO, temperature=0, response_format=fmt(SCHEMAS[name]))
    text = r.choices[0].message.content
    assert strictly_valid(text, SCHEMAS[name]), text
    assert r.choices[0].finish_reason == "stop"
    ids = chat_ids()
    want = direct(bpe_engine(), ids, SCHEMAS[name], GenerationConfig(strategy="greedy", max_tokens=128 - len(ids)))
    assert text == want.text
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == len(want.tokens)


def test_sampled_rows_are_valid_and_repeat_with_their_seed(bpe_url):
    client = openai.OpenAI(base_url=bpe_url + "/v1", api_key="none", max_retries=0, timeout=60)
    kw = dict(model="bpe", messages=HELLO, temperature=1.0, seed=3, n=3, response_format=fmt(PERSON))
    a = [c.message.content for c in client.chat.completions.create(**kw).choices]
    b = [c.message.content for c in client.chat.completions.create(**kw).choices]
    assert a == b and len(set(a)) > 1
    assert all(strictly_valid(t, PERSON) for t in a), a


def test_streaming_joins_to_the_whole_answer(bpe_url):
    client = openai.OpenAI(base_url=bpe_url + "/v1", api_key="none", max_retries=0, timeout=60)
    kw = dict(model="bpe", messages=HELLO, temperature=1.0, seed=1, n=2, response_format=fmt(SCHEMAS["event"]))
    whole = client.chat.completions.create(**kw)
    texts, reasons = {}, {}
    for chunk in client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            reasons[c.index] = c.finish_reason or reasons.get(c.index)
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]
    assert reasons == {0: "stop", 1: "stop"}


def test_json_object_and_text(bpe_url):
    client = openai.OpenAI(base_url=bpe_url + "/v1", api_key="none", max_retries=0, timeout=60)
    r = client.chat.completions.create(model="bpe", messages=HELLO, temperature=1.0, seed=0, max_tokens=60,
                                       response_format={"type": "json_object"})
    c = r.choices[0]
    if c.finish_reason == "stop":  # an unbounded object may run out of tokens; what it wrote is still a prefix
        assert isinstance(json.loads(c.message.content), dict)
    assert c.message.content.startswith("{")
    plain = client.chat.completions.create(model="bpe", messages=HELLO, temperature=0, max_tokens=12,
                                           response_format={"type": "text"})
    same = client.chat.completions.create(model="bpe", messages=HELLO, temperature=0, max_tokens=12)
    assert plain.choices[0].message.content == same.choices[0].message.content


def test_byte_model_completions_json_schema(byte_url):
    client = openai.OpenAI(base_url=byte_url + "/v1", api_key="none", max_retries=0, timeout=60)
    for name, schema in SCHEMAS.items():
        r = client.completions.create(model="bytes", prompt="JSON: ", temperature=0, max_tokens=200,
                                      extra_body={"response_format": fmt(schema, name)})
        text = r.choices[0].text
        assert strictly_valid(text, schema), text
        assert r.choices[0].finish_reason == "stop"
        want = direct(byte_engine(), list(b"JSON: "), schema, GenerationConfig(strategy="greedy", max_tokens=200))
        assert text == want.text
    # a batch of prompts: one valid answer each, in order
    r = client.completions.create(model="bytes", prompt=["a", "bb"], temperature=0, max_tokens=200,
                                  extra_body={"response_format": fmt(PERSON)})
    assert [c.index for c in r.choices] == [0, 1] and all(strictly_valid(c.text, PERSON) for c in r.choices)


def test_stop_strings_still_cut_the_answer(byte_url):
    client = openai.OpenAI(base_url=byte_url + "/v1", api_key="none", max_retries=0, timeout=60)
    r = client.completions.create(model="bytes", prompt="JSON: ", temperature=0, max_tokens=200, stop=['"age"'],
                                  extra_body={"response_format": fmt(PERSON)})
    assert r.choices[0].text.startswith('{"name": ') and '"age"' not in r.choices[0].text
    assert r.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("body", "param", "says"), [
    ({"response_format": fmt({"type": "nope"})}, "response_format", "not a valid JSON schema"),
    ({"response_format": fmt({"type": "object", "properties": {"a": {"type": "integer", "minimum": "x"}}})},
     "response_format", "not a valid JSON schema"),
    ({"response_format": {"type": "json_schema"}}, "response_format", "json_schema exactly when"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": PERSON}}}, "response_format",
     "response_format.json_schema.name is required"),
    ({"response_format": {"type": "yaml"}}, "response_format", "response_format.type"),
    ({"response_format": {"type": "json_object", "extra": 1}}, "response_format", "response_format.extra"),
    ({"response_format": {"type": "json_object"}, "logprobs": True}, "logprobs", "not supported"),
])
def test_bad_response_formats_are_openai_errors(bpe_url, body, param, says):
    r = httpx.post(bpe_url + "/v1/chat/completions", json={"messages": HELLO, **body}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and says in err["message"], err
    assert "\n" not in err["message"]


def test_a_byte_model_still_has_no_chat_route_but_refuses_a_bad_schema_on_completions(byte_url):
    r = httpx.post(byte_url + "/v1/chat/completions", json={"messages": HELLO, "response_format": fmt(PERSON)})
    assert r.status_code == 400 and "/v1/completions" in r.json()["error"]["message"]
    r = httpx.post(byte_url + "/v1/completions", json={"prompt": "x", "response_format": fmt({"type": 3})})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
