"""feedback-beats-watching: the smoke figures hold the metric, the offline arms get the online
arm's schedule and transition count, and the rule can come out either way."""

import math

import pytest

pytest.importorskip("gymnasium")

from imo.agents import dqn, offline  # noqa: E402
from imo.claims.library import agents  # noqa: E402
from imo.claims.registry import CLAIMS, Context  # noqa: E402
from imo.claims.verdict import decide  # noqa: E402


def test_smoke_figures_and_equal_budgets(monkeypatch, tmp_path):
    calls = {"online": 0, "offline": 0}
    real_on, real_off = dqn._update, offline._update

    def on(*a):
        calls["online"] += 1
        return real_on(*a)

    def off(*a):
        calls["offline"] += 1
        return real_off(*a)

    monkeypatch.setattr(dqn, "_update", on)
    monkeypatch.setattr(offline, "_update", off)
    claim = CLAIMS.get("feedback-beats-watching")
    f = claim.measure("smoke", 0, Context(store=None))
    assert math.isfinite(f["online_minus_best_offline"])
    assert f["online_minus_best_offline"] == pytest.approx(
        f["online_return"] - max(f["offline_expert_return"], f["offline_random_return"]))
    assert calls["online"] > 0 and calls["offline"] == 2 * calls["online"]  # each offline arm: as many
    assert f["transitions"] == agents.SIZES["smoke"]["steps"]
    claim.plot([f, f], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_logged_transitions_are_the_policys():
    from imo.agents import envs

    buf, returns = offline.log_transitions(envs.make("CartPole-v1"), lambda o: 1, 300, seed=3)
    assert len(buf) == 300 and set(buf.actions.tolist()) == {1} and returns
    buf, _ = offline.log_transitions(envs.make("CartPole-v1"), None, 300, seed=3)
    assert set(buf.actions.tolist()) == {0, 1}


@pytest.mark.parametrize("online, verdict", [(500.0, "supported"), (200.0, "refuted")])
def test_rule_goes_either_way(monkeypatch, online, verdict):
    values = {"online": online, "expert": 150.0, "random": 200.0}
    made = iter(["expert", "random"] * 3)
    monkeypatch.setattr(offline, "train_offline", lambda *a: next(made))
    monkeypatch.setattr(dqn, "train", lambda env, cfg: dqn.TrainResult(dqn.QNetwork(4, 2, (4,)), cfg))
    monkeypatch.setattr(dqn, "evaluate", lambda q, env, seeds, *a, **kw: [
        {"return": values[q] if isinstance(q, str) else values["online"]}])
    claim = CLAIMS.get("feedback-beats-watching")
    got = [claim.measure("smoke", s, Context(store=None))["online_minus_best_offline"] for s in range(3)]
    assert got == pytest.approx([online - 200.0] * 3)
    got[0] += 1.0
    assert decide(claim.rule, got, "full").verdict == verdict
