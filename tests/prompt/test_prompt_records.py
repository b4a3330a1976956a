"""The delimited record format: the prompt's description and the parser share the delimiters, a
formatted answer parses back exactly, and the parser is total on garbled and adversarial text."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imo.prompt.records import ParseResult, Record, RecordFormat

FMT = RecordFormat()
RECORDS = [Record("field", ("age", "34")), Record("field", ("city", "Lokoholm")), Record("person", ("Ana", "x", ""))]


def test_the_instruction_is_built_from_the_parsers_delimiters():
    fmt = RecordFormat(tuple_delimiter="|", record_delimiter=";;", start_delimiter="BEGIN", end_delimiter="FINISH")
    text = fmt.instruction("field", ["key", "value"])
    assert '("field"|<key>|<value>);;' in text and "BEGIN" in text and "FINISH" in text
    assert fmt.parse(fmt.format(RECORDS)).records == RECORDS
    assert RecordFormat().parse(fmt.format(RECORDS)).records != RECORDS  # other delimiters, other records
    with pytest.raises(ValueError, match="distinct"):
        RecordFormat(tuple_delimiter="##")


def test_round_trip_and_talk_around_the_answer():
    clean = FMT.parse(FMT.format(RECORDS))
    assert clean.records == RECORDS and clean.errors == [] and clean.started and clean.ended
    talky = FMT.parse("Sure! Here are the facts:\n" + FMT.format(RECORDS) + "\nHope this helps.")
    assert talky.records == RECORDS and talky.errors == []
    assert talky.outside.split() == "Sure! Here are the facts: Hope this helps.".split()


def test_what_models_get_wrong_is_read_or_reported():
    # no start/end markers, one record without its delimiter, a line of chatter, a broken record
    text = '("field"<|>age<|>34)##\n("field"<|>city<|>Lokoholm)\nI think that is all.\n("field"<|>color'
    r = FMT.parse(text)
    assert r.records == RECORDS[:2]
    assert not r.started and len(r.errors) == 3  # no start marker, the chatter, the broken record
    assert any("I think" in e for e in r.errors) and any("color" in e for e in r.errors)
    unended = FMT.parse("<|START|>\n(\"field\"<|>age<|>34)##")
    assert unended.records == RECORDS[:1] and unended.started and not unended.ended
    assert FMT.parse('(""<|>x)').errors and FMT.parse('("k")').errors  # no kind; no values
    assert FMT.parse(None).errors == ["expected text, got NoneType"]  # not even text: still no raise


_SAFE = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r()<|>#\"'`"),
                max_size=12).map(str.strip)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.text(alphabet="abcdefgh_", min_size=1, max_size=8),
                          st.lists(_SAFE, min_size=1, max_size=4)), max_size=6))
def test_any_records_without_delimiters_in_their_values_round_trip(rows):
    records = [Record(k, tuple(vs)) for k, vs in rows]
    assert FMT.parse(FMT.format(records)).records == records


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=300))
def test_the_parser_never_raises_on_any_text(text):
    r = FMT.parse(text)
    assert isinstance(r, ParseResult)
    assert all(isinstance(x, Record) and x.kind for x in r.records)


def _mutate(text: str, rng: random.Random) -> str:
    """One random edit a decoder might make: drop, repeat, swap or insert a piece (delimiters too)."""
    pieces = ["<|>", "##", "<|START|>", "<|END|>", "(", ")", '"', "\n", "\x00", "\udcff", "{", "é"]
    i = rng.randrange(len(text) + 1)
    j = min(len(text), i + rng.randint(1, 8))
    op = rng.randrange(4)
    if op == 0:
        return text[:i] + text[j:]
    if op == 1:
        return text[:i] + text[i:j] * 2 + text[j:]
    if op == 2:
        return text[:i] + text[j:] + text[i:j]
    return text[:i] + rng.choice(pieces) + text[i:]


def test_seeded_mutations_of_a_good_answer_never_raise():
    rng = random.Random(0)
    good = FMT.format(RECORDS)
    for _ in range(500):
        text = good
        for _ in range(rng.randint(1, 6)):
            text = _mutate(text, rng)
        r = FMT.parse(text)
        assert isinstance(r.records, list) and isinstance(r.errors, list)
        assert len(r.records) + len(r.errors) >= 1
