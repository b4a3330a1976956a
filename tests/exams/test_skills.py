"""The skills exam and the byte-edit attack: answers are read up to the newline, unknown skills
and runs that cannot express a task are refused, and the attack only tries edits that keep the
true answer."""

import pytest
import torch

import imo.exams.trick as trick
from imo import tasks
from imo.errors import ConfigError
from imo.exams.skills import SkillsSize, check_skills, skills_exam
from imo.exams.textmodel import answer, check_expressible
from imo.model import GPT, ModelConfig
from imo.runs.store import RunStore

TINY = SkillsSize(n_layer=1, n_embd=16, n_head=2, context_length=16, steps=3, batch_size=4,
                    n_train=40, n_test=5)


def test_skills_exam_tests_every_skill():
    out = skills_exam(["copy", "skill-sort"], TINY, seed=0)
    assert out["train_skills"] == ["skill-copy", "skill-sort"]
    assert set(out["accuracy"]) == set(tasks.names()) & set(out["accuracy"]) and len(out["accuracy"]) == 8
    assert all(0.0 <= a <= 1.0 for a in out["accuracy"].values())
    store = RunStore.open()
    assert store.get(out["run"])["status"] == "finished"
    again = skills_exam(["copy", "sort"], TINY, seed=0, store=store)
    assert again["run"] == out["run"]  # the same corpus and config: the run is reused


class NextByte(torch.nn.Module):
    """A mock model with known logits: the next byte is a fixed function of the current one."""

    def __init__(self, table: dict[str, str]):
        super().__init__()
        self.cfg = ModelConfig(n_layer=1, n_embd=16, n_head=2, context_length=32)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.table = {ord(a): ord(b) for a, b in table.items()}

    def forward(self, idx, targets=None):
        logits = torch.zeros(*idx.shape, 256)
        for (b, t), v in zip(torch.cartesian_prod(torch.arange(idx.shape[0]), torch.arange(idx.shape[1])).tolist(),
                             idx.flatten().tolist(), strict=True):
            logits[b, t, self.table.get(v, ord("?"))] = 1.0
        return logits, None


def test_answer_reads_up_to_the_newline():
    model = NextByte({"=": "x", "x": "y", "y": "\n", "\n": "z", "!": "q", "q": "q"})
    assert answer(model, ["copy ab=", "sort c!", "add 1+2="], max_new=5) == ["xy", "qqqqq", "xy"]


def test_bad_input():
    with pytest.raises(ConfigError, match="unknown skill 'juggle'; choose from: count, copy"):
        check_skills(["juggle"])
    small = GPT(ModelConfig(vocab_size=64, n_layer=1, n_embd=16, n_head=2, context_length=16))
    with pytest.raises(ConfigError, match="cannot express"):
        check_expressible(small, ["sort cab=abc"], "task skill-sort")
    learned = GPT(ModelConfig(n_layer=1, n_embd=16, n_head=2, context_length=4, pos="learned"))
    with pytest.raises(ConfigError, match="learned positions stop at 4"):
        check_expressible(learned, ["sort cab=abc"], "task skill-sort")


def test_byte_attack_keeps_the_true_answer(monkeypatch):
    task = tasks.get("skill-compare")
    prompt, right = "compare 47?52=", "<"
    seen = []
    real = trick.answer_scores

    def spy(model, prompts, ans):
        seen.extend(prompts)
        return real(model, prompts, ans)

    monkeypatch.setattr(trick, "answer_scores", spy)
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_embd=16, n_head=2, context_length=32)).eval()
    result = trick.min_byte_edits(model, task, prompt, right, k=2, beam=2, alphabet="0123456789?")
    assert result in (0, 1, 2, None)
    for q in seen:
        assert task.solve(q) == right  # the label source never changes
        assert q.startswith("compare ") and q.endswith("=") and len(q) == len(prompt)


def test_test_sets_do_not_depend_on_what_is_trained():
    from imo.exams.skills import skills_corpus

    a_path, a = skills_corpus(["skill-compare"], TINY, seed=1)
    b_path, b = skills_corpus(["skill-compare", "skill-copy"], TINY, seed=1)
    assert a == b and a_path != b_path
    text = a_path.read_text()
    assert "compare " in text and "copy " not in text
    for probs in a.values():  # no test problem is in the training file
        assert not any(f"{p.prompt}{p.answer}\n" in text for p in probs)


def test_an_interrupted_training_run_is_never_measured(monkeypatch, tmp_path):
    import imo.train.trainer as trainer
    from imo.errors import ImoError
    from imo.exams.textmodel import train_run

    store = RunStore.open()
    rid = store.create_run("train", "stopped", {"x": 1})
    store.set_status(rid, "interrupted")  # what a SIGTERM during training leaves
    monkeypatch.setattr(trainer, "train_or_reuse", lambda cfg, store, quiet, code_fingerprint=None: rid)
    with pytest.raises(ImoError, match="is interrupted, not finished"):
        train_run(tmp_path / "c.txt", TINY, 0, store)


def test_cli_difficulty_and_its_old_name(capsys):
    from imo.cli import main

    with pytest.raises(SystemExit) as e:
        main(["exam", "skills", "--difficulty", "1", "--level", "1"])
    assert e.value.code == 2 and "not both" in capsys.readouterr().err
    tiny = ["exam", "skills", "--train", "copy", "--steps", "2", "--layers", "1", "--width", "16",
            "--n-train", "100", "--n-test", "3", "-q"]
    with pytest.raises(SystemExit) as e:
        main([*tiny, "--level", "2"])  # the old spelling still works, and means --difficulty
    assert e.value.code == 0
    assert "copy" in capsys.readouterr().out
    assert RunStore.open().results("exam-skills")[0]["payload"]["size"]["difficulty"] == 2


def test_runs_are_reused_only_under_the_same_code_fingerprint(tmp_path):
    from imo.exams.textmodel import keyed_on, train_run

    store = RunStore.open()
    corpus = tmp_path / "c.txt"
    corpus.write_text("copy ab=ab\n" * 50)
    a = train_run(corpus, TINY, 0, store, code_fingerprint="code-a")
    assert train_run(corpus, TINY, 0, store, code_fingerprint="code-a") == a
    b = train_run(corpus, TINY, 0, store, code_fingerprint="code-b")  # other code: trained anew
    assert b != a and store.get(b)["fingerprint"] == "code-b"
    with keyed_on("code-a"):  # an exam that passes none takes its claim's
        assert train_run(corpus, TINY, 0, store) == a
    assert train_run(corpus, TINY, 0, store) not in (a, b)  # outside any claim: no fingerprint


def test_the_shared_format_puts_every_skills_shots_in_every_corpus():
    from imo.exams.skills import skills_corpus
    from imo.tasks.skills import skill_names

    size = SkillsSize(n_train=40, n_test=5, shots=3)
    path, tests = skills_corpus(["skill-copy"], size, seed=0)
    lines = path.read_text().splitlines()
    for name in skill_names(controls=True):
        verb = name.removeprefix("skill-")
        n = sum(line.startswith(verb + " ") for line in lines)
        assert n == (40 if verb == "copy" else 3), verb
        assert not {p.prompt + p.answer for p in tests[name]} & set(lines)  # held-out problems stay out
    ref, _ = skills_corpus([], size, seed=0, filler=True)
    ref_lines = ref.read_text().splitlines()
    assert sum(line.startswith("noise ") for line in ref_lines) == 40 and len(ref_lines) == 40 + 3 * 8


def test_transfer_shares_and_the_control():
    from imo.exams.skills import transfer_shares

    acc = {"none": {"sort": 0.1, "order": 0.0, "copy": 0.2},
           "sort": {"sort": 0.9, "order": 0.8, "copy": 0.25},
           "order": {"sort": 0.5, "order": 0.8, "copy": 0.2},
           "copy": {"sort": 0.0, "order": 0.0, "copy": 0.22}}
    got = transfer_shares(acc, [("sort", "order"), ("copy", "sort"), ("sort", "copy"), ("order", "sort")], 0.25)
    assert got == {("sort", "order"): 1.0, ("copy", "sort"): 0.0, ("order", "sort"): 0.5}  # clipped; copy
    # (own gain 0.02) is below the floor and counts for nothing


def test_the_control_is_its_skill_under_another_verb():
    import random

    sort, order = tasks.get("skill-sort"), tasks.get("skill-order")
    rng = random.Random(0)
    for _ in range(50):
        p = order.generate(rng, 1)
        text = p.prompt.removeprefix("order ")
        assert order.solve(p.prompt) == sort.solve("sort " + text) == p.answer
    assert sort.solve("order cab=") is None and order.solve("sort cab=") is None
