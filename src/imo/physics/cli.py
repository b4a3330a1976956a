"""`imo exam physics`: generate pymunk scenes from seeds and score the baselines that need no
training: forecast error (constant velocity, ballistic), violation-of-expectation quadruplets
(teleport, vanish, energy gain) and contact prediction (constant velocity, and learned classifiers trained on
other seeds, imo.physics.contact_learned); with --learned, also
forecasters trained on other seeds (imo.physics.learned) and their rollouts' contact answers;
with --llm-steps, also the "LLM as physicist" row (imo.physics.llm: a byte GPT reading the
trajectory as text, trained on the --train-scenes, answering greedily).

    imo exam physics --scenes 200 --seed 0
    imo exam physics --scenes 1000 -o physics.json
    imo exam physics --learned in,mlp --train-scenes 500 --train-steps 2000   # learned rows too
    imo exam physics --llm-steps 1000 --train-scenes 500 --contact-train 0    # the byte-LM row
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option
TRAIN_SEED0 = 1_000_000  # learned models train on seeds from here, far from the exam's
CONTACT_SEED0 = 2_000_000  # the learned contact classifiers train on seeds from here


def register(exam_app: typer.Typer) -> None:
    exam_app.command("physics")(physics_command)


def physics_command(
    scenes: Annotated[int, Opt(help="Scenes to generate (seeds seed, seed+1, ...).")] = 200,
    seed: Annotated[int, Opt(help="First seed.")] = 0,
    balls: Annotated[int, Opt(help="Balls per scene (1..16).")] = 3,
    seconds: Annotated[float, Opt(help="Simulated seconds per scene (contact prediction needs 3.5).")] = 3.5,
    out: Annotated[Path | None, Opt("-o", "--out", help="Write the figures as JSON here.")] = None,
    force: Annotated[bool, Opt(help="Overwrite --out if it exists.")] = False,
    learned: Annotated[str | None, Opt(help="Also train these forecasters: mlp, in, transformer (comma-separated).")] = None,
    train_scenes: Annotated[int, Opt(help="Training scenes for --learned (seeds 1000000, ...).")] = 500,
    train_steps: Annotated[int, Opt(help="Gradient steps for --learned.")] = 2000,
    llm_steps: Annotated[int, Opt(help="Train the byte GPT of the LLM-as-physicist row this many steps on the --train-scenes (3 balls); 0 skips it.")] = 0,
    contact_train: Annotated[int, Opt(help="Training scenes for the learned contact classifiers (seeds 2000000, ...); 0 skips them.")] = 1000,
    phyre: Annotated[int, Opt(help="PHYRE-lite test tasks per template (twice as many train the ranker); 0 skips it.")] = 0,
    balance: Annotated[int, Opt(help="Balance-task test stacks (4x as many train the trees); 0 skips it.")] = 0,
    properties: Annotated[int, Opt(help="Properties-from-motion test trajectories (4x as many train); 0 skips it.")] = 0,
) -> None:
    """A 2-D physics exam from seeded pymunk scenes: baseline forecasts and VoE quadruplets."""
    if scenes < 1:
        raise ConfigError("--scenes must be >= 1")
    if out is not None and out.exists() and not force:
        raise ConfigError(f"{out} exists", hint="pass --force to overwrite it")
    models = [m.strip() for m in learned.split(",") if m.strip()] if learned else []
    from imo.physics.learned import MODELS, ForecastConfig

    for m in models:
        if m not in MODELS:
            raise ConfigError(f"unknown model {m!r} in --learned; known: {', '.join(MODELS)}")
    if min(contact_train, phyre, balance, properties, llm_steps) < 0:
        raise ConfigError("--contact-train, --phyre, --balance, --properties and --llm-steps must be >= 0")
    if (models or llm_steps) and (train_scenes < 1 or train_steps < 1):
        raise ConfigError("--train-scenes and --train-steps must be >= 1")
    if llm_steps and balls != 3:
        raise ConfigError(f"--llm-steps needs --balls 3 (its text must fit the GPT's 256-byte context), got {balls}")
    if llm_steps and seconds < 2.5:
        raise ConfigError(f"--llm-steps needs --seconds 2.5 or more (0.5 s of context + the 2 s horizon), got {seconds:g}")
    from imo.atomic import write_text
    from imo.physics import baselines, contact, quadruplets
    from imo.physics.scenes import SceneConfig, generate

    cfg = SceneConfig(balls=balls, seconds=seconds)
    cfg.check()
    if cfg.frames < int(0.5 * cfg.hz) + 2:
        raise ConfigError("--seconds must leave room for 0.5 s of context")
    t0 = time.perf_counter()
    made = [generate(seed + i, cfg) for i in range(scenes)]
    gen_s = time.perf_counter() - t0
    typer.echo(f"{scenes} scenes x {balls} balls x {cfg.frames} frames generated in {gen_s:.2f} s")
    errors = baselines.forecast_errors(made)
    for name, row in errors.items():
        cells = "  ".join(f"+{h:g}s {e:.2f}" for h, e in row.items())
        typer.echo(f"{name:<18} error in radii: {cells}")
    learned_rows = {}
    if models:
        import torch

        from imo.physics import learned as lrn

        torch.set_num_threads(1)
        train = [generate(TRAIN_SEED0 + i, cfg) for i in range(train_scenes)]
        for m in models:
            f = lrn.fit(train, ForecastConfig(model=m, steps=train_steps))
            row = lrn.forecast_errors(f, made)
            cells = "  ".join(f"+{h:g}s {e:.2f}" for h, e in row.items())
            learned_rows[m] = {"forecast_error_radii": {str(h): e for h, e in row.items()},
                               **f.to_dict()}
            line = f"{m:<18} error in radii: {cells}  ({f.parameters} parameters, {f.seconds:.0f} s)"
            if cfg.seconds >= 3.5 and balls >= 2:
                guesses = lrn.rollout_touches(f, made)
                acc = contact.balanced_accuracy([contact.touches(s, 0, 1) for s in made], guesses)
                learned_rows[m]["contact_balanced_accuracy"] = acc
                line += f"; contact by rollout {100 * acc:.1f}%"
            typer.echo(line)
    llm_row = None
    if llm_steps:
        import torch

        from imo.physics import llm

        torch.set_num_threads(1)
        train = [generate(TRAIN_SEED0 + i, cfg) for i in range(train_scenes)]
        f = llm.fit(train, llm.LLMConfig(steps=llm_steps, n_embd=96, n_layer=3))
        ev = llm.forecast_errors(f, made)
        llm_row = {"forecast_error_radii": {str(h): e for h, e in ev["errors"].items()},
                   "parsed": {str(h): p for h, p in ev["parsed"].items()},
                   "unparsed_examples": ev["unparsed_examples"], **f.to_dict()}
        cells = "  ".join(f"+{h:g}s {e:.2f}" for h, e in ev["errors"].items())
        parsed = "/".join(f"{100 * p:.0f}" for p in ev["parsed"].values())
        typer.echo(f"{'byte LM (text)':<18} error in radii: {cells}  ({f.parameters} parameters, {f.steps} steps, "
                   f"{f.seconds:.0f} s; parsed {parsed}% of answers, the rest scored as constant velocity)")
    mid = cfg.frames // 2
    quads = {"teleport": [quadruplets.teleport(s, 0, mid) for s in made],
             "vanish": [quadruplets.vanish(s, 0, mid) for s in made]}
    rel = {k: baselines.relative_error(v, cfg.hz, cfg.gravity) for k, v in quads.items()}
    for k, v in rel.items():
        typer.echo(f"{k:<8} quadruplets: relative error of the ballistic surprise {100 * v:.1f}%")
    from imo.physics import energy

    gains = []
    for s in made:
        try:
            gains.append(energy.energy_gain(s, 0, min(20, cfg.frames - 2)))
        except ConfigError:
            pass  # ball 0 is never free for 3 frames
    if gains:
        rel["energy"] = baselines.relative_error(gains, cfg.hz, cfg.gravity)
        wrong = sum(sum(energy.energy_surprise(c, cfg.hz, cfg.gravity) for c in q.impossible)
                    <= sum(energy.energy_surprise(c, cfg.hz, cfg.gravity) for c in q.possible)
                    for q in gains)
        rel["energy (energy surprise)"] = wrong / len(gains)
        typer.echo(f"energy   quadruplets ({len(gains)} of {scenes} scenes): relative error of the "
                   f"ballistic surprise {100 * rel['energy']:.1f}%, of the energy surprise "
                   f"{100 * rel['energy (energy surprise)']:.1f}%")
    contacts = None
    if balls < 2:
        typer.echo("contact prediction skipped: it needs --balls 2 or more")
    elif cfg.seconds >= 3.5:
        labels = [contact.touches(s, 0, 1) for s in made]
        guesses = [contact.constant_velocity_touches(s, 0, 1) for s in made]
        contacts = {"positive_share": sum(labels) / scenes,
                    "constant_velocity_balanced_accuracy": contact.balanced_accuracy(labels, guesses)}
        typer.echo(f"contact (ball 0 touches ball 1 in 3 s after 0.5 s): {sum(labels)}/{scenes} "
                   f"positive; constant velocity balanced accuracy "
                   f"{100 * contacts['constant_velocity_balanced_accuracy']:.1f}%")
        if contact_train:
            from imo.physics import contact_learned

            train_c = [generate(CONTACT_SEED0 + i, cfg) for i in range(contact_train)]
            ev = contact_learned.evaluate(train_c, made)
            contacts["learned"] = ev
            cells = ", ".join(f"{k} {100 * v:.1f}%" for k, v in ev["balanced_accuracy"].items())
            typer.echo(f"contact balanced accuracy ({contact_train} training scenes): {cells}")
    else:
        typer.echo("contact prediction skipped: it needs --seconds 3.5 or more")
    phyre_rows = None
    if phyre:
        from imo.physics import phyre_lite

        phyre_rows = phyre_lite.evaluate(train_per_template=2 * phyre, test_per_template=phyre)
        for split in ("within", "cross"):
            r = phyre_rows[split]
            typer.echo(f"PHYRE-lite {split}-template AUCCESS ({len(phyre_lite.TEMPLATES)} templates x "
                       f"{phyre} test tasks): random {100 * r['random']:.1f}, ranker "
                       f"{100 * r['ranker']:.1f}, oracle {100 * r['oracle']:.1f}")
    balance_rows = properties_rows = None
    if balance:
        from imo.physics import balance as bal

        balance_rows = bal.evaluate(train=4 * balance, test=balance)
        cells = ", ".join(f"{k} {100 * v:.1f}%" for k, v in balance_rows["stands_balanced_accuracy"].items())
        com = ", ".join(f"{k} {v:.3f} m" for k, v in balance_rows["com_error_m"].items())
        typer.echo(f"balance ({balance} stacks, {100 * balance_rows['test_standing_share']:.0f}% stand): "
                   f"stands balanced accuracy {cells}; centre-of-mass error {com}")
    if properties:
        from imo.physics import properties as props

        properties_rows = props.evaluate(train=4 * properties, test=properties)
        for p, row in properties_rows["mae"].items():
            cells = ", ".join(f"{k} {v:.3f}" for k, v in row.items())
            typer.echo(f"properties ({properties} trajectories) {p} mean abs error: {cells}")
    if out is not None:
        payload = {"phyre_lite": phyre_rows, "balance": balance_rows, "properties": properties_rows, "contact": contacts, "config": cfg.__dict__, "scenes": scenes, "seed": seed, "generate_s": gen_s,
                   "forecast_error_radii": {k: {str(h): e for h, e in r.items()}
                                            for k, r in errors.items()},
                   "voe_relative_error": rel, "learned": learned_rows, "llm": llm_row}
        write_text(out, json.dumps(payload, indent=2) + "\n")
        typer.echo(f"wrote {out}")
