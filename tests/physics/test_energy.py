"""Energy-gain quadruplets are minimal sets: the impossible pair shows the possible pair's
frames at every t; position is continuous at the splice, and only the speed jumps."""

import numpy as np
import pytest

pytest.importorskip("pymunk")

from imo.errors import ConfigError  # noqa: E402
from imo.physics import energy  # noqa: E402
from imo.physics.scenes import SceneConfig, generate  # noqa: E402

CFG = SceneConfig(balls=3, seconds=2.0)


def _frames(pair, t):
    return sorted([pair[0].frame(t), pair[1].frame(t)])


def test_energy_gain_is_built_from_the_same_frames():
    scene = generate(7, CFG)
    q = energy.energy_gain(scene, ball=1, t=20)
    t = q.t
    assert 3 <= t <= 20
    for f in range(CFG.frames):
        assert _frames(q.impossible, f) == _frames(q.possible, f)
    gain, loss = q.impossible
    assert q.possible[0].positions.tobytes() == scene.states[:, :, :2].tobytes()
    assert all(any(gain.frame(f) != p.frame(f) for f in range(CFG.frames)) for p in q.possible)
    # no teleport: the position at t is where A's ball would have been
    a, b = q.possible
    assert np.linalg.norm(a.positions[t, 1] - b.positions[t, 1]) < 1e-6
    # the speed jumps by the factor at the splice (finite differences, one frame either side)
    v_before = np.linalg.norm(gain.positions[t, 1] - gain.positions[t - 1, 1])
    v_after = np.linalg.norm(gain.positions[t + 1, 1] - gain.positions[t, 1])
    assert v_after > 1.3 * v_before
    # B is a real simulation: the other balls move as in A until t
    assert np.array_equal(b.positions[: t + 1, [0, 2]], a.positions[: t + 1, [0, 2]])
    hz, g = CFG.hz, CFG.gravity

    def e(clip, f):  # ball 1's energy per unit mass over frame f -> f + 1
        v = (clip.positions[f + 1, 1] - clip.positions[f, 1]) * hz
        return 0.5 * v @ v + g * clip.positions[f + 1, 1, 1]
    assert e(gain, t) - e(gain, t - 2) > 0.5 * (e(a, t) - e(a, t - 2)) + 0.1  # energy from nowhere
    assert energy.energy_surprise(gain, hz, g) >= e(gain, t) - e(gain, t - 1) > 0
    with pytest.raises(ConfigError):
        energy.energy_gain(scene, ball=1, t=20, factor=0.9)
