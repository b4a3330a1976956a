"""The engine on a BPE model (tiny_bpe): text from token bytes, characters split across tokens,
stop strings found across token boundaries and inside tokens, end-of-sequence ids, beam,
alternatives and `imo sample` on an imported BPE run."""

import pytest
import torch
from tiny_bpe import EOS, engine, tokenizer

from imo.engine.config import GenerationConfig
from imo.engine.text import RowText, TokenText, held_back, stream_text

SEED = 3


@pytest.fixture(scope="module")
def eng():
    return engine()


def sampled(eng, prompt="hello", n=48, seed=SEED):
    [[c]] = eng.generate([prompt], max_tokens=n, temperature=1.0, seed=seed)
    return c


def test_token_text_round_trips_and_splits_characters_only_at_their_end():
    tok = tokenizer()
    tt = TokenText(tok, [EOS])
    text = "é🙂 hello wörld 12 🙂🙂"
    ids = tt.encode(text)
    assert tt.bytes_of(ids).decode() == text and not tt.byte_level
    row = RowText(tt, [])
    for t in ids:
        row.add(t)
    row.finish()
    assert row.text == text and len(row.pieces) == len(ids)
    half = ids.index(tok.encode("🙂")[0])  # the emoji's first half adds no text; the second adds all of it
    assert row.pieces[half] == "" and row.pieces[half + 1] == "🙂"
    assert tt.name(ids[half]) == "bytes:\\xf0\\x9f" and tt.name(ids[0]) == "é" and tt.piece(EOS) == b""
    assert TokenText().byte_level and TokenText().encode("\udcff") == [255]  # a byte model keeps raw argv bytes


def test_held_back_is_the_longest_stop_prefix_at_the_end():
    assert held_back(b"abc", [b"cde"]) == 1 and held_back(b"abcd", [b"cde", b"bcdx"]) == 3
    assert held_back(b"abc", [b"xyz"]) == 0 and held_back(b"ab", [b"ab"]) == 0  # a whole stop is no prefix


def boundary_stops(eng, c):
    """Stops from the answer itself: two bytes across a token boundary, and one inside a token
    (its first occurrence at that place), each with the byte offset where it begins."""
    pieces = [eng.text.piece(t) for t in c.tokens]
    starts = [sum(map(len, pieces[:i])) for i in range(len(pieces))]
    across = inside = None
    for i in range(1, len(pieces)):
        a, b = pieces[i - 1][-1:], pieces[i][:1]
        s = a + b
        if across is None and (a + b).isalpha() and c.data.find(s) == starts[i] - 1:
            across = (s.decode(), starts[i] - 1, i)
        p = pieces[i]
        if inside is None and len(p) >= 2 and p.isalpha() and c.data.find(p[1:2]) == starts[i] + 1:
            inside = (p[1:2].decode(), starts[i] + 1, i)
    assert across and inside, "the seeded answer must have both kinds of stop"
    return across, inside


def test_stops_cut_across_and_inside_tokens(eng):
    c = sampled(eng)
    assert c.finish_reason == "length" and len(c.tokens) == 48  # max_tokens counts tokens, not bytes
    for stop, at, i in boundary_stops(eng, c):
        [[s]] = eng.generate(["hello"], max_tokens=48, temperature=1.0, seed=SEED, stop=[stop])
        assert s.finish_reason == "stop" and s.data == c.data[:at] and s.text == c.data[:at].decode("utf-8", "replace")
        # the tokens kept are those that begin before the stop: a straddling token stays
        starts = [len(eng.text.bytes_of(c.tokens[:j])) for j in range(len(c.tokens))]
        assert s.tokens == c.tokens[: sum(st < at for st in starts)]
        assert len(s.tokens) == (i + 1 if len(stop) == 1 else i)  # the token the stop begins inside is kept
        assert s.logprobs == pytest.approx(c.logprobs[: len(s.tokens)])
        # streamed (as imo sample prints it): the text of the same call answered whole
        cfg = GenerationConfig(strategy="sample", max_tokens=48, seed=SEED, stop=(stop,))
        events = [(ev.token, bool(ev.finished)) for ev in eng.stream(eng.ids("hello"), cfg)]
        [whole] = eng.complete(eng.ids("hello"), cfg)
        assert "".join(stream_text(eng.text, events, [stop.encode()])) == whole.text


def test_end_of_sequence_ends_a_row_and_adds_no_text():
    base = engine(eos=())
    c = sampled(base)
    k = next(k for k in range(5, len(c.tokens)) if c.tokens[k] not in c.tokens[:k])
    eos_eng = engine(eos=(c.tokens[k],))
    s = sampled(eos_eng)
    assert s.finish_reason == "stop" and s.tokens == c.tokens[:k]
    assert s.data == b"".join(base.text.piece(t) for t in c.tokens[:k])
    [[g]] = base.generate(["hello"], max_tokens=48, temperature=0)
    if len(set(g.tokens)) > 1:  # greedy too, when its answer has a token to end at
        end = g.tokens[1] if g.tokens[1] != g.tokens[0] else next(t for t in g.tokens if t != g.tokens[0])
        [[e]] = engine(eos=(end,)).generate(["hello"], max_tokens=48, temperature=0)
        assert e.finish_reason == "stop" and e.tokens == g.tokens[: g.tokens.index(end)]


def test_greedy_beam_and_alternatives_read_text(eng):
    ids = eng.ids("the cat")
    [g] = eng.complete(ids, GenerationConfig(strategy="greedy", max_tokens=12))
    [b] = eng.complete(ids, GenerationConfig(strategy="beam", beam_width=1, max_tokens=12))
    assert b.tokens == g.tokens and b.text == g.text == eng.text.decode(g.tokens)
    beams = eng.complete(ids, GenerationConfig(strategy="beam", beam_width=3, n=2, max_tokens=6, stop=(g.text[3:5],)))
    assert len(beams) == 2 and all(c.text == eng.text.cut(c.tokens, [])[1].decode("utf-8", "replace")
                                   or c.finish_reason == "stop" for c in beams)
    s = eng.session("the cat", GenerationConfig(strategy="greedy", max_tokens=12))
    assert s.answer().text == g.text
    with torch.no_grad():
        nxt = s.reject()
    assert nxt.text == eng.text.decode(nxt.tokens) and nxt.tokens[: nxt.parent[1]] == g.tokens[: nxt.parent[1]]


def test_sample_on_an_imported_bpe_run(tmp_path, capsys):
    pytest.importorskip("gguf")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "importers"))
    from tiny_gguf import write_tiny_gguf

    from imo.cli import main
    from imo.engine.cli import load_run
    from imo.importers.gguf import import_gguf

    import_gguf(write_tiny_gguf(tmp_path / "tiny.gguf"), name="t")
    def cli(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        got = capsys.readouterr()
        return code, got.out, got.err

    code, out, err = cli("sample", "t", "--prompt", "hello world", "--tokens", "10", "--temperature", "0")
    assert code == 0, err
    _, model, text, chat = load_run("t")
    assert text.eos == {2} and chat["stop_ids"] == [2] and "<|im_start|>" in chat["template"]
    from imo.engine.decode import Engine

    [want] = Engine(model, text=text).complete(text.encode("hello world"), GenerationConfig(strategy="greedy",
                                                                                           max_tokens=10))
    assert out == "hello world" + want.text + "\n"
    code, out, err = cli("sample", "t", "--prompt", "hello", "--tokens", "4", "--strategy", "beam", "--n", "2")
    assert code == 0 and out.count("--- answer") == 2, err
    code, out, err = cli("sample", "t", "--prompt", "hello", "--tokens", "-1")
    assert code == 2 and "--tokens must be >= 0" in err and "Traceback" not in err
