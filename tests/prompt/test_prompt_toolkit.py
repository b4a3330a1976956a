"""The builder's order and knobs, the abbreviation table, typed retries, the generated tasks and
the exact checkers."""

import json

import pytest

from imo.prompt.abbrev import AbbreviationTable
from imo.prompt.builder import FieldSpec, PromptSpec, answer_text, build_messages, render_plain
from imo.prompt.score import score_answer, summarize
from imo.prompt.tasks import FIELDS, generate, make_item, shots_for
from imo.prompt.typed import answer_model, ask_typed, find_json_object

# -- builder ------------------------------------------------------------------------------------


def _user(spec, item):
    return build_messages(spec, item.fields, item.example())[-1]["content"]


def test_context_comes_first_as_indented_json_then_the_strict_typed_instruction():
    item = generate("plain", 1, seed=3)[0]
    text = _user(PromptSpec(), item)
    ctx = text.index("Context")
    ins = text.index("Instruction")
    assert ctx < ins and text.index("----------") < ctx
    assert json.dumps({"text": item.text}, indent=4) in text
    assert "respond strictly in the following JSON format, without additional keys or text" in text
    for f in item.fields:
        assert f'"{f.name}": "<{f.type}: {f.description}>"' in text
        assert f"- {f.name}: {json.dumps(f.default)}" in text
    assert "Do not make any assumptions" in text
    flipped = _user(PromptSpec(order="instruction-first"), item)
    assert flipped.index("Instruction") < flipped.index("Context")


def test_each_knob_removes_only_its_own_piece():
    item = generate("abbrev", 3, seed=0)[2]
    base = _user(PromptSpec(), item)
    assert "Do not make any assumptions" not in _user(PromptSpec(defaults=False), item)
    assert "strictly" not in _user(PromptSpec(strict=False), item)
    untyped = _user(PromptSpec(types=False), item)
    assert '"<integer' not in untyped and all(f'"{f.name}": "..."' in untyped for f in item.fields)
    prose = _user(PromptSpec(json_context=False), item)
    assert item.text in prose and '"text":' not in prose and "----------" not in prose
    expanded = _user(PromptSpec(expand=True), item)
    assert expanded != base and item.text not in expanded
    records = _user(PromptSpec(answer="records"), item)
    assert '("field"<|><key><|><value>)##' in records and "<|START|>" in records


def test_shots_are_answered_examples_of_the_same_kind_from_another_seed():
    item = generate("plain", 1, seed=0)[0]
    shots = shots_for(item, 2, seed=0)
    msgs = build_messages(PromptSpec(shots=2), item.fields, item.example(), shots)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    for shot, answer in zip(shots, [msgs[2], msgs[4]], strict=True):
        assert json.loads(answer["content"]) == {f.name: f.default if shot.values[f.name] is None
                                                 else shot.values[f.name] for f in item.fields}
    assert all(item.text not in m["content"] for m in msgs[1:5])
    with pytest.raises(ValueError, match="2 shots"):
        build_messages(PromptSpec(shots=2), item.fields, item.example(), shots[:1])
    plain = render_plain(msgs)
    assert plain.startswith("System: ") and plain.endswith("\n\nAssistant:")


# -- abbreviations --------------------------------------------------------------------------------


def test_expander_and_detector():
    t = AbbreviationTable.default()
    assert t.expand("Dr. Ito, 34 y/o, mgr w/o a car, approx. 40 kg.") == \
        "Doctor Ito, 34 years old, manager without a car, approximately 40 kilograms."
    assert t.expand("kgs mgrs tyrs HQs") == "kgs mgrs tyrs HQs"  # whole tokens only
    spans = t.detect("The CEO of ZQX Corp. in Jan. met Sam.")
    assert [(s.text, s.expansion) for s in spans] == [
        ("CEO", "chief executive officer"), ("ZQX", None), ("Corp.", None), ("Jan.", "January")]
    more = t.extended({"ZQX": "Zeta Quartz Exchange"})
    assert "ZQX" not in more.unknown("ZQX") and "ZQX" in t.unknown("ZQX")  # the original is unchanged
    assert more.expand("ZQX") == "Zeta Quartz Exchange"
    with pytest.raises(ValueError, match="non-empty"):
        t.extended({" ": "x"})


# -- typed retries ---------------------------------------------------------------------------------

FIELDS_AGE = [FieldSpec("age", "integer", "age", -1), FieldSpec("city", "string", "city", "unknown")]


def test_find_json_object_is_total_and_says_whether_the_answer_was_only_json():
    assert find_json_object('{"a": 1}').strict
    loose = find_json_object('Sure: {"a": {"b": [1, "}"]}} ok')
    assert loose.value == {"a": {"b": [1, "}"]}} and not loose.strict and loose.outside == "Sure:   ok"
    assert find_json_object("{{{[[").value is None and find_json_object(b"{}").value is None
    assert find_json_object("[" * 5000 + "{}").value == {}


def test_retries_feed_the_error_back_and_keep_the_last_attempt():
    Answer = answer_model(FIELDS_AGE)
    seen = []
    replies = iter(['{"age": "old", "city": "Varn"}', 'Here: {"age": 34, "city": "Varn"}'])

    def call(msgs):
        seen.append(msgs)
        return next(replies)

    r = ask_typed(call, [{"role": "user", "content": "q"}], Answer, retries=2)
    assert r.ok and r.value.age == 34 and len(r.attempts) == 2
    assert r.attempts[0].error.startswith("age:") and r.attempts[1].error is None
    fed = seen[1][-1]["content"]
    assert seen[1][-2] == {"role": "assistant", "content": '{"age": "old", "city": "Varn"}'} and "age:" in fed
    bad = ask_typed(lambda m: '{"age": 1, "city": "x", "zip": 9}', [], Answer, retries=1)
    assert not bad.ok and len(bad.attempts) == 2 and "zip" in bad.last.error
    assert bad.last.text == '{"age": 1, "city": "x", "zip": 9}'


# -- tasks and checkers ----------------------------------------------------------------------------


def test_tasks_are_deterministic_and_their_truth_is_in_the_text():
    a = generate("plain", 60, seed=1)
    assert [x.to_dict() for x in a] == [x.to_dict() for x in generate("plain", 60, seed=1)]
    assert [x.text for x in a] != [x.text for x in generate("plain", 60, seed=2)]
    assert make_item("plain", 1, 7).to_dict() == a[7].to_dict()
    table = AbbreviationTable.default()
    negatives = hard = 0
    for item in a:
        assert set(item.truth) == {f.name for f in FIELDS[item.kind]}
        for k, v in item.truth.items():
            if v is not None:
                assert str(v) in item.text, (k, v, item.text)
            negatives += v is None
            hard += v is None and k in item.distractor_fields
        assert item.abbreviations == [] and all(s.expansion is None for s in table.detect(item.text))
    assert negatives > 60 and hard > 10  # true negatives, and some with a distractor's value for them
    for item in generate("abbrev", 60, seed=1):
        expanded = table.expand(item.text)
        for v in item.truth.values():
            if v is not None:
                assert str(v) in expanded  # the truth is readable once abbreviations are expanded
        assert all(any(s.expansion for s in table.detect(p)) for p in item.abbreviations)
    assert sum(bool(i.abbreviations) for i in generate("abbrev", 60, seed=1)) > 40


def test_checkers_score_perfect_wrong_and_distracted_answers_exactly():
    items = generate("plain", 40, seed=0)
    spec = PromptSpec()
    perfect = [score_answer(i, answer_text(spec, i.fields, i.truth), "json") for i in items]
    assert all(s.correct == s.fields == 4 and s.valid for s in perfect)
    recs = [score_answer(i, "Okay.\n" + answer_text(PromptSpec(answer="records"), i.fields, i.truth), "records")
            for i in items]
    assert all(s.correct == 4 and not s.valid and s.outside_words == 1 for s in recs)
    # a model that fills every absent field with a value: every negative is a false positive
    filled = {f.name: ("Nowhere" if f.type == "string" else 7) for f in items[0].fields}
    s = score_answer(items[0], json.dumps({**filled, **{k: v for k, v in items[0].truth.items() if v is not None}}),
                     "json")
    negatives = sum(v is None for v in items[0].truth.values())
    assert (s.fp, s.tn, s.tp) == (negatives, 0, 4 - negatives)
    # "no value" is understood in its usual spellings; a wrong number is a miss, not a hit
    item = next(i for i in items if i.kind == "person" and i.truth["age"] is not None)
    ans = {"age": str(item.truth["age"] + 1), "city": None, "occupation": "N/A", "employer": "unknown"}
    s = score_answer(item, json.dumps(ans), "json")
    assert s.tp == 0 and s.fp == 0 and s.fn == sum(v is not None for v in item.truth.values())
    assert score_answer(item, "garbage {", "json").fp == 0  # no answer: no false positives either
    summary = summarize(perfect, seed=0)
    assert summary.accuracy.value == summary.tpr.value == summary.tnr.value == 1.0
    assert summary.accuracy.low == 1.0 and summary.items == 40
