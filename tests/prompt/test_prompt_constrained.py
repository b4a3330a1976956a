"""Constrained JSON decoding (imo.engine.constrained): with random logits, the worst case, every
answer is strictly valid JSON of its schema, for a byte vocabulary and for a BPE one; the mask is
exactly the set of tokens the grammar accepts; fast-forward changes no greedy answer and saves
forward calls; and `imo extract` prints a valid object on its last line, or refuses in one line."""

import json
import sys
from pathlib import Path

import jsonschema
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from mocklm import MockLM  # noqa: E402
from tiny_bpe import engine as bpe_engine  # noqa: E402

from imo.cli import main  # noqa: E402
from imo.engine.constrained import (  # noqa: E402
    allowed_mask,
    check_schema,
    compile_schema,
    constrained_generate,
    strictly_valid,
)
from imo.engine.decode import Engine  # noqa: E402
from imo.errors import ConfigError  # noqa: E402
from imo.prompt.schemas import SCHEMAS  # noqa: E402


def _random_logits(seed: int):
    g = torch.Generator().manual_seed(seed)
    return lambda logits: torch.randn(logits.shape, generator=g) * 4


@pytest.mark.parametrize("name", list(SCHEMAS))
@pytest.mark.parametrize("vocab", ["bytes", "bpe"])
def test_random_logits_always_give_strictly_valid_json(name, vocab):
    eng = Engine(MockLM(vocab=256, context_length=512)) if vocab == "bytes" else bpe_engine()
    schema = SCHEMAS[name]
    grammar = compile_schema(schema, eng.text, eng.cfg.vocab_size)
    assert grammar.virtual_eos == (vocab == "bytes")
    for seed in range(12):
        out = constrained_generate(eng, eng.text.encode("x"), grammar, max_tokens=100, temperature=1.0,
                                   seed=seed, logits_hook=_random_logits(seed))
        assert out.complete, (out.finish_reason, out.error, out.text)
        assert strictly_valid(out.text, schema), out.text
        assert out.value == json.loads(out.text)
        jsonschema.validate(out.value, schema)


def test_the_mask_is_exactly_what_the_grammar_accepts():
    eng = bpe_engine()
    grammar = compile_schema(SCHEMAS["person"], eng.text, eng.cfg.vocab_size)
    m = grammar.matcher()
    assert m.consume_tokens(eng.text.encode('{"name": "ab'))
    allowed = allowed_mask(m, grammar.n_vocab)
    assert 0 < int(allowed.sum()) < grammar.n_vocab
    for t in range(grammar.n_vocab):
        trial = m.deep_copy()
        assert trial.consume_token(t) == bool(allowed[t]), (t, eng.text.piece(t))
    # inside a string: a quote may close it, a raw control character may not appear (strict JSON)
    assert allowed[eng.text.encode('"')[0]] and not allowed[eng.text.encode("\x01")[0]]


def test_fast_forward_keeps_the_greedy_answer_and_saves_forward_calls():
    eng = Engine(MockLM(vocab=256, context_length=512))
    grammar = compile_schema(SCHEMAS["event"], eng.text, 256)
    fast = constrained_generate(eng, list(b"x"), grammar, max_tokens=100)
    slow = constrained_generate(eng, list(b"x"), grammar, max_tokens=100, fast_forward=False)
    assert fast.text == slow.text and fast.complete and slow.fast_forwarded == 0
    # the keys and punctuation of this fixed-key schema are forced: most calls are saved
    assert fast.fast_forwarded >= len('{"when":{"month":,"day":},"where":""}')
    assert fast.forward_calls <= 0.7 * slow.forward_calls


def test_bad_schemas_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="valid JSON schema at type"):
        check_schema({"type": "objekt"})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        check_schema([1])
    eng = Engine(MockLM(vocab=256))
    with pytest.raises(ConfigError, match="unknown constrained-decoding backend"):
        compile_schema(SCHEMAS["person"], eng.text, 256, backend="xgrammar")


@pytest.mark.slow
def test_imo_extract_on_a_byte_run(tmp_path, capsys):
    from imo.runs.store import RunStore
    from imo.train.config import RunConfig
    from imo.train.trainer import train

    cfg = RunConfig.build(preset=None, model=dict(n_layer=1, n_embd=32, n_head=4, context_length=2048),
                          train=dict(corpus="python-docs", steps=2, batch_size=1, warmup=1, eval_every=2))
    run_id = train(cfg, store=RunStore.open(), quiet=True)
    schema = tmp_path / "s.json"
    written = {**SCHEMAS["person"], "properties": {
        **SCHEMAS["person"]["properties"], "city": {"type": "string", "maxLength": 10, "default": "unknown"}}}
    schema.write_text(json.dumps(written))
    try:
        main(["extract", "--model", run_id, "--schema", str(schema), "--stats", "Ana Lopa is 34."])
    except SystemExit as e:
        assert e.code in (0, None)
    out = capsys.readouterr()
    value = json.loads(out.out.strip().splitlines()[-1])
    jsonschema.validate(value, written)
    assert "forward calls" in out.err
    bad = tmp_path / "bad.json"
    for text, want in [("{", "is not JSON"), ('{"type": "objekt"}', "not a valid JSON schema"),
                       ('{"type": "string"}', "must be an object with properties")]:
        bad.write_text(text)
        with pytest.raises(SystemExit) as e:
            main(["extract", "--model", run_id, "--schema", str(bad), "x"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and want in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as e:  # the fallback refuses the integer bounds it would drop
        main(["extract", "--model", run_id, "--schema", str(schema), "--backend", "outlines-core", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "silently drop" in err and "minimum" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["extract", "--model", run_id, "--schema", str(tmp_path / "none.json"), "x"])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err
    # imo sample --json-schema: the prompt, then an answer valid under the schema
    event = tmp_path / "event.json"
    event.write_text(json.dumps(SCHEMAS["event"]))
    for extra in (["--temperature", "0"], ["--temperature", "1", "--seed", "3"]):
        try:
            main(["sample", run_id, "--prompt", "when: ", "--tokens", "80", "--json-schema", str(event), *extra])
        except SystemExit as e:
            assert e.code in (0, None)
        printed = capsys.readouterr().out
        assert printed.startswith("when: ") and strictly_valid(printed[len("when: "):].strip(), SCHEMAS["event"])
    with pytest.raises(SystemExit) as e:
        main(["sample", run_id, "--n", "2", "--json-schema", str(event)])
    assert e.value.code == 2 and "--json-schema takes" in capsys.readouterr().err
