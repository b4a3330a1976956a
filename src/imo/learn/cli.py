"""`imo learn ...`: train digit classifiers with other learning rules and wirings (issue 19).

    imo learn rules                                           # the rules and what they are
    imo learn train ff --data mnist --hidden 1000,1000,1000 --epochs 15
    imo learn train mezo --data digits --epochs 50 --eps 1e-3 --samples 4
    imo learn train set --sparsity 0.97 --distribution erk -o set.json
    imo learn train voltage --volt-threshold 0.05 --decay 0.9
    imo learn capsules --routing 3 --epochs 2 [--arch cnn]
    imo learn memory --rules backprop,mezo,ff --hidden 1000,1000,1000 --optimizer sgd
    imo learn decoders --heads both --new-skill grid        # ability decoders on the skills battery
    imo learn courses --orders easy-to-hard,random           # curricula at equal steps
    imo learn rewire --targets 20 --sources 30 --rounds 12   # rewired lottery tickets
    imo learn sparse-lm --arms dense,static,set,rigl --sparsity 0.9 --steps 1500   # on a byte LM's MLPs
    imo learn moe --experts 8 --top-k 2 --steps 500           # mixture of experts on a byte LM (or --experts 1: dense)

Every run prints one progress line per epoch and, with -o, writes its record (config, history,
final validation errors) as JSON. Seeded: the same command gives the same numbers.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option

learn_app = typer.Typer(help="Other learning rules and wirings on digit classifiers: MeZO, Forward-Forward, "
                        "feedback alignment, SET/RigL sparsity, capsules; ability decoders and courses on the skills battery.",
                        no_args_is_help=True)

DATA_HELP = "mnist (the 8,000-digit cut in ../shared/data/mnist or IMO_MNIST), mnist:DIR, or digits (sklearn 8x8)."


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--hidden must be comma-separated integers, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise ConfigError(f"--hidden needs at least one positive width, got {text!r}")
    return widths


def _check_out(out: Path | None, force: bool) -> None:
    if out is not None and out.exists() and not force:
        raise ConfigError(f"{out} exists", hint="pass --force to overwrite it")
    if out is not None and not out.parent.is_dir():
        raise ConfigError(f"folder {out.parent} does not exist")


def _write(out: Path | None, record: dict) -> None:
    if out is not None:
        from imo.atomic import write_text

        write_text(out, json.dumps(record, indent=2) + "\n")
        typer.echo(f"wrote {out}")


@learn_app.command("rules")
def rules_command() -> None:
    """List the learning rules `imo learn train` knows."""
    from imo.learn import loop  # noqa: F401  (imports every rule, so each registers itself)
    from imo.learn.rules import RULES

    for name, cls in RULES.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:9} {doc[0] if doc else ''}")


@learn_app.command("train")
def train_command(
    rule: Annotated[str, typer.Argument(help="backprop, fa, dfa, voltage, mezo, ff, static, set or rigl (see `imo learn rules`).")],
    data: Annotated[str, Opt(help=DATA_HELP)] = "mnist",
    hidden: Annotated[str, Opt(help="Hidden layer widths, comma-separated.")] = "256,256",
    epochs: Annotated[int, Opt(help="Passes over the training split.")] = 5,
    batch: Annotated[int, Opt(help="Batch size.")] = 100,
    lr: Annotated[float | None, Opt(help="Learning rate; default: the rule's own (Adam 1e-3, FF 3e-3; plain SGD 0.05; "
                                    "MeZO SGD 1e-3).")] = None,
    optimizer: Annotated[str, Opt(help="adam, or sgd (plain, no momentum, no state; MeZO always uses sgd).")] = "adam",
    seed: Annotated[int, Opt(help="Seed for the split, the init, the batch order and the rule's draws.")] = 0,
    max_train: Annotated[int | None, Opt(help="Use only the first N training digits.")] = None,
    max_seconds: Annotated[float | None, Opt(help="Stop after this many seconds of wall time (equal-time runs).")] = None,
    eps: Annotated[float, Opt(help="mezo: perturbation size epsilon.")] = 1e-3,
    samples: Annotated[int, Opt(help="mezo: directions per step (n-SPSA).")] = 1,
    label_scale: Annotated[float, Opt(help="ff: value of the one-hot label appended to the pixels.")] = 10.0,
    threshold: Annotated[float | None, Opt(help="ff: goodness threshold; default: the layer width.")] = None,
    volt_threshold: Annotated[float, Opt(help="voltage: trace level that triggers a silent unit's correction.")] = 0.05,
    decay: Annotated[float, Opt(help="voltage: per-step decay of the trace.")] = 0.9,
    sparsity: Annotated[float, Opt(help="static/set/rigl: fraction of weights that are zero.")] = 0.9,
    distribution: Annotated[str, Opt(help="static/set/rigl: erk or uniform layer densities.")] = "erk",
    update_every: Annotated[int, Opt(help="set/rigl: steps between topology updates.")] = 100,
    drop_fraction: Annotated[float, Opt(help="set/rigl: initial fraction dropped per update (cosine decay).")] = 0.3,
    out: Annotated[Path | None, Opt("-o", "--out", help="Write the run's record here (JSON).")] = None,
    force: Annotated[bool, Opt(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Train the MLP on digits with one learning rule; report validation error per epoch."""
    import torch

    from imo.learn import data as learn_data
    from imo.learn.loop import fit
    from imo.learn.rules import RuleConfig

    torch.set_num_threads(1)
    _check_out(out, force)
    cfg = RuleConfig(hidden=_hidden(hidden), lr=lr, seed=seed, optimizer=optimizer, eps=eps, samples=samples, label_scale=label_scale,
                     ff_threshold=threshold, volt_threshold=volt_threshold, decay=decay, sparsity=sparsity, distribution=distribution,
                     update_every=update_every, drop_fraction=drop_fraction)
    cfg.check()
    from imo.learn.rules import RULES

    RULES.get(rule)  # an unknown name fails before the data is read
    split = learn_data.load(data, seed=seed, max_train=max_train)
    typer.echo(f"{rule}: {split.source}, {len(split.x_train)} train / {len(split.x_val)} validation digits, "
               f"hidden {hidden}, {epochs} epochs, batch {batch}")
    record, _ = fit(rule, split, cfg, epochs, batch, log=typer.echo, max_seconds=max_seconds)
    f = record["final"]
    extra = "".join(f", {k} {100 * v:.2f}%" for k, v in f.items() if k.endswith("_error"))
    typer.echo(f"{rule}: validation error {100 * f['error']:.2f}%{extra} after {f['steps']} steps, {f['seconds']:.1f}s")
    _write(out, record)


@learn_app.command("capsules")
def capsules_command(
    data: Annotated[str, Opt(help=DATA_HELP)] = "mnist",
    arch: Annotated[str, Opt(help="capsnet, or cnn (the baseline of equal classifier parameters).")] = "capsnet",
    routing: Annotated[int, Opt(help="capsnet: routing-by-agreement iterations.")] = 3,
    recon: Annotated[bool, Opt("--recon/--no-recon", help="capsnet: add the reconstruction loss.")] = True,
    epochs: Annotated[int, Opt(help="Passes over the training split.")] = 2,
    batch: Annotated[int, Opt(help="Batch size.")] = 100,
    lr: Annotated[float, Opt(help="Adam learning rate.")] = 1e-3,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    max_train: Annotated[int | None, Opt(help="Use only the first N training digits.")] = None,
    affine: Annotated[bool, Opt("--affine/--no-affine", help="Also score validation digits under random affine maps "
                                "(rotation 20 degrees, scale 0.8-1.2, shear 0.2).")] = False,
    out: Annotated[Path | None, Opt("-o", "--out", help="Write the run's record here (JSON).")] = None,
    force: Annotated[bool, Opt(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Train the slim CapsNet (dynamic routing, margin loss) or its CNN twin on digits."""
    import torch

    from imo.learn import data as learn_data
    from imo.learn.capsules import fit_capsules

    torch.set_num_threads(1)
    _check_out(out, force)
    if arch not in ("capsnet", "cnn"):
        raise ConfigError(f"unknown --arch {arch!r}; choose capsnet or cnn")
    if routing < 1:
        raise ConfigError(f"--routing must be >= 1, got {routing}")
    if not lr > 0:
        raise ConfigError(f"--lr must be > 0, got {lr}")
    split = learn_data.load(data, seed=seed, max_train=max_train)
    typer.echo(f"{arch}: {split.source}, {len(split.x_train)} train / {len(split.x_val)} validation digits")
    record, _ = fit_capsules(arch, split, epochs, batch, routing=routing, recon=recon, lr=lr, seed=seed,
                             log=typer.echo, affine=affine)
    typer.echo(f"{arch}: validation error {100 * record['final']['error']:.2f}%, "
               f"{record['params']:,} classifier parameters")
    _write(out, record)


@learn_app.command("memory")
def memory_command(
    rules: Annotated[str, Opt(help="Comma-separated rules to measure.")] = "backprop,fa,dfa,voltage,mezo,ff,set",
    hidden: Annotated[str, Opt(help="Hidden layer widths, comma-separated.")] = "1000,1000,1000",
    batch: Annotated[int, Opt(help="Batch size.")] = 100,
    optimizer: Annotated[str, Opt(help="adam or sgd, for every rule (MeZO always sgd).")] = "adam",
) -> None:
    """Training memory of each rule: tensor bytes, the exact peak of one step, peak RSS (a child process per rule)."""
    from imo.learn import loop  # noqa: F401  (every rule registers itself)
    from imo.learn.memory import MiB, measure
    from imo.learn.rules import RULES

    widths = _hidden(hidden)
    names = [r.strip() for r in rules.split(",") if r.strip()]
    for name in names:
        RULES.get(name)
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    from imo.learn.rules import OPTIMIZERS

    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    typer.echo(f"{'rule':9} {'optim':>5} {'params':>8} {'grads':>8} {'state':>8} {'step peak':>10} "
               f"{'RSS infer':>10} {'RSS train':>10}  (MiB; step peak: exact bytes beyond the parameters)")
    for name in names:
        m = measure(name, widths, batch, optimizer=optimizer)
        tb = m["tensor_bytes"]
        typer.echo(f"{name:9} {m['optimizer']:>5} {tb['params'] / MiB:8.1f} {tb['grads'] / MiB:8.1f} "
                   f"{tb['optimizer'] / MiB:8.1f} {m['step_bytes']['training'] / MiB:10.2f} "
                   f"{m['inference_peak_mib']:10.1f} {m['training_peak_mib']:10.1f}")


def _skills_config(skills: str, **kw):
    from imo.learn.abilities import SkillsRunConfig

    cfg = SkillsRunConfig(skills=tuple(v.strip() for v in skills.split(",") if v.strip()), **kw)
    cfg.check()
    return cfg


SKILLS_HELP = "Comma-separated skills of the battery (imo.tasks.skills)."


@learn_app.command("decoders")
def decoders_command(
    heads: Annotated[str, Opt(help="per-skill (one decoder per skill), shared (one decoder, as many parameters), "
                              "or both.")] = "both",
    skills: Annotated[str, Opt(help=SKILLS_HELP)] = "count,copy,reverse,sort,add,compare,grid",
    new_skill: Annotated[str, Opt(help="The skill added last, trained alone after the others.")] = "grid",
    steps: Annotated[int, Opt(help="Steps on the old skills.")] = 1500,
    new_steps: Annotated[int, Opt(help="Steps on the new skill alone.")] = 500,
    n_layer: Annotated[int, Opt(help="Trunk blocks.")] = 2,
    n_embd: Annotated[int, Opt(help="Trunk width.")] = 64,
    head_hidden: Annotated[int, Opt(help="Hidden width of one per-skill decoder (the shared one: times the skills).")] = 64,
    batch: Annotated[int, Opt(help="Batch size.")] = 32,
    lr: Annotated[float, Opt(help="Adam learning rate.")] = 3e-3,
    seed: Annotated[int, Opt(help="Seed for the problems, the init and the batches.")] = 0,
    out: Annotated[Path | None, Opt("-o", "--out", help="Write the records here (JSON).")] = None,
    force: Annotated[bool, Opt(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Ability decoders: one decoder per skill vs one shared; what old skills lose when a new one is trained."""
    from imo.learn.abilities import HEADS, interference_run

    _check_out(out, force)
    arms = list(HEADS) if heads == "both" else [heads]
    if any(h not in HEADS for h in arms):
        raise ConfigError(f"unknown --heads {heads!r}; choose per-skill, shared or both")
    cfg = _skills_config(skills, new_skill=new_skill, steps=steps, new_steps=new_steps, n_layer=n_layer,
                         n_embd=n_embd, head_hidden=head_hidden, batch=batch, lr=lr)
    records = []
    for h in arms:
        rec = interference_run(h, cfg, seed=seed, log=typer.echo)
        records.append(rec)
        typer.echo(f"{h}: old skills {100 * rec['old_accuracy_before']:.1f}% before, interference "
                   f"{rec['interference_points']:+.1f} points; {new_skill} {100 * rec['new_skill_after']:.1f}%; "
                   f"{rec['decoder_params']:,} decoder / {rec['params']:,} parameters")
    _write(out, {"decoders": records})


@learn_app.command("courses")
def courses_command(
    orders: Annotated[str, Opt(help="Comma-separated: easy-to-hard, random, hard-to-easy.")] = "easy-to-hard,random,hard-to-easy",
    skills: Annotated[str, Opt(help=SKILLS_HELP)] = "count,copy,reverse,sort,add,compare,grid",
    steps: Annotated[int, Opt(help="Total steps, equal for every order.")] = 1500,
    eval_every: Annotated[int, Opt(help="Steps between scorings.")] = 250,
    threshold: Annotated[float, Opt(help="Mean accuracy (both difficulties) whose first crossing is reported.")] = 0.5,
    n_layer: Annotated[int, Opt(help="Trunk blocks.")] = 2,
    n_embd: Annotated[int, Opt(help="Trunk width.")] = 64,
    batch: Annotated[int, Opt(help="Batch size.")] = 32,
    lr: Annotated[float, Opt(help="Adam learning rate.")] = 3e-3,
    seed: Annotated[int, Opt(help="Seed for the problems, the init and the batches.")] = 0,
    out: Annotated[Path | None, Opt("-o", "--out", help="Write the records here (JSON).")] = None,
    force: Annotated[bool, Opt(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Courses: easy-to-hard, random or hard-to-easy order at equal steps; accuracy and steps to a threshold."""
    from imo.learn.abilities import ORDERS, course_run

    _check_out(out, force)
    names = [o.strip() for o in orders.split(",") if o.strip()]
    if not names or any(o not in ORDERS for o in names):
        raise ConfigError(f"--orders must name some of {', '.join(ORDERS)}, got {orders!r}")
    cfg = _skills_config(skills, steps=steps, eval_every=eval_every, threshold=threshold, n_layer=n_layer,
                         n_embd=n_embd, batch=batch, lr=lr)
    records = []
    for o in names:
        rec = course_run(o, cfg, seed=seed, log=typer.echo)
        records.append(rec)
        reached = rec["steps_to_threshold"]
        typer.echo(f"{o}: easy {100 * rec['final_easy']:.1f}% hard {100 * rec['final_hard']:.1f}% after {steps} steps; "
                   f"mean {100 * threshold:.0f}% {'reached at step ' + str(reached) if reached else 'not reached'}")
    _write(out, {"courses": records})


@learn_app.command("rewire")
def rewire_command(
    targets: Annotated[int, Opt(help="Last-hidden units that get the skip (largest incoming weights).")] = 20,
    sources: Annotated[int, Opt(help="First-hidden units they read (most important).")] = 30,
    rewire_step: Annotated[int, Opt(help="Training step at which the skip is made.")] = 45,
    rewind_step: Annotated[int, Opt(help="Lottery rewind point (0: the initialisation).")] = 0,
    rounds: Annotated[int, Opt(help="Prune-rewind-retrain rounds.")] = 12,
    rate: Annotated[float, Opt(help="Share of the surviving weights removed per round.")] = 0.2,
    epochs: Annotated[int, Opt(help="Epochs per training.")] = 10,
    seed: Annotated[int, Opt(help="Seed for the split, the init and the batches.")] = 0,
    out: Annotated[Path | None, Opt("-o", "--out", help="Write the record here (JSON).")] = None,
    force: Annotated[bool, Opt(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Rewired lottery tickets: a learned skip to the strongest units, then tickets, vs the plain ticket."""
    from imo.data.vision import load_digits
    from imo.learn.rewire import RewireSetup, rewired_tickets

    _check_out(out, force)
    setup = RewireSetup(targets=targets, sources=sources, rewire_step=rewire_step, rewind_step=rewind_step,
                        rounds=rounds, rate=rate, epochs=epochs)
    rec = rewired_tickets(load_digits(seed), setup, seed=seed, log=typer.echo)
    last = rec["rounds"][-1]
    typer.echo(f"at {100 * last['fraction_left']:.1f}% of the weights: plain {100 * last['acc_plain']:.1f}%, "
               f"rewired {100 * last['acc_rewired']:.1f}% ({rec['gain_points']:+.1f} points)")
    _write(out, rec)


@learn_app.command("sparse-lm")
def sparse_lm_command(
    arms: Annotated[str, Opt(help="Comma-separated: dense, static, set, rigl.")] = "dense,static,set,rigl",
    corpus: Annotated[str, Opt(help="Byte corpus: python-docs, file:PATH, dir:PATH.")] = "python-docs",
    sparsity: Annotated[float, Opt(help="Fraction of the MLP weights that are zero, in (0, 1).")] = 0.9,
    distribution: Annotated[str, Opt(help="Per-layer density: erk or uniform.")] = "erk",
    steps: Annotated[int, Opt(help="Training steps, equal for every arm.")] = 1500,
    update_every: Annotated[int, Opt(help="Steps between SET/RigL topology updates.")] = 100,
    drop_fraction: Annotated[float, Opt(help="Initial share of active weights moved per update (cosine decay).")] = 0.3,
    n_layer: Annotated[int, Opt(help="Blocks.")] = 2,
    n_embd: Annotated[int, Opt(help="Width.")] = 128,
    context: Annotated[int, Opt(help="Context length in bytes.")] = 128,
    batch: Annotated[int, Opt(help="Sequences per step.")] = 16,
    lr: Annotated[float, Opt(help="AdamW peak learning rate (warmup, cosine to 10%).")] = 3e-3,
    seed: Annotated[int, Opt(help="Seed for the init, the masks and the batches.")] = 0,
    out: Annotated[Path | None, Opt("-o", "--out", help="Write the records here (JSON).")] = None,
    force: Annotated[bool, Opt(help="Overwrite --out if it exists.")] = False,
) -> None:
    """SET and RigL on a byte LM's MLP layers beside a static mask and dense, at equal steps (bits/byte)."""
    from imo.learn.sparse_lm import ARMS, SparseLMConfig, train_sparse_lm

    _check_out(out, force)
    names = [a.strip() for a in arms.split(",") if a.strip()]
    if not names or any(a not in ARMS for a in names):
        raise ConfigError(f"--arms must name some of {', '.join(ARMS)}, got {arms!r}")
    if n_layer < 1 or n_embd < 4 or n_embd % 4 or context < 2:
        raise ConfigError("--n-layer must be >= 1, --n-embd a positive multiple of 4 and --context >= 2")
    cfg = SparseLMConfig(corpus=corpus, n_layer=n_layer, n_embd=n_embd, context_length=context, steps=steps,
                         batch_size=batch, lr=lr, warmup=min(100, steps // 10), sparsity=sparsity,
                         distribution=distribution, update_every=update_every, drop_fraction=drop_fraction)
    cfg.check()
    records = []
    for a in names:
        rec = train_sparse_lm(a, cfg, seed=seed, log=typer.echo)
        records.append(rec)
        typer.echo(f"{a}: {rec['val_bpb']:.4f} bits/byte, MLP density {rec['mlp_density']:.4f}, "
                   f"{rec['topology_updates']} topology updates, {100 * rec['moved_fraction']:.1f}% of the "
                   f"MLP nonzeros moved, {rec['seconds']:.0f} s")
    _write(out, {"sparse_lm": records})


@learn_app.command("moe")
def moe_command(
    experts: Annotated[int, Opt(help="Experts per MLP (E); 1 is a dense MLP of width --hidden.")] = 8,
    top_k: Annotated[int, Opt(help="Experts each token is routed to (1..E), gates renormalised over them.")] = 2,
    hidden: Annotated[int, Opt(help="Each expert's hidden width; 0: 4 x n_embd, the GPT's MLP.")] = 0,
    capacity_factor: Annotated[float, Opt(help="Training only: an expert takes at most ceil(factor x tokens x k / E) "
                                          "assignments per batch, the rest pass on the residual; 0: no limit.")] = 1.25,
    aux_coef: Annotated[float, Opt(help="Weight of the Switch load-balancing loss E x sum f_i P_i.")] = 0.01,
    preset: Annotated[str, Opt(help="Model shape: tiny, small, base (imo.model.config presets).")] = "tiny",
    pos: Annotated[str | None, Opt(help="Position encoding: learned, rope, alibi, sinusoidal, none. [default: the preset's]")] = None,
    attn: Annotated[str | None, Opt(help="Attention backend: naive, sdpa, tiled. [default: the preset's]")] = None,
    context: Annotated[int | None, Opt(help="Context length in bytes. [default: the preset's]")] = None,
    corpus: Annotated[str, Opt(help="Byte corpus: python-docs, shakespeare, file:PATH, dir:PATH.")] = "python-docs",
    steps: Annotated[int, Opt(help="Optimizer steps.")] = 500,
    batch: Annotated[int, Opt(help="Sequences per step.")] = 16,
    lr: Annotated[float, Opt(help="AdamW peak learning rate (warmup, cosine to 10%).")] = 3e-3,
    warmup: Annotated[int, Opt(help="Warmup steps.")] = 50,
    eval_bytes: Annotated[int | None, Opt(help="Score only the first N bytes of the validation split at the end. [default: all]")] = None,
    seed: Annotated[int, Opt(help="Seed of the initialisation and the batches.")] = 1337,
    name: Annotated[str | None, Opt(help="Run name in the store.")] = None,
    quiet: Annotated[bool, Opt(help="No progress bar.")] = False,
) -> None:
    """Train a mixture-of-experts byte LM (top-k routing, load-balancing loss, capacity), or with --experts 1
    its dense baseline; prints bits/byte, training FLOPs and each layer's expert-load CV and histogram."""
    from imo.learn.moe import report_lines, train_moe
    from imo.model.moe import MoEConfig
    from imo.train.config import RunConfig

    if steps < 1 or batch < 1:
        raise ConfigError(f"--steps and --batch must be >= 1, got {steps} and {batch}")
    if eval_bytes is not None and eval_bytes < 2:
        raise ConfigError(f"--eval-bytes must be >= 2, got {eval_bytes}")
    moe = MoEConfig(experts=experts, top_k=top_k, hidden=hidden, capacity_factor=capacity_factor, aux_coef=aux_coef)
    model = {k: v for k, v in {"pos": pos, "attn": attn, "context_length": context}.items() if v is not None}
    cfg = RunConfig.build(preset=preset, model=model,
                          train={"corpus": corpus, "steps": steps, "batch_size": batch, "lr": lr, "seed": seed,
                                 "warmup": min(warmup, steps), "device": "cpu", "eval_every": max(1, steps // 5)})
    _, figures = train_moe(cfg, moe, quiet=quiet, name=name, eval_bytes=eval_bytes)
    for line in report_lines(figures):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.add_typer(learn_app, name="learn")
