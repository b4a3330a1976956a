"""`imo agent`: help, clean errors (exit 2), a run in the store that `imo agent eval` reads."""

import importlib
import sys

import pytest
from imo_cli import imo

from imo.errors import ImoError
from imo.runs.store import RunStore


def test_help_and_clean_errors(capsys):
    assert imo("agent", "train", "--help") == 0 and "--steps" in capsys.readouterr().out
    for args, says in [(("--env", "Nope-v0"), "unknown env 'Nope-v0'"),
                       (("--env", "CartPole-v1", "--steps", "100"), "ends before learning starts"),
                       (("--env", "imo/Chain-v0", "--tau", "0"), "tau must be in (0, 1]"),
                       (("--env", "imo/Chain-v0,imo/Chain-v0"), "lists a task twice"),
                       (("--env", "imo/Chain-v0", "--hidden", "a,b"), "--hidden must be"),
                       (("--env", "imo/Chain-v0", "--per-task-heads"), "needs several tasks"),
                       (("--env", "imo/Chain-v0", "--popart"), "--popart needs several tasks")]:
        assert imo("agent", "train", *args) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
    assert imo("agent", "eval", "nosuchrun") == 2


def test_train_then_eval(capsys):
    pytest.importorskip("gymnasium")
    assert imo("agent", "train", "--env", "imo/Chain-v0", "--steps", "400", "--learning-starts",
               "100", "--hidden", "16", "--eval-episodes", "3") == 0
    out = capsys.readouterr().out
    assert "step " in out and "mean return" in out and "goal rate" in out
    store = RunStore.open()
    (run,) = store.list(kind="agent-dqn")
    assert {"q", "curve"} <= set(store.get(run["id"])["artifacts"])
    assert run["figures"]["steps"] == 400
    assert imo("agent", "eval", run["id"][:6], "--episodes", "3") == 0
    again = capsys.readouterr().out
    assert again.strip() == out.strip().splitlines()[-1]  # the same seeds give the same figure
    assert imo("agent", "eval", run["id"], "--episodes", "0") == 2
    # several tasks with a head each: eval rebuilds the heads from agent.json
    assert imo("agent", "train", "--env", "imo/Chain-v0,imo/Reach-v0", "--steps", "300",
               "--learning-starts", "100", "--hidden", "16", "--per-task-heads",
               "--eval-episodes", "2", "-q") == 0
    trained = capsys.readouterr().out.strip().splitlines()[-2:]
    multi = next(r for r in store.list(kind="agent-dqn") if r["id"] != run["id"])
    assert imo("agent", "eval", multi["id"], "--episodes", "2") == 0
    assert capsys.readouterr().out.strip().splitlines() == trained


def test_missing_gymnasium_is_one_line(monkeypatch, capsys):
    from imo.agents import require_gymnasium

    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now fails
    with pytest.raises(ImoError, match="gymnasium") as e:
        require_gymnasium()
    assert "imo[agents]" in e.value.hint
    # the CLI module imports without it (so `imo --help` works), and training says what to install
    for name in [m for m in sys.modules if m.startswith("imo.agents")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.import_module("imo.agents.cli")
    assert imo("agent", "--help") == 0
    assert imo("agent", "train", "--env", "imo/Chain-v0") == 2
    err = capsys.readouterr().err
    assert "needs gymnasium" in err and "imo[agents]" in err and "Traceback" not in err


def test_several_tasks_take_the_first_recipe_and_the_most_steps():
    from imo.agents import envs
    from imo.agents.cli import _config
    from imo.agents.dqn import DQNConfig

    cfg = _config(["Acrobot-v1", "imo/Chain-v0"], {})
    assert cfg == DQNConfig()  # Acrobot's recipe is CleanRL's, DQNConfig's defaults
    cfg = _config(["CartPole-v1"], {})
    assert cfg == DQNConfig(**envs.CARTPOLE) and cfg.steps == 50_000 and cfg.select_every > 0
    cfg = _config(["imo/Chain-v0", "imo/Reach-v0"], {"seed": 4})
    chain = envs.spec("imo/Chain-v0").recipe
    assert cfg.lr == chain["lr"] and cfg.steps == envs.spec("imo/Reach-v0").recipe["steps"]
    assert cfg.seed == 4


def test_strip_renders_an_episode(tmp_path, capsys):
    pytest.importorskip("gymnasium")
    pytest.importorskip("pygame")
    assert imo("agent", "train", "--env", "CartPole-v1", "--steps", "300", "--learning-starts",
               "100", "--hidden", "8", "--select-every", "0", "--eval-episodes", "1", "-q") == 0
    run = RunStore.open().list(kind="agent-dqn")[0]["id"]
    out = tmp_path / "strip.png"
    assert imo("agent", "strip", run, "-o", str(out), "--frames", "3") == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    said = capsys.readouterr().out
    assert "CartPole-v1: return" in said and str(out) in said
    for args, says in [((), "exists"), (("--force", "--task", "Acrobot-v1"), "was not trained on"),
                       (("--force", "--frames", "0"), "--frames must be")]:
        assert imo("agent", "strip", run, "-o", str(out), *args) == 2
        assert says in capsys.readouterr().err
