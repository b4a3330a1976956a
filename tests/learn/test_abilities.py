"""Ability decoders and courses: the loss sees only answer bytes, per-skill decoders are separate
and as large as the shared one, greedy scoring is exact, the course orders hold the same mix, and
tiny runs repeat exactly."""

import random

import pytest
import torch

from imo.learn import abilities as A
from imo.tasks import get

TINY = dict(steps=6, new_steps=4, n_train=40, n_test=6, batch=8, n_embd=16, n_head=2, head_hidden=8, eval_every=3)


def test_encode_puts_the_loss_on_the_answer_bytes_only():
    p = get("skill-sort").generate(random.Random(0), 1)
    idx, tgt, sk = A.encode([p], ["copy", "sort"])
    line = (p.prompt + p.answer + "\n").encode()
    assert idx[0].tolist() == list(line[:-1]) and sk.tolist() == [1]
    kept = [(i, t) for i, t in enumerate(tgt[0].tolist()) if t != -100]
    assert [t for _, t in kept] == list((p.answer + "\n").encode())
    assert kept[0][0] == len(p.prompt) - 1  # predicted from the '=' on


def test_decoders_have_equal_parameters_and_per_skill_ones_are_separate():
    cfg = A.SkillsRunConfig(**TINY)
    per, shared = A.SkillModel(cfg, "per-skill"), A.SkillModel(cfg, "shared")
    k = len(cfg.skills)
    assert shared.decoder_params() - per.decoder_params() == -(k - 1) * 256  # the k-1 extra output biases
    assert len(per.decoders) == k and len(shared.decoders) == 1
    batch = [get("skill-copy").generate(random.Random(i), 1) for i in range(4)]
    idx, tgt, sk = A.encode(batch, per.skills)
    torch.nn.functional.cross_entropy(per(idx, sk).view(-1, 256), tgt.view(-1), ignore_index=-100).backward()
    used = per.skills.index("copy")
    for i, dec in enumerate(per.decoders):
        grads = [p.grad for p in dec.parameters()]
        assert all(g is not None for g in grads) if i == used else all(g is None for g in grads), i


class Oracle(A.SkillModel):
    """Emits the true answer, then a newline: greedy scoring must give 100%."""

    def forward(self, idx, skill):
        out = torch.full((*idx.shape, 256), -1e9)
        for b in range(len(idx)):
            text = bytes(idx[b].tolist()).decode()
            prompt, _, sofar = text.partition("=")
            task = get(f"skill-{self.skills[int(skill[b])]}")
            target = (task.solve(prompt + "=") + "\n").encode()
            k = len(sofar.encode())
            out[b, -1, target[k] if k < len(target) else A.NEWLINE] = 0.0  # rows already done: anything
        return out


def test_greedy_scoring_is_exact():
    cfg = A.SkillsRunConfig(**TINY)
    tests = [get(f"skill-{s}").generate(random.Random(i), 2) for i, s in enumerate(cfg.skills * 3)]
    assert A.accuracy(Oracle(cfg, "shared"), tests) == 1.0
    mute = A.SkillModel(cfg, "shared")
    mute.forward = lambda idx, skill: torch.nn.functional.one_hot(torch.full(idx.shape, A.NEWLINE), 256).float()
    assert A.accuracy(mute, tests) == 0.0  # an empty answer is never right


@pytest.mark.parametrize("order", A.ORDERS)
def test_course_orders_hold_the_same_mix(order):
    rng = random.Random(0)
    days = [A.difficulty_at(order, t, 100, rng) for t in range(100)]
    assert 35 <= days.count(1) <= 65
    if order == "easy-to-hard":
        assert days == [1] * 50 + [2] * 50
    if order == "hard-to-easy":
        assert days == [2] * 50 + [1] * 50


def test_tiny_runs_repeat_exactly():
    cfg = A.SkillsRunConfig(**TINY)
    a, b = (A.interference_run("per-skill", cfg, seed=3) for _ in range(2))
    assert a["before"] == b["before"] and a["after"] == b["after"] and a["loss_new"] == b["loss_new"]
    assert set(a["before"]) == set(cfg.skills) - {cfg.new_skill}
    assert a["interference_points"] == pytest.approx(sum(a["drop_points"].values()) / len(a["drop_points"]))
    c = A.course_run("easy-to-hard", cfg, seed=3)
    assert [r["step"] for r in c["curve"]] == [3, 6] and c["final_mean"] == c["curve"][-1]["mean"]


@pytest.mark.parametrize("kw, fragment", [(dict(skills=("copy", "fly")), "--skills"),
                                          (dict(new_skill="sort", skills=("copy", "add")), "--new-skill"),
                                          (dict(n_embd=10, n_head=4), "--n-head"), (dict(steps=0), "--steps")])
def test_bad_config(kw, fragment):
    from imo.errors import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        A.SkillsRunConfig(**kw).check()
