"""The DQN learns the exact Q-function of a toy MDP, runs repeat under a seed, and the
multi-task wrapper keeps one observation format."""

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")

from imo.agents import envs  # noqa: E402
from imo.agents.dqn import DQNConfig, evaluate, train  # noqa: E402
from imo.errors import ConfigError  # noqa: E402

CHAIN = dict(learning_starts=300, buffer_size=5000, target_every=50, train_every=1,
             batch_size=64, lr=3e-3, exploration_fraction=0.3, gamma=0.9, hidden=(32,))


def test_value_iteration_matches_the_chain_in_closed_form():
    g, n, c = 0.9, 5, envs.CHAIN_STEP_COST
    q = envs.chain_q_star(n, g)
    k = n - 2 - np.arange(n - 1)  # steps that cost c before the step onto the goal
    right = c * (1 - g ** k) / (1 - g) + g ** k
    left = c + g * right[np.maximum(np.arange(n - 1) - 1, 0)]
    np.testing.assert_allclose(q[:, 1], right)
    np.testing.assert_allclose(q[:, 0], left)


@pytest.mark.parametrize("target", ["hard", "polyak"])
def test_dqn_learns_the_chains_q_star(target):
    gym = pytest.importorskip("gymnasium")
    envs.make("imo/Chain-v0")  # registers it
    # a time limit of 3 steps truncates most episodes: the targets must still bootstrap there
    env = gym.make("imo/Chain-v0", max_episode_steps=3)
    upd = dict(tau=1.0, target_every=50) if target == "hard" else dict(tau=0.05, target_every=1)
    cfg = DQNConfig(**{**CHAIN, **upd, "steps": 1500, "seed": 3})
    result = train(env, cfg, goal_on_terminate=True)
    goals = [e["goal"] for e in result.episodes]
    assert goals.count(False) > 100 and goals.count(True) > 100  # many episodes were truncated
    with torch.no_grad():
        learned = result.q(torch.eye(5)[:4]).numpy()
    np.testing.assert_allclose(learned, envs.chain_q_star(5, 0.9), atol=0.03)
    # and the greedy policy walks straight to the goal from every start
    evals = evaluate(result.q, envs.make("imo/Chain-v0"), range(10), goal_on_terminate=True)
    assert all(e["goal"] and e["length"] <= 4 for e in evals)


def test_a_seed_repeats_a_run_exactly():
    cfg = DQNConfig(**{**CHAIN, "steps": 700, "seed": 5})
    a, b = (train(envs.make("imo/Reach-v0"), cfg) for _ in range(2))
    assert [e["return"] for e in a.episodes] == [e["return"] for e in b.episodes]
    assert all(torch.equal(x, y) for x, y in zip(a.q.parameters(), b.q.parameters(), strict=True))
    c = train(envs.make("imo/Reach-v0"), DQNConfig(**{**CHAIN, "steps": 700, "seed": 6}))
    assert not all(torch.equal(x, y) for x, y in zip(a.q.parameters(), c.q.parameters(), strict=True))


def test_multi_task_env_pads_tags_and_masks():
    env = envs.MultiTaskEnv(["CartPole-v1", "imo/Chain-v0", "imo/Reach-v0"])
    assert env.observation_space.shape == (5 + 3,) and env.action_space.n == 3
    tasks = []
    for _ in range(4):
        obs, info = env.reset(seed=0)
        tasks.append(info["task"])
        onehot = obs[5:]
        assert onehot.sum() == 1 and onehot[info["task"]] == 1
        size = env.obs_sizes[info["task"]]
        assert (obs[size:5] == 0).all()
        assert env.action_mask().sum() == env.n_actions[info["task"]]
    assert tasks == [0, 1, 2, 0]  # round-robin
    obs, _ = env.reset(options={"task": 0})
    with pytest.raises(ValueError):
        env.step(2)  # CartPole has actions 0 and 1 only
    # the same seed gives the same first observation
    a, _ = env.reset(seed=4, options={"task": 2})
    b, _ = env.reset(seed=4, options={"task": 2})
    assert (a == b).all()


def test_multi_task_training_never_takes_a_missing_action():
    env = envs.MultiTaskEnv(["CartPole-v1", "imo/Reach-v0"])  # 2 and 3 actions
    cfg = DQNConfig(**{**CHAIN, "steps": 600, "seed": 2})
    result = train(env, cfg, goal_on_terminate=[False, True])  # step() raises on a missing one
    assert {e["task"] for e in result.episodes} == {0, 1}


def test_per_task_heads_keep_tasks_apart():
    from imo.agents.dqn import QNetwork

    torch.manual_seed(0)
    q = QNetwork(4 + 2, 3, (8,), tasks=2)
    obs = torch.randn(6, 6)
    obs[:, 4:] = 0
    obs[:3, 4], obs[3:, 5] = 1, 1  # rows 0-2 are task 0, rows 3-5 task 1
    q(obs)[:3].sum().backward()    # a loss on task 0's rows only
    head = q.net[-1]
    assert head.weight.grad[3:].abs().sum() == 0 and head.weight.grad[:3].abs().sum() > 0
    env = envs.MultiTaskEnv(["imo/Chain-v0", "imo/Reach-v0"])
    cfg = DQNConfig(**{**CHAIN, "steps": 400, "seed": 2, "per_task_heads": True})
    assert train(env, cfg).q.tasks == 2
    with pytest.raises(ConfigError, match="several tasks"):
        train(envs.make("imo/Chain-v0"), cfg)


def test_gradient_steps_and_selection_keep_the_best_validated_network(monkeypatch):
    from imo.agents import dqn

    calls = []
    real = dqn._update
    monkeypatch.setattr(dqn, "_update", lambda *a: calls.append(1) or real(*a))
    cfg = DQNConfig(**{**CHAIN, "steps": 700, "train_every": 4, "gradient_steps": 3,
                       "select_every": 100, "select_episodes": 4, "seed": 2})
    result = train(envs.make("imo/Chain-v0"), cfg, goal_on_terminate=True)
    assert len(calls) == 3 * len(range(300, 700, 4))  # 3 updates at every 4th step from 300
    # the network returned scores on the validation seeds what selection says it scored
    again = dqn.validation_score(result.q, envs.make("imo/Chain-v0"), 4)
    assert result.selected is not None and again == pytest.approx(result.selected["score"])
    assert result.selected["step"] in range(400, 701, 100)
