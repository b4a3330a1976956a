"""The scene generator repeats bit for bit from a seed and obeys its box; quadruplets are built
from the same frames; `imo exam physics` runs and fails cleanly."""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("pymunk")

from imo.cli import main  # noqa: E402
from imo.errors import ConfigError  # noqa: E402
from imo.physics import baselines, contact, quadruplets  # noqa: E402
from imo.physics.scenes import SceneConfig, generate  # noqa: E402

CFG = SceneConfig(balls=3, seconds=2.0)


def test_same_seed_same_frames_in_any_order():
    a = generate(11, CFG)
    for s in (3, 4, 5):
        generate(s, CFG)  # other scenes in between change nothing
    b = generate(11, CFG)
    assert a.states.tobytes() == b.states.tobytes()
    assert (a.masses == b.masses).all() and (a.walls == b.walls).all()
    assert a.contacts.tobytes() == b.contacts.tobytes()
    assert a.states.shape == (CFG.frames, 3, 4) == (121, 3, 4)
    c = generate(12, CFG)
    assert not np.array_equal(a.states, c.states)


def test_balls_stay_in_the_box_and_lose_energy():
    for seed in range(5):
        s = generate(seed, CFG)
        xy = s.states[..., :2]
        # impacts overlap the wall inside a step, but no centre ever crosses it (no tunnelling)
        assert (xy > 0).all() and (xy[..., 0] < CFG.width).all() and (xy[..., 1] < CFG.height).all()
        energy = (0.5 * s.masses * (s.states[..., 2:] ** 2).sum(-1)
                  + s.masses * CFG.gravity * s.states[..., 1]).sum(-1)  # (frames,)
        assert energy[-1] < energy[0]  # elasticity 0.8 and friction: no energy gain
        # free flight before any contact follows the ballistic formula
        v0 = s.states[0, :, 2:]
        one = s.states[1, :, :2] - s.states[0, :, :2]
        assert np.allclose(one[:, 0], v0[:, 0] / CFG.hz, atol=1e-9)


def test_contacts_are_real_touches_and_labels_follow_them():
    cfg = SceneConfig(balls=3, seconds=3.5)
    scenes = [generate(s, cfg) for s in range(12)]
    events = 0
    for s in scenes:
        for f, i, j in s.contacts:
            assert i < j
            # they touched during the steps of frame f: near each other at frame f - 1 or f
            d = [np.linalg.norm(s.states[k, i, :2] - s.states[k, j, :2]) for k in (f - 1, f)]
            assert min(d) < 2 * cfg.radius + 0.25
            events += 1
        label = contact.touches(s, 0, 1)
        c = s.contacts
        assert label == any(f > 30 and f <= 210 and (i, j) == (0, 1) for f, i, j in c)
    assert events > 0
    # two balls head-on at 2 m/s, 2 m apart, must meet; moving apart, they must not
    s = scenes[0]
    states = s.states.copy()
    states[30, 0, :2], states[30, 1, :2] = (4.0, 8.0), (6.0, 8.0)
    states[29, 0, :2], states[29, 1, :2] = (4.0 - 2 / 60, 8.0), (6.0 + 2 / 60, 8.0)
    head_on = replace(s, states=states)
    assert contact.constant_velocity_touches(head_on, 0, 1)
    states[29, 0, :2], states[29, 1, :2] = (4.0 + 2 / 60, 8.0), (6.0 - 2 / 60, 8.0)
    assert not contact.constant_velocity_touches(replace(s, states=states), 0, 1)
    assert contact.balanced_accuracy([True, False, True], [True, True, True]) == 0.5


def _frames(clip, t):
    return sorted([clip[0].frame(t), clip[1].frame(t)])


@pytest.mark.parametrize("kind", ["vanish", "teleport"])
def test_quadruplets_are_built_from_the_same_frames(kind):
    scene = generate(7, CFG)
    q = getattr(quadruplets, kind)(scene, ball=1, t=60)
    for t in range(CFG.frames):  # frame by frame, the impossible pair shows what the possible pair shows
        assert _frames(q.impossible, t) == _frames(q.possible, t)
    for imp in q.impossible:  # ... yet each impossible clip is neither possible clip
        assert all(any(imp.frame(t) != p.frame(t) for t in range(CFG.frames)) for p in q.possible)
    i1 = q.impossible[0]
    assert all(i1.frame(t) == q.possible[0].frame(t) for t in range(60))
    assert all(i1.frame(t) == q.possible[1].frame(t) for t in range(60, CFG.frames))
    if kind == "teleport":
        jump = np.linalg.norm(i1.positions[60, 1] - i1.positions[59, 1])
        assert jump > 3 * CFG.radius
        # the possible clips are real simulations: the moved ball's scene regenerates exactly
        assert q.possible[0].positions.tobytes() == scene.states[:, :, :2].tobytes()
    with pytest.raises(ConfigError):
        getattr(quadruplets, kind)(scene, ball=3, t=60)


def test_ballistic_surprise_flags_teleports():
    quads = [quadruplets.teleport(generate(s, CFG), 0, 60) for s in range(10)]
    assert baselines.relative_error(quads, CFG.hz, CFG.gravity) <= 0.2


def test_exam_cli(capsys, tmp_path):
    out = tmp_path / "p.json"
    assert _run("exam", "physics", "--scenes", "5", "--seconds", "2", "-o", str(out)) == 0
    text = capsys.readouterr().out
    assert "ballistic" in text and "teleport" in text and out.exists()
    assert "contact prediction skipped" in text  # 2 s scenes are too short for it
    assert _run("exam", "physics", "--scenes", "5", "-o", str(out)) == 2  # no overwrite
    assert "--force" in capsys.readouterr().err
    assert _run("exam", "physics", "--balls", "0") == 2
    assert "balls must be in 1..16" in capsys.readouterr().err


def _run(*args):
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0
