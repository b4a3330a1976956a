"""The browser's live routes on the server (`imo serve RUN --sae SAE_RUN`): what they answer, that
steering clamps the feature and leaves the served model alone, and their refusals."""

import json

import httpx
import pytest
import torch

from imo.cli import main
from imo.data.tokenizer import ByteTokenizer
from imo.engine.decode import Engine
from imo.engine.server import ServerThread, create_app
from imo.errors import ConfigError
from imo.inspect.routes import add_inspect_routes, load_sae_run
from imo.model.hooks import hook_points, hooks
from imo.runs.store import RunStore
from imo.train.checkpoint import load_model


@pytest.fixture
def served(lm_and_sae):
    rid, sid = lm_and_sae
    model, _ = load_model(RunStore.open().run_dir(rid))
    sae, info = load_sae_run(sid, rid)
    app = create_app(Engine(model), rid)
    ins = add_inspect_routes(app, model, ByteTokenizer(), sae, info)
    with ServerThread(app) as url:
        yield url, model, sae, ins, info


def test_text_gives_each_tokens_strongest_features(served):
    url, model, sae, _, info = served
    r = httpx.get(url + "/v1/imo/inspect")
    assert r.status_code == 200 and r.json()["sae"] == info["sae"] and r.json()["latents"] == 64
    assert r.headers["access-control-allow-origin"] == "*"
    text = "import os\n"
    # sent as text/plain, as the page does (a simple request: no CORS preflight)
    r = httpx.post(url + "/v1/imo/inspect/text", content=json.dumps({"text": text}),
                   headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    ans = r.json()
    assert ans["tokens"] == list(text.replace("\n", "↵"))
    seen = {}
    with torch.no_grad(), hooks(model, {info["hook"]: lambda a: seen.__setitem__("x", a)}):
        model(torch.tensor([list(text.encode())]))
        codes = sae.encode(seen["x"][0])
    for t, feats in enumerate(ans["features"]):
        want = codes[t].topk(5)
        assert [j for j, _ in feats] == [int(j) for v, j in zip(*want, strict=True) if v > 0]
        for j, v in feats:
            assert v == pytest.approx(float(codes[t, j]), abs=1e-3)
    best = codes.max(0).values
    assert [j for j, _, _ in ans["top"]][0] == int(best.argmax())
    assert all(n == int((codes[:, j] > 0).sum()) for j, _, n in ans["top"])


def test_steer_clamps_the_feature_on_a_copy_of_the_model(served):
    url, model, sae, ins, info = served
    f = int(torch.argmax(sae.W_dec.norm(dim=1)))
    r = httpx.post(url + "/v1/imo/inspect/steer", json={"prompt": "def ", "feature": f, "value": 50, "max_tokens": 12})
    assert r.status_code == 200, r.text
    ans = r.json()
    # the baseline is plain greedy decoding of the served model
    plain = httpx.post(url + "/v1/completions", json={"prompt": "def ", "max_tokens": 12, "temperature": 0}).json()
    assert ans["baseline"] == plain["choices"][0]["text"]
    assert ans["steered"] != ans["baseline"]
    # clamping at 0 a feature that fires nowhere on the greedy text changes nothing
    ids = list(b"def " + ans["baseline"].encode())
    seen = {}
    with torch.no_grad(), hooks(model, {info["hook"]: lambda a: seen.__setitem__("x", a)}):
        model(torch.tensor([ids]))
        silent = int(torch.nonzero(sae.encode(seen["x"][0]).max(0).values == 0)[0, 0])
    r = httpx.post(url + "/v1/imo/inspect/steer", json={"prompt": "def ", "feature": silent, "value": 0, "max_tokens": 12})
    assert r.json()["steered"] == r.json()["baseline"] == ans["baseline"]
    # the hooks were set on the routes' own copy of the model, never on the served one
    assert ins.model is not model and not hook_points(model)[info["hook"]]._forward_hooks


@pytest.mark.parametrize("body, msg", [
    ("{not json", "not JSON"),
    ('{"prompt": "x", "feature": 999, "value": 1}', "'feature' must lie in [0, 63]"),
    ('{"feature": 1, "value": 1}', "'prompt' is required"),
    ('{"prompt": "x", "feature": 1}', "'value' is required"),
    ('{"prompt": "", "feature": 1, "value": 1}', "'prompt' is empty"),
    ('{"prompt": "x", "feature": 1, "value": 1, "max_tokens": 0}', "'max_tokens' must lie in"),
    ('{"prompt": "x", "feature": "a", "value": 1}', "'feature' must be an integer"),
    ('{"prompt": "x", "feature": 1, "value": "big"}', "'value' must be a number"),
])
def test_steer_refuses_bad_requests(served, body, msg):
    url = served[0]
    r = httpx.post(url + "/v1/imo/inspect/steer", content=body)
    assert r.status_code == 400 and msg in r.json()["error"]["message"], r.text
    assert r.headers["access-control-allow-origin"] == "*"  # so the page can read the message


def test_text_refuses_too_long_a_text(served):
    r = httpx.post(served[0] + "/v1/imo/inspect/text", json={"text": "x" * 33})
    assert r.status_code == 400 and "at most 32 are taken" in r.json()["error"]["message"]


def test_serve_refuses_an_sae_of_another_model_or_a_non_sae(lm_and_sae, capsys):
    rid, sid = lm_and_sae
    with pytest.raises(ConfigError, match="not an SAE"):
        load_sae_run(rid, rid)
    with pytest.raises(ConfigError, match="was trained on run"):
        load_sae_run(sid, "0" * 12)
    with pytest.raises(SystemExit) as e:
        main(["serve", rid[:8], "--sae", rid[:8], "--port", "65431", "-q"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "not an SAE" in err and "Traceback" not in err
