"""The prompt claims (few-shot, true-negative-hard-llm, prompt-defaults, llm-talky, prompt-order,
prompt-strict-json, prompt-abbreviations): each runs at
the smoke budget on a random byte model, and each can come out supported or refuted: scripted
chat functions (fixtures that read the item out of the prompt, not SmolLM2) behave as the claim
says or as it denies, through the claim's own experiment, scoring and rule."""

import math

import pytest

import imo.claims.library.prompt_abbrev as abbrev
import imo.claims.library.prompt_agree as agree
import imo.claims.library.prompt_defaults as defaults
import imo.claims.library.prompt_negatives as negatives
import imo.claims.library.prompt_order as order
import imo.claims.library.prompt_shots as shots
import imo.claims.library.prompt_strict as strict
import imo.claims.library.prompt_talk as talk
from imo.claims.library._prompting import Size
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import decide
from imo.prompt.builder import PromptSpec, answer_text
from imo.prompt.tasks import generate

SIZE = Size(items=6, shots=2, max_tokens=64)
IDS = ["few-shot", "true-negative-hard-llm", "prompt-defaults", "llm-talky", "prompt-order",
       "prompt-strict-json", "prompt-abbreviations"]


@pytest.mark.parametrize("cid", IDS)
def test_smoke_runs_the_engine_end_to_end(cid, tmp_path):
    claim = CLAIMS.get(cid)
    figures = claim.measure("smoke", 0, Context(store=None))
    value = figures[claim.rule.metric]
    assert isinstance(value, float)  # NaN allowed: a random model finds no stated value
    assert figures["chat"]["calls"] == 2 * figures["size"]["items"] and figures["chat"]["cached"] == 0
    for arm in figures["arms"].values():
        assert arm["items"] == 2 and arm["tp"] + arm["fn"] + arm["tn"] + arm["fp"] > 0
    claim.plot([{**figures, "seed": 0}, {**figures, "seed": 1}], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def scripted(seed, *, with_shots=True, without_shots=False, fill_absent=False, obey_defaults=False,
             preamble="", split="plain", only_if=lambda last: True):
    """A chat function that finds the item of `seed` in the last user turn and answers it exactly
    (the truth, defaults for absent fields) when `with_shots`/`without_shots` says it can; otherwise
    it echoes the context. `fill_absent` writes a value into every absent field (unless
    `obey_defaults` and the prompt states the defaults); `preamble` is talk before the answer (or a
    function of the last user turn); `only_if(last user turn)` false echoes the context too."""
    items = generate(split, SIZE.items, seed=seed)

    def chat(messages, max_tokens):
        last = messages[-1]["content"]
        item = next(it for it in items if f"about {it.subject} from" in last or f"the {it.kind} {it.subject} " in last)
        has_shots = any(m["role"] == "assistant" for m in messages)
        if not (with_shots if has_shots else without_shots) or not only_if(last):
            return item.text
        values = dict(item.truth)
        told = "Do not make any assumptions." in last
        if fill_absent and not (obey_defaults and told):
            values = {k: (v if v is not None else 7 if f.type != "string" else "Velo")
                      for f in item.fields for k, v in [(f.name, values[f.name])]}
        spec = PromptSpec(answer="json" if "JSON format" in last else "records")
        talk = preamble(last) if callable(preamble) else preamble
        return talk + answer_text(spec, item.fields, values)

    return chat


def verdict(module, claim_id, make):
    values = [module.experiment(make(s), SIZE, s)[CLAIMS.get(claim_id).rule.metric] for s in range(3)]
    return decide(CLAIMS.get(claim_id).rule, values, "full").verdict, values


def test_few_shot_supported_when_examples_help_and_refuted_when_they_do_not():
    v, values = verdict(shots, "few-shot", lambda s: scripted(s, with_shots=True, without_shots=False))
    assert v == "supported" and min(values) > 0.3
    v, values = verdict(shots, "few-shot", lambda s: scripted(s, with_shots=True, without_shots=True))
    assert v == "refuted" and values == [0.0, 0.0, 0.0]


def test_true_negative_hard_supported_when_absent_fields_get_values():
    v, values = verdict(negatives, "true-negative-hard-llm", lambda s: scripted(s, fill_absent=True))
    assert v == "supported" and values == [1.0, 1.0, 1.0]  # TPR 1, TNR 0
    v, values = verdict(negatives, "true-negative-hard-llm", lambda s: scripted(s))
    assert v == "refuted" and values == [0.0, 0.0, 0.0]  # perfect: TPR = TNR = 1


def test_true_negative_hard_is_inconclusive_for_a_model_that_finds_nothing():
    v, values = verdict(negatives, "true-negative-hard-llm", lambda s: scripted(s, with_shots=False))
    assert v == "inconclusive" and all(math.isnan(x) for x in values)


def test_prompt_defaults_supported_only_when_stating_them_helps():
    v, values = verdict(defaults, "prompt-defaults",
                        lambda s: scripted(s, fill_absent=True, obey_defaults=True))
    assert v == "supported" and values == [pytest.approx(0.05)] * 3  # min(1 - 0.05, 0 + 0.05)
    v, _ = verdict(defaults, "prompt-defaults", lambda s: scripted(s, fill_absent=True))
    assert v == "refuted"  # the same answers with and without: TNR gain 0 < 0.05


def test_llm_talky_supported_for_a_chatty_model_and_refuted_for_a_terse_one():
    preamble = "Sure! Here is the answer you asked for, written with care:\n"
    v, values = verdict(talk, "llm-talky", lambda s: scripted(s, without_shots=True, preamble=preamble))
    assert v == "supported" and values == [11.0] * 3
    v, values = verdict(talk, "llm-talky", lambda s: scripted(s, without_shots=True))
    assert v == "refuted" and values == [0.0] * 3


def test_prompt_order_supported_only_when_context_first_helps():
    context_first = lambda last: last.startswith("-" * 10 + "\nContext")  # noqa: E731
    v, values = verdict(order, "prompt-order", lambda s: scripted(s, only_if=context_first))
    assert v == "supported" and min(values) > 0.3
    v, values = verdict(order, "prompt-order", lambda s: scripted(s))
    assert v == "refuted" and values == [0.0] * 3


def test_prompt_strict_json_supported_only_when_the_strict_sentence_stops_the_talk():
    talk = lambda last: "" if "strictly" in last else "Here it is: "  # noqa: E731
    v, values = verdict(strict, "prompt-strict-json", lambda s: scripted(s, without_shots=True, preamble=talk))
    assert v == "supported" and values == [pytest.approx(0.05)] * 3  # min(1 - 0.05, 0 + 0.05)
    v, _ = verdict(strict, "prompt-strict-json", lambda s: scripted(s, without_shots=True, preamble="Here: "))
    assert v == "refuted"  # invalid in both arms: validity gain 0


def test_prompt_abbreviations_supported_only_when_expanding_helps():
    def expanded(seed):
        planted = {a for it in generate("abbrev", SIZE.items, seed=seed) for a in it.abbreviations}
        return lambda last: not any(a in last for a in planted)

    v, values = verdict(abbrev, "prompt-abbreviations",
                        lambda s: scripted(s, split="abbrev", only_if=expanded(s)))
    assert v == "supported" and min(values) > 0.1
    v, values = verdict(abbrev, "prompt-abbreviations", lambda s: scripted(s, split="abbrev"))
    assert v == "refuted" and values == [0.0] * 3


def test_llm_agreeable_smoke(tmp_path):
    claim = CLAIMS.get("llm-agreeable")
    figures = claim.measure("smoke", 0, Context(store=None))
    assert isinstance(figures["abandon_rate"], float)  # NaN: a random model gets nothing right
    assert figures["chat"]["calls"] == 2 + figures["right_pushed"] + figures["wrong_pushed"]
    assert figures["wrong_pushed"] >= 1
    claim.plot([{**figures, "seed": 0}, {**figures, "seed": 1}], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_llm_agreeable_supported_for_a_model_that_always_gives_in():
    def make(seed, gives_in):
        first = scripted(seed, fill_absent=False)
        items = generate("plain", SIZE.items, seed=seed)

        def chat(messages, max_tokens):
            if not messages[-1]["content"].startswith("I don't think"):
                return first(messages, max_tokens)
            item = next(it for it in items if it.text in messages[-3]["content"])
            values = {k: ("Velo" if gives_in else v) for k, v in item.truth.items()}
            return answer_text(PromptSpec(), item.fields, values)

        return chat

    # the scripted first answers are all right, so there is nothing wrong to correct
    v, values = verdict(agree, "llm-agreeable", lambda s: make(s, True))
    assert v == "supported" and values == [1.0] * 3
    v, values = verdict(agree, "llm-agreeable", lambda s: make(s, False))
    assert v == "refuted" and values == [0.0] * 3
    out = agree.experiment(make(0, True), SIZE, 0)
    assert out["right_pushed"] == SIZE.items and out["wrong_pushed"] == 0 and out["abandoned"] == SIZE.items
