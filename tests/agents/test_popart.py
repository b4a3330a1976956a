"""PopArt keeps every Q-value when its statistics move, and learns each task's own scale."""

import pytest
import torch

from imo.agents.dqn import DQNConfig, QNetwork
from imo.agents.popart import PopArt
from imo.errors import ConfigError


def test_update_preserves_outputs_and_tracks_each_task():
    torch.manual_seed(0)
    tasks, actions = 2, 3
    online, target = QNetwork(4 + tasks, actions, (8,), tasks), QNetwork(4 + tasks, actions, (8,), tasks)
    obs = torch.randn(10, 4 + tasks)
    obs[:, 4:] = 0
    obs[:5, 4], obs[5:, 5] = 1, 1
    task = obs[:, 4:].argmax(1)
    popart = PopArt(tasks, beta=0.5)
    for _ in range(5):  # task 0's targets near 300, task 1's near -1
        before = [popart.unnormalise(net(obs), task) for net in (online, target)]
        y = torch.where(task == 0, 300 + torch.randn(10), -1 + 0.1 * torch.randn(10))
        popart.update_(y, task, [online.net[-1], target.net[-1]], actions)
        for net, b in zip((online, target), before, strict=True):
            torch.testing.assert_close(popart.unnormalise(net(obs), task), b, rtol=1e-5, atol=1e-3)
    assert popart.mu[0] > 250 and abs(popart.mu[1] + 1) < 0.5
    assert popart.sigma[0] > 10 * popart.sigma[1]
    y = torch.tensor([300.0, -1.0])
    t = torch.tensor([0, 1])
    torch.testing.assert_close(popart.unnormalise(popart.normalise(y, t), t), y)


def test_popart_trains_and_needs_per_task_heads():
    pytest.importorskip("gymnasium")
    from imo.agents import envs
    from imo.agents.dqn import train

    with pytest.raises(ConfigError, match="per_task_heads"):
        DQNConfig(popart=True).check()
    env = envs.MultiTaskEnv(["imo/Chain-v0", "imo/Reach-v0"])
    cfg = DQNConfig(steps=400, learning_starts=100, train_every=1, batch_size=32, hidden=(16,),
                    target_every=50, per_task_heads=True, popart=True, popart_beta=0.01, seed=1)
    result = train(env, cfg)
    assert {e["task"] for e in result.episodes} == {0, 1}
    assert all(torch.isfinite(p).all() for p in result.q.parameters())
