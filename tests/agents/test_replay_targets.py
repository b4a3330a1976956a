"""The replay buffer (ring wrap-around, uniform seeded sampling of stored rows only) and the
target-network updates (hard copy, Polyak formula), the TD target and the epsilon schedule."""

import numpy as np
import pytest
import torch

from imo.agents.dqn import QNetwork, hard_update, linear_schedule, polyak_update, td_targets
from imo.agents.replay import ReplayBuffer


def _fill(buf: ReplayBuffer, n: int) -> None:
    for i in range(n):
        buf.add(np.full(2, i), i % 3, float(i), np.full(2, i + 1), i % 2 == 0)


def test_ring_wraps_and_keeps_the_newest():
    buf = ReplayBuffer(capacity=4, obs_dim=2, n_actions=3, seed=0)
    _fill(buf, 6)
    assert len(buf) == 4 and buf.pos == 2 and buf.added == 6
    assert sorted(buf.obs[:, 0].tolist()) == [2, 3, 4, 5]          # 0 and 1 overwritten
    assert buf.obs[0, 0] == 4 and buf.obs[1, 0] == 5               # in their slots
    assert buf.rewards[0] == 4.0 and buf.next_obs[0, 0] == 5 and buf.terminated[0] == 1.0


def test_sampling_draws_only_stored_rows_uniformly_and_is_seeded():
    buf = ReplayBuffer(capacity=10, obs_dim=2, n_actions=3, seed=7)
    _fill(buf, 3)
    b = buf.sample(3000)
    assert b.index.max() < 3 and set(b.obs[:, 0].tolist()) == {0, 1, 2}
    counts = np.bincount(b.index, minlength=3)
    assert counts.min() > 850  # 1000 expected each; 850 is more than 5 standard deviations away
    assert (b.rewards == b.obs[:, 0]).all() and (b.next_obs[:, 0] == b.obs[:, 0] + 1).all()
    again = ReplayBuffer(capacity=10, obs_dim=2, n_actions=3, seed=7)
    _fill(again, 3)
    assert (again.sample(3000).index == b.index).all()
    other = ReplayBuffer(capacity=10, obs_dim=2, n_actions=3, seed=8)
    _fill(other, 3)
    assert (other.sample(3000).index != b.index).any()
    with pytest.raises(ValueError):
        ReplayBuffer(capacity=5, obs_dim=2, n_actions=3).sample(1)


def test_hard_update_makes_target_equal_online_and_independent():
    torch.manual_seed(0)
    online, target = QNetwork(3, 2, (8,)), QNetwork(3, 2, (8,))
    assert not all(torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters(), strict=True))
    hard_update(target, online)
    assert all(torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters(), strict=True))
    with torch.no_grad():
        next(online.parameters()).add_(1.0)  # a copy, not shared storage
    assert not torch.equal(next(online.parameters()), next(target.parameters()))


@pytest.mark.parametrize("tau", [0.005, 0.3, 1.0])
def test_polyak_update_follows_its_formula(tau):
    torch.manual_seed(1)
    online, target = QNetwork(3, 2, (8,)), QNetwork(3, 2, (8,))
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, online, tau)
    for t, o, b in zip(target.parameters(), online.parameters(), before, strict=True):
        torch.testing.assert_close(t, tau * o + (1 - tau) * b)
        if tau < 1:
            assert not torch.equal(t, o)


def test_td_target_masks_actions_and_stops_at_termination():
    q_next = torch.tensor([[1.0, 5.0, 9.0], [1.0, 5.0, 9.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True], [True, True, True]])
    y = td_targets(q_next, torch.tensor([1.0, 1.0, 3.0]), torch.tensor([0.0, 0.0, 1.0]), mask, 0.5)
    torch.testing.assert_close(y, torch.tensor([1 + 0.5 * 5, 1 + 0.5 * 9, 3.0]))


def test_linear_schedule():
    assert linear_schedule(1.0, 0.05, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.05, 100, 50) == pytest.approx(0.525)
    assert linear_schedule(1.0, 0.05, 100, 100) == pytest.approx(0.05)
    assert linear_schedule(1.0, 0.05, 100, 10_000) == pytest.approx(0.05)
