"""`imo agent ...`: train and evaluate DQN agents on gymnasium tasks.

    imo agent envs                                   # the environments and their recipes
    imo agent train --env CartPole-v1 --quiet        # the env's recipe (about a minute)
    imo agent train --env imo/Chain-v0,imo/Reach-v0 --steps 20000   # one network, two tasks
    imo agent train --env CartPole-v1,Acrobot-v1,MountainCar-v0 --popart   # the three-task recipe
    imo agent eval RUN --episodes 20
    imo agent strip RUN -o cartpole.png               # one greedy episode as a PNG strip
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option
EVAL_SEED0 = 10_000  # evaluation seeds start here, away from the training seeds

agent_app = typer.Typer(help="Agents that learn from environment feedback (DQN on gymnasium).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """`imo agent`, and `imo exam physics` (issue 21's other half), from one mount line."""
    from imo.exams.cli import app as exam_app
    from imo.physics import cli as physics_cli

    app.add_typer(agent_app, name="agent")
    physics_cli.register(exam_app)


def _env_names(env: str) -> list[str]:
    from imo.agents import envs

    names = [n.strip() for n in env.split(",") if n.strip()]
    if not names:
        raise ConfigError("--env is empty; give one env or a comma-separated list")
    for n in names:
        envs.spec(n)
    return names


def _config(names: list[str], overrides: dict):
    from imo.agents import envs, multitask
    from imo.agents.dqn import DQNConfig

    if multitask.is_suite(names):  # CartPole, Acrobot and MountainCar: the three-task recipe
        recipe = dict(multitask.RECIPE)
    else:  # several tasks: the first task's recipe, with the most steps of any
        recipe = dict(envs.spec(names[0]).recipe)
        recipe["steps"] = max(envs.spec(n).recipe.get("steps", DQNConfig.steps) for n in names)
    given = {k: v for k, v in overrides.items() if v is not None}
    fields = {**recipe, **given}
    steps = fields.get("steps", DQNConfig.steps)
    starts = fields.get("learning_starts", DQNConfig.learning_starts)
    if "learning_starts" not in given and starts >= steps:
        raise ConfigError(f"--steps {steps} ends before learning starts (step {starts})",
                          hint="pass --learning-starts below --steps")
    cfg = DQNConfig(**fields)
    cfg.check()
    return cfg


def _hidden(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--hidden must be comma-separated integers, got {text!r}") from None


def _evaluate(q, names: list[str], episodes: int) -> list[dict]:
    from imo.agents import dqn, envs, multitask

    seeds = range(EVAL_SEED0, EVAL_SEED0 + episodes)
    if multitask.is_suite(names):  # with normalised scores against the single-task recipes
        return multitask.score(q, seeds, names)
    env = envs.make_tasks(names)
    rows = []
    for i, name in enumerate(names):
        goal = envs.spec(name).goal_on_terminate
        eps = dqn.evaluate(q, env, seeds, goal, task=i if len(names) > 1 else None)
        row = {"env": name, "mean_return": sum(e["return"] for e in eps) / len(eps)}
        if goal:
            row["goal_rate"] = sum(e["goal"] for e in eps) / len(eps)
        rows.append(row)
    env.close()
    return rows


def _print_eval(rows: list[dict]) -> None:
    for r in rows:
        line = f"{r['env']}: mean return {r['mean_return']:.2f}"
        if "goal_rate" in r:
            line += f", goal rate {100 * r['goal_rate']:.0f}%"
        if "normalised" in r:
            line += f", normalised {r['normalised']:.3f} (random {r['random_return']:.2f})"
        typer.echo(line)
    if rows and all("capped" in r for r in rows) and len(rows) > 1:
        mean = sum(r["capped"] for r in rows) / len(rows)
        typer.echo(f"mean normalised score {mean:.3f} (each capped at 1)")


@agent_app.command("envs")
def envs_command() -> None:
    """List the environments imo's agents know, with their default step budgets."""
    from imo.agents import envs
    from imo.agents.dqn import DQNConfig
    from imo.console import print_table

    print_table(["env", "default steps", "recipe", "about"],
                [(s.name, s.recipe.get("steps", DQNConfig.steps), s.recipe_name, s.about)
                 for s in envs.ENVS.values()])


@agent_app.command("train")
def train_command(
    env: Annotated[str, Opt(help="An env name, or several comma-separated for one multi-task "
                                 "network (see `imo agent envs`).")] = "CartPole-v1",
    steps: Annotated[int | None, Opt(help="Environment steps (default: the env's recipe).")] = None,
    seed: Annotated[int, Opt(help="Seed of the network, exploration, replay and env.")] = 1,
    lr: Annotated[float | None, Opt(help="Adam learning rate.")] = None,
    gamma: Annotated[float | None, Opt(help="Discount.")] = None,
    buffer_size: Annotated[int | None, Opt(help="Replay capacity in transitions.")] = None,
    batch_size: Annotated[int | None, Opt(help="Transitions per update.")] = None,
    learning_starts: Annotated[int | None, Opt(help="Steps before the first update.")] = None,
    train_every: Annotated[int | None, Opt(help="Steps between updates.")] = None,
    gradient_steps: Annotated[int | None, Opt(help="Gradient steps at each update.")] = None,
    target_every: Annotated[int | None, Opt(help="Steps between target-network updates.")] = None,
    tau: Annotated[float | None, Opt(help="Target update weight: 1 copies (hard), <1 is Polyak.")] = None,
    exploration_fraction: Annotated[float | None, Opt(help="Share of steps over which epsilon falls.")] = None,
    end_e: Annotated[float | None, Opt(help="Final epsilon.")] = None,
    select_every: Annotated[int | None, Opt(help="Every so many steps, play greedy validation episodes and keep the best network (0: keep the last).")] = None,
    select_episodes: Annotated[int | None, Opt(help="Validation episodes per check (seeds 20000, ...).")] = None,
    hidden: Annotated[str | None, Opt(help="Hidden layer sizes, comma-separated (default 120,84).")] = None,
    per_task_heads: Annotated[bool, Opt("--per-task-heads", help="Several tasks: one output head per task on a shared trunk.")] = False,
    popart: Annotated[bool, Opt("--popart", help="Per-task PopArt normalisation of the values; implies --per-task-heads.")] = False,
    eval_episodes: Annotated[int, Opt(help="Greedy evaluation episodes per task afterwards.")] = 10,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Only the final lines.")] = False,
) -> None:
    """Train a DQN; the run (weights, curve, metrics) goes to the run store."""
    names = _env_names(env)
    if eval_episodes < 1:
        raise ConfigError("--eval-episodes must be >= 1")
    if (per_task_heads or popart) and len(names) < 2:
        flag = "--popart" if popart else "--per-task-heads"
        raise ConfigError(f"{flag} needs several tasks (--env A,B,...)")
    per_task_heads = per_task_heads or popart  # PopArt normalises each task's own head
    cfg = _config(names, {
        "steps": steps, "seed": seed, "lr": lr, "gamma": gamma, "buffer_size": buffer_size,
        "batch_size": batch_size, "learning_starts": learning_starts, "train_every": train_every,
        "gradient_steps": gradient_steps, "select_every": select_every,
        "select_episodes": select_episodes,
        "target_every": target_every, "tau": tau, "exploration_fraction": exploration_fraction,
        "end_e": end_e, "hidden": _hidden(hidden), "per_task_heads": per_task_heads or None,
        "popart": popart or None})
    import torch

    from imo.agents import dqn, envs, runs
    from imo.runs.store import RunStore

    torch.set_num_threads(1)  # small networks: one thread is fastest and leaves cores to others
    task_env = envs.make_tasks(names)
    goals = [envs.spec(n).goal_on_terminate for n in names]
    store = RunStore.open()
    run_id = runs.start_run(store, names, cfg)
    typer.echo(f"run {run_id}  {runs.run_name(names, cfg)}  {','.join(names)}  {cfg.steps} steps")
    every = max(cfg.steps // 20, 1)
    state = {"next": every, "recent": []}

    def progress(step: int, episode: dict) -> None:
        state["recent"] = (state["recent"] + [episode["return"]])[-20:]
        if not quiet and step >= state["next"]:
            state["next"] += every * ((step - state["next"]) // every + 1)
            e = dqn.linear_schedule(cfg.start_e, cfg.end_e, cfg.exploration_fraction * cfg.steps, step)
            mean = sum(state["recent"]) / len(state["recent"])
            typer.echo(f"step {step:>8}/{cfg.steps}  return(last 20) {mean:9.2f}  epsilon {e:.3f}")

    try:
        result = dqn.train(task_env, cfg, progress, goals)
    except KeyboardInterrupt:
        store.set_status(run_id, "interrupted")
        raise
    except BaseException:
        store.set_status(run_id, "failed")
        raise
    figures = runs.finish_run(store, run_id, names, result,
                              int(task_env.observation_space.shape[0]), int(task_env.action_space.n))
    task_env.close()
    typer.echo(f"trained {cfg.steps} steps in {result.seconds:.1f} s ({figures['steps_per_s']} steps/s), "
               f"{len(result.episodes)} episodes; curve: {store.run_dir(run_id) / 'curve.png'}")
    if result.selected:
        typer.echo(f"kept the network of step {result.selected['step']} (validation mean return "
                   f"{result.selected['score']:.2f})")
    rows = _evaluate(result.q, names, eval_episodes)
    store.put_result("agent-eval", run_id, {"episodes": eval_episodes, "seed0": EVAL_SEED0,
                                            "tasks": rows}, [run_id])
    _print_eval(rows)


@agent_app.command("eval")
def eval_command(
    run: Annotated[str, typer.Argument(help="Run id or unique prefix of an `imo agent train` run.")],
    episodes: Annotated[int, Opt(help="Greedy episodes per task, seeds 10000, 10001, ...")] = 10,
) -> None:
    """Evaluate a trained agent on a fixed list of seeds: mean return (and goal rate)."""
    if episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    import torch

    from imo.agents import runs
    from imo.runs.store import RunStore

    torch.set_num_threads(1)
    store = RunStore.open()
    run_id = store.resolve(run)
    if store.get(run_id)["kind"] != runs.KIND:
        raise ConfigError(f"run {run_id} is not an agent run (kind {store.get(run_id)['kind']})")
    q, meta = runs.load_run(store, run_id)
    _print_eval(_evaluate(q, meta["envs"], episodes))


@agent_app.command("strip")
def strip_command(
    run: Annotated[str, typer.Argument(help="Run id or unique prefix of an `imo agent train` run.")],
    out: Annotated[Path, Opt("-o", "--out", help="The PNG to write.")],
    task: Annotated[str | None, Opt(help="Which of the run's envs (default: the first).")] = None,
    seed: Annotated[int, Opt(help="Seed of the episode.")] = EVAL_SEED0,
    frames: Annotated[int, Opt(help="Frames in the strip, evenly spaced over the episode.")] = 8,
    force: Annotated[bool, Opt(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Render one greedy episode (render_mode rgb_array) as a strip of frames in a PNG."""
    if frames < 1:
        raise ConfigError("--frames must be >= 1")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists", hint="pass --force to overwrite it")
    import torch

    from imo.agents import render, runs
    from imo.runs.store import RunStore

    torch.set_num_threads(1)
    store = RunStore.open()
    run_id = store.resolve(run)
    if store.get(run_id)["kind"] != runs.KIND:
        raise ConfigError(f"run {run_id} is not an agent run (kind {store.get(run_id)['kind']})")
    q, meta = runs.load_run(store, run_id)
    names = meta["envs"]
    name = task or names[0]
    if name not in names:
        raise ConfigError(f"run {run_id} was not trained on {name!r}; it has {', '.join(names)}")
    info = render.episode_strip(q, name, seed, frames, out, names.index(name), names)
    typer.echo(f"{name}: return {info['return']:.1f} in {info['length']} steps; wrote {out}")
