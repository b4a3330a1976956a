"""`imo exam`: trickability, true negatives, the skills battery, exact recall, in-context learning,
the passkey.

Each command prints a table and appends its result to the run store (kind `exam-<name>`).

    imo exam trick digits --attack fgsm --eps 0.1,0.25
    imo exam trick RUN --task compare --k 3          # byte edits on a char model
    imo exam negatives --sizes 1x32,2x64 --steps 300,1000
    imo exam understanding --steps 3000 --plot understanding.png   # recall vs altered questions, compressed
    imo exam skills --train copy,sort --steps 600
    imo exam recall RUN --prefix 32 --k 32
    imo exam icl induction --steps 2000         # imo.exams.icl
    imo exam icl regression --dim 5
    imo exam passkey RUN RUN --lengths 512,1024,4096 --plot passkey.png
"""

from __future__ import annotations

import math
import sys
from typing import Annotated

import typer

from imo.console import print_table
from imo.errors import ConfigError

Opt = typer.Option
app = typer.Typer(help="Exams: trickability, true negatives, the skills battery, exact recall, in-context learning.",
                  no_args_is_help=True)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="exam")


def _log(quiet: bool):
    return (lambda m: None) if quiet else (lambda m: print(f"... {m}", file=sys.stderr, flush=True))


def _numbers(text: str, what: str, kind=float) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be {kind.__name__}s separated by commas, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty; give at least one value")
    return values


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        try:
            layers, width = (int(v) for v in part.strip().split("x"))
        except ValueError:
            raise ConfigError(f"--sizes takes LAYERSxWIDTH pairs separated by commas (e.g. 1x32,2x64), "
                              f"got {part!r}") from None
        out.append((layers, width))
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _store():
    from imo.runs.store import RunStore

    return RunStore.open()


@app.command("trick")
def trick_command(
    target: Annotated[str, typer.Argument(help="digits, idx:DIR (MNIST IDX files), or a run id for the byte-edit attack.")],
    attack: Annotated[str, Opt(help="Image attack: fgsm or pgd.")] = "fgsm",
    eps: Annotated[str, Opt(help="Epsilons in [0, 1], comma-separated.")] = "0.05,0.1,0.25",
    epochs: Annotated[int, Opt(help="Training epochs of each image classifier.")] = 30,
    pgd_steps: Annotated[int, Opt(help="PGD steps.")] = 10,
    max_test: Annotated[int | None, Opt(help="Attack only the first N test images.")] = None,
    adversarial: Annotated[bool, Opt(help="Also train each classifier adversarially (half FGSM loss at --adv-eps).")] = True,
    adv_eps: Annotated[float, Opt(help="Epsilon of adversarial training.")] = 0.25,
    task: Annotated[str, Opt(help="Run target: the skill whose prompts are attacked.")] = "compare",
    k: Annotated[int, Opt(help="Run target: most byte substitutions tried.")] = 3,
    beam: Annotated[int, Opt(help="Run target: beam width of the substitution search.")] = 4,
    n: Annotated[int, Opt(help="Run target: held-out prompts attacked.")] = 50,
    seed: Annotated[int, Opt(help="Seed of the split, initialisation and batches.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """How small a change flips a model's answer: FGSM/PGD on image classifiers, byte edits on a run."""
    from imo.exams import trick

    store = _store()
    if target == "digits" or target.startswith("idx:"):
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        if max_test is not None and max_test < 1:
            raise ConfigError(f"max-test must be >= 1, got {max_test}")
        out = trick.vision_exam(target, eps=trick.check_eps(_numbers(eps, "--eps")), attack=attack, seed=seed,
                                size=trick.VisionSize(epochs=epochs, pgd_steps=pgd_steps, max_test=max_test),
                                adv_eps=adv_eps, adversarial=adversarial, log=_log(quiet))
        print_table(["model", "eps", "clean error", "error", "confidence", "median min eps"],
                    [[r["model"], f"{r['eps']:g}", _pct(r["clean_error"]), _pct(r["error"]), _pct(r["confidence"]),
                      f"{r['median_min_eps']:.3f}"] for r in out["rows"]],
                    title=f"{attack.upper()} on {out['data']} ({out['n_test']} test images)")
        paper = trick.PAPER_MNIST
        print_table(["model (Goodfellow et al. 2014, MNIST, FGSM eps 0.25)", "error", "confidence"],
                    [["shallow softmax", _pct(paper["softmax"]["fgsm_error"]), _pct(paper["softmax"]["fgsm_confidence"])],
                     ["maxout network", _pct(paper["maxout"]["fgsm_error"]), _pct(paper["maxout"]["fgsm_confidence"])],
                     ["maxout, adversarially trained", _pct(paper["maxout adversarially trained"]["fgsm_error"]), "-"]],
                    title="the paper's MNIST figures")
        store.put_result("exam-trick", out["data"], out)
        return
    out = trick.text_exam(target, task, k=k, beam=beam, n=n, seed=seed, store=store)
    print_table(["run", "task", "clean accuracy", "attacked"] + [f"flipped <= {j}" for j in out["success_within"]],
                [[out["run"], out["task"], _pct(out["clean_accuracy"]), out["attacked"],
                  *[_pct(v) for v in out["success_within"].values()]]],
                title="byte-edit attack")
    print(f"trickability = {_pct(out['trickability'])}   ({out['definition']})")
    store.put_result("exam-trick", out["run"], out, [out["run"]])


@app.command("negatives")
def negatives_command(
    sizes: Annotated[str, Opt(help="Model sizes LAYERSxWIDTH, comma-separated.")] = "1x32,2x64",
    steps: Annotated[str, Opt(help="Training lengths in steps, comma-separated.")] = "300,1000",
    entities: Annotated[int, Opt(help="Entities in the fact base (5 attributes each, half present).")] = 40,
    seed: Annotated[int, Opt(help="Seed of the fact base and the training.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """True positives vs true negatives on a generated fact base, by model size and training length."""
    from imo.exams.negatives import NegativesSize, negatives_exam

    step_list = _numbers(steps, "--steps", int)
    if min(step_list) < 1:
        raise ConfigError(f"--steps must be positive, got {steps!r}")
    size = NegativesSize(sizes=tuple(_sizes(sizes)), steps=tuple(step_list), n_entities=entities,
                             context_length=32)
    out = negatives_exam(size, seed=seed, store=_store(), quiet=quiet, log=_log(quiet))
    print_table(["run", "size", "params", "steps", "TPR", "TNR", "present called unknown"],
                [[r["run"], f"{r['n_layer']}x{r['n_embd']}", f"{r['params']:,}", r["steps"], _pct(r["tpr"]),
                  _pct(r["tnr"]), _pct(r["positives_called_unknown"])] for r in out["rows"]],
                title=f"fact base: {out['n_present']} present facts, {out['n_held_absent']} missing facts never seen")
    _store().put_result("exam-negatives", f"seed{seed}", out, [r["run"] for r in out["rows"]])


@app.command("understanding")
def understanding_command(
    steps: Annotated[int, Opt(help="Training steps.")] = 3000,
    layers: Annotated[int, Opt(help="Blocks of the model.")] = 2,
    width: Annotated[int, Opt(help="Embedding width of the model (a multiple of 4 heads and of --group-size).")] = 64,
    entities: Annotated[int, Opt(help="Entities in the fact base (5 attributes each, about half present; one friend each).")] = 40,
    sparsities: Annotated[str, Opt(help="Global magnitude-pruning sparsities, comma-separated, each in [0, 1).")] = "0.1,0.2,0.3,0.4,0.5,0.6",
    group_size: Annotated[int, Opt(help="int4: input weights per scale.")] = 32,
    seed: Annotated[int, Opt(help="Seed of the fact base, the relation, the split and the training.")] = 0,
    plot: Annotated[str | None, Opt(help="Write accuracy by compression level to this PNG.")] = None,
    force: Annotated[bool, Opt("--force", help="Overwrite an existing --plot file.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Recall of stored facts vs altered questions about them (negation, swapped roles, two hops),
    before and after int8/int4 quantization and magnitude pruning (imo.exams.understanding)."""
    from pathlib import Path

    from imo.exams.understanding import UnderstandingSize, understanding_exam

    for name, v in (("steps", steps), ("layers", layers), ("entities", entities), ("group-size", group_size)):
        if v < 1:
            raise ConfigError(f"--{name} must be >= 1, got {v}")
    if entities < 4:
        raise ConfigError(f"--entities must be >= 4 (two shown and two held), got {entities}")
    path = Path(plot) if plot is not None else None
    if path is not None:
        if path.suffix.lower() != ".png":
            raise ConfigError(f"--plot writes a PNG; give a path ending in .png, got {plot!r}")
        if path.exists() and not force:
            raise ConfigError(f"{plot} exists; pass --force to overwrite it")
        if not path.parent.is_dir():
            raise ConfigError(f"folder {path.parent} does not exist")
    spars = _numbers(sparsities, "--sparsities")
    levels = (("none", 0.0, 0), ("int8", 0.0, 8), ("int4", 0.0, 4)) + tuple(("prune", s, 0) for s in spars)
    if 0.4 in spars:  # as the claim's levels: 40% pruning, then int4
        levels += (("prune+int4", 0.4, 4),)
    size = UnderstandingSize(n_layer=layers, n_embd=width, steps=steps, n_entities=entities,
                             group_size=group_size, levels=levels)
    out = understanding_exam(size, seed=seed, store=_store(), quiet=quiet, log=_log(quiet))
    forms = ("recall", "negation", "swapped", "two-hop")
    print_table(["compression"] + [f"{f} ({out['n_tests'][f]})" for f in forms] + ["negation: yes/no alone"],
                [[lv["level"]] + [_pct(lv[f]) for f in forms] + [_pct(lv["negation_verdict"])] for lv in out["levels"]],
                title=f"run {out['run']}: exact answers about {out['n_held']} entities whose altered questions were "
                      f"never shown (whole answers, worked step included)")
    print_table(["compression", "recall retention", "altered retention", "gap"],
                [[r["level"], f"{r['recall_retention']:.2f}", f"{r['altered_retention']:.2f}", f"{r['gap']:+.2f}"]
                 for r in out["retention"]],
                title=f"retention (score above chance / uncompressed); learnt altered forms: "
                      f"{', '.join(out['learnt_forms']) or 'none'}; mean gap {out['retention_gap']:+.3f}")
    if path is not None:
        from imo.claims.library.understanding import plot as plot_levels

        plot_levels([out], path)
        print(f"plot: {path}")
    _store().put_result("exam-understanding", f"seed{seed}", out, [out["run"]])


@app.command("skills")
def skills_command(
    train: Annotated[str, Opt(help="Skills to train on, comma-separated (count, copy, reverse, sort, add, compare, grid).")] = "count,copy,reverse,sort,add,compare,grid",
    run: Annotated[str | None, Opt(help="Test this run instead of training one.")] = None,
    steps: Annotated[int, Opt(help="Training steps.")] = 600,
    layers: Annotated[int, Opt(help="Blocks of the model.")] = 2,
    width: Annotated[int, Opt(help="Embedding width of the model.")] = 64,
    difficulty: Annotated[int | None, Opt(help="Task difficulty: 1 (short inputs) or 2. [default: 1]")] = None,
    level: Annotated[int | None, Opt("--level", hidden=True, help="Old name of --difficulty.")] = None,
    n_train: Annotated[int, Opt(help="Training problems per skill.")] = 2000,
    n_test: Annotated[int, Opt(help="Held-out problems per skill.")] = 100,
    seed: Annotated[int, Opt(help="Seed of the problems and the training.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train a byte model on one or several skills of the battery and test it on each."""
    from imo.exams.skills import SkillsSize, check_skills, skills_exam

    if level is not None and difficulty is not None:
        raise ConfigError("give --difficulty or its old name --level, not both")
    difficulty = difficulty if difficulty is not None else level if level is not None else 1
    names = check_skills([s.strip() for s in train.split(",") if s.strip()])
    for name, v in (("steps", steps), ("layers", layers), ("n-train", n_train), ("n-test", n_test)):
        if v < 1:
            raise ConfigError(f"{name} must be >= 1, got {v}")
    size = SkillsSize(n_layer=layers, n_embd=width, steps=steps, difficulty=difficulty, n_train=n_train,
                      n_test=n_test, context_length=32 if difficulty == 1 else 64)
    out = skills_exam(names, size, seed=seed, quiet=quiet, run=run, log=_log(quiet))
    trained = set(out["train_skills"])
    print_table(["skill", "trained on", "accuracy"],
                [[s.removeprefix("skill-"), "yes" if s in trained else "no", _pct(a)] for s, a in out["accuracy"].items()],
                title=f"run {out['run']}: exact accuracy on {n_test} held-out problems per skill")
    _store().put_result("exam-skills", out["run"], out, [out["run"]])


@app.command("recall")
def recall_command(
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (prefixes or names); none: train the --sizes sweep.")] = None,
    prefix: Annotated[int, Opt(help="Bytes of text given before each position.")] = 32,
    k: Annotated[int, Opt(help="Bytes the greedy continuation must reproduce exactly.")] = 32,
    n: Annotated[int, Opt(help="Positions sampled in each split.")] = 64,
    max_bytes: Annotated[int, Opt(help="Read at most this many bytes of each split.")] = 65536,
    sizes: Annotated[str, Opt(help="Sweep (no RUN given): model sizes LAYERSxWIDTH, comma-separated.")] = "1x32,2x64,4x128",
    steps: Annotated[int, Opt(help="Sweep: training steps of each model.")] = 2000,
    text_bytes: Annotated[int, Opt(help="Sweep: train on the first N bytes of python-docs.")] = 16384,
    seed: Annotated[int, Opt(help="Seed of the positions (and of the sweep's training).")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Exact recall of training vs held-out text, beside bits/byte, weight bytes and conditional xz/bzip2."""
    from imo.exams.recall import recall_exam, recall_sweep

    store = _store()
    kw = dict(prefix=prefix, k=k, n=n, max_bytes=max_bytes)
    if runs:
        rows = [recall_exam(r, store, seed=seed, **kw) for r in runs]
    else:
        rows = recall_sweep(_sizes(sizes), steps, text_bytes, seed, store, quiet, _log(quiet), **kw)
    print_table(["run", "params", "weight bytes", "recall train", "recall held-out", "bpb train", "bpb held-out",
                 "xz held-out", "xz given train", "bzip2 given train", "kept bytes / weight byte"],
                [[r["run"], f"{r['params']:,}", f"{r['weight_bytes']:,}", _pct(r["recall_train"]),
                  _pct(r["recall_val"]), f"{r['bpb_train']:.3f}", f"{r['bpb_val']:.3f}", f"{r['xz_val']:.3f}",
                  f"{r['xz_val_given_train']:.3f}", f"{r['bzip2_val_given_train']:.3f}",
                  f"{r['kept_bytes_per_weight_byte']:.4f}"] for r in rows],
                title=f"greedy continuation of {k} bytes after {prefix}, {n} positions per split")
    for r in rows:
        store.put_result("exam-recall", r["run"], r, [r["run"]])


icl_app = typer.Typer(help="In-context learning: induction heads in a byte model; in-context linear regression.",
                      no_args_is_help=True)
app.add_typer(icl_app, name="icl")


def _plot_path(plot, default_name: str, force: bool):
    """Where a plot goes: --plot (an existing file needs --force), else the store's exams folder."""
    from pathlib import Path

    from imo import paths

    if plot is None:
        folder = paths.store_dir() / "exams"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / default_name
    path = Path(plot)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise ConfigError(f"no folder {path.parent} for the plot")
    return path


@icl_app.command("induction")
def icl_induction_command(
    layers: Annotated[int, Opt(help="Blocks of the byte model.")] = 2,
    width: Annotated[int, Opt(help="Embedding width.")] = 64,
    heads: Annotated[int, Opt(help="Attention heads per block.")] = 4,
    context: Annotated[int, Opt(help="Training context in bytes (two periods of the repeated string fit).")] = 32,
    pos: Annotated[str, Opt(help="Position encoding (rope, learned, alibi, sinusoidal, none).")] = "rope",
    steps: Annotated[int, Opt(help="Training steps.")] = 2000,
    batch: Annotated[int, Opt(help="Sequences per step.")] = 16,
    lr: Annotated[float, Opt(help="Peak learning rate.")] = 3e-3,
    eval_every: Annotated[int, Opt(help="Measure the in-context score and prefix matching every N steps.")] = 50,
    seed: Annotated[int, Opt(help="Seed of the initialisation, batches and held-out sequences.")] = 0,
    plot: Annotated[str | None, Opt(help="PNG of the curves (default: the store's exams folder).")] = None,
    force: Annotated[bool, Opt(help="Overwrite an existing --plot file.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Induction heads (Olsson et al. 2022): in-context score over training, prefix matching, ablation."""
    from imo.atomic import write_bytes
    from imo.exams.icl import InductionSize, induction_exam, plot_induction
    from imo.model.positions import POSITIONS

    if pos not in POSITIONS.names():
        raise ConfigError(f"unknown position encoding {pos!r}; choose one of: {', '.join(POSITIONS.names())}")
    size = InductionSize(n_layer=layers, n_embd=width, n_head=heads, context_length=context, steps=steps,
                         batch_size=batch, lr=lr, eval_every=eval_every, pos=pos)
    size.check()
    path = _plot_path(plot, f"icl-induction-{layers}x{width}-seed{seed}.png", force)
    out = induction_exam(size, seed=seed, log=_log(quiet), quiet=quiet)
    write_bytes(path, plot_induction(out))
    c = out["curve"]
    shown = sorted({0, len(c) - 1, *range(0, len(c), max(1, len(c) // 10))})
    print_table(["step", "in-context score (bits)", "byte 4 (bits)", "last byte (bits)", "top prefix matching"],
                [[c[i]["step"], f"{c[i]['icl_score']:+.3f}", f"{c[i]['early_bits']:.3f}", f"{c[i]['late_bits']:.3f}",
                  f"{c[i]['top_prefix']:.3f}"] for i in shown], title="in-context score over training")
    print_table(["figure", "value"], [
        ["pre-drop score", f"{out['pre_drop_score']:+.3f} bits"], ["final score", f"{out['final_score']:+.3f} bits"],
        ["fall within the first 20% of steps", f"{out['fall_first_20pct']:.3f} bits"],
        ["drop (half the fall) at step", out["drop_step"]],
        ["top prefix matching at the drop", f"{out['top_prefix_at_drop']:.3f}"],
        ["top prefix matching first >= 0.5 at step", out["top_prefix_crosses_half_at"] or "never"],
        ["top head (layer, head)", f"{tuple(out['top_head'])}, prefix matching {out['top_head_prefix']:.3f}"],
        ["ablated: score / give-back", f"{out['ablated_score']:+.3f} bits / {_pct(out['give_back'])}"],
        [f"control head {tuple(out['control_head'])} ablated", f"{out['control_score']:+.3f} bits / "
                                                               f"{_pct(out['control_give_back'])}"]],
        title="phase change and ablation")
    print(f"plot: {path}")
    _store().put_result("exam-icl-induction", f"{layers}x{width}-seed{seed}", out)


@icl_app.command("regression")
def icl_regression_command(
    dim: Annotated[int, Opt(help="Input dimension d.")] = 5,
    points: Annotated[int, Opt(help="(x, y) pairs per training prompt (at least 2d + 1).")] = 20,
    layers: Annotated[int, Opt(help="Blocks of the regression transformer.")] = 4,
    width: Annotated[int, Opt(help="Embedding width.")] = 64,
    heads: Annotated[int, Opt(help="Attention heads per block.")] = 4,
    steps: Annotated[int, Opt(help="Training steps.")] = 3000,
    batch: Annotated[int, Opt(help="Prompts per step.")] = 64,
    lr: Annotated[float, Opt(help="Peak learning rate.")] = 1e-3,
    scales: Annotated[str, Opt(help="Input scales tested, comma-separated (1 is the training range).")] = "1,2,4",
    test_prompts: Annotated[int, Opt(help="Held-out prompts per scale.")] = 1000,
    seed: Annotated[int, Opt(help="Seed of the initialisation, tasks and test prompts.")] = 0,
    plot: Annotated[str | None, Opt(help="PNG of the error curves (default: the store's exams folder).")] = None,
    force: Annotated[bool, Opt(help="Overwrite an existing --plot file.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """In-context linear regression (Garg et al. 2022) beside least squares, 3-NN and averaging, out of range."""
    from imo.atomic import write_bytes
    from imo.exams.icl import RegressionSize, plot_regression, regression_exam

    size = RegressionSize(dim=dim, points=points, n_layer=layers, n_embd=width, n_head=heads, steps=steps,
                          batch_size=batch, lr=lr, test_prompts=test_prompts, scales=tuple(_numbers(scales, "--scales")))
    size.check()
    path = _plot_path(plot, f"icl-regression-d{dim}-seed{seed}.png", force)
    out = regression_exam(size, seed=seed, log=_log(quiet), quiet=quiet)
    write_bytes(path, plot_regression(out))
    ks = sorted({1, dim, 2 * dim, points - 1})
    rows = [[f"x{s}", name, *[f"{errs[k]:.3f}" for k in ks]] for s, by in out["errors"].items() for name, errs in by.items()]
    print_table(["inputs", "predictor", *[f"k={k}" for k in ks]], rows,
                title=f"normalised squared error, d={dim} (predicting 0 scores 1)")
    print(f"plot: {path}")
    _store().put_result("exam-icl-regression", f"d{dim}-seed{seed}", out)


@app.command("passkey")
def passkey_command(
    runs: Annotated[list[str], typer.Argument(help="Run ids (prefixes or names): memory runs (imo train --arch bswa|fam|infini) or byte GPTs.")],
    lengths: Annotated[str, Opt(help="Prompt lengths in bytes, comma-separated.")] = "512,1024,2048,4096,8192",
    depths: Annotated[str, Opt(help="Needle depths in [0, 1] of the garbage, comma-separated.")] = "0.1,0.5,0.9",
    trials: Annotated[int, Opt(help="Episodes per (length, depth); the same ones for every run.")] = 8,
    distractors: Annotated[int, Opt(help="Distractor numbers per episode ('The door code is M.'), 0-4.")] = 1,
    seed: Annotated[int, Opt(help="Seed of the keys and distractors.")] = 0,
    plot: Annotated[str | None, Opt(help="Write the accuracy plot (PNG) here.")] = None,
    force: Annotated[bool, Opt("--force", help="Overwrite an existing --plot file.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Passkey retrieval (landmark-attention format, 5-digit keys): accuracy against prompt length and
    needle depth, and for Infini against the number of compressions (docs/memory.md)."""
    from pathlib import Path

    from imo.exams.passkey import check_grid, passkey_exam
    from imo.exams.passkey import plot as plot_passkey
    from imo.memory.train import load_any

    lens, deps = _numbers(lengths, "lengths", int), _numbers(depths, "depths")
    check_grid(lens, deps, trials, distractors)
    if plot is not None:
        path = Path(plot)
        if path.suffix.lower() != ".png":
            raise ConfigError(f"--plot writes a PNG; give a path ending in .png, got {plot!r}")
        if path.exists() and not force:
            raise ConfigError(f"{plot} exists; pass --force to overwrite it")
        if not path.parent.is_dir():
            raise ConfigError(f"folder {path.parent} does not exist")
    store = _store()
    models, ids = {}, []
    for r in runs:
        model, meta, arch = load_any(store, r)
        run_id = store.resolve(r)
        label = f"{arch} {run_id[:6]}"
        if label in models:
            raise ConfigError(f"run {run_id} is given twice")
        models[label] = model
        ids.append(run_id)
    out = passkey_exam(models, lens, deps, trials, distractors, seed, log=_log(quiet))
    out["runs"] = dict(zip(models, ids, strict=True))
    print_table(["model", "window"] + [f"{n} B" for n in lens],
                [[name, r["window"]] + [_pct(r["by_length"][str(n)]) for n in lens] for name, r in out["models"].items()],
                title=f"passkey accuracy, mean over depths {depths}, {trials} trials each, {distractors} distractor(s)")
    for name, r in out["models"].items():
        if "by_compressions" in r:
            c = r["by_compressions"]
            print_table(["compressions >=", "accuracy", "trials"], [[k, _pct(v["accuracy"]), v["trials"]] for k, v in c.items()],
                        title=f"{name}: accuracy against compressions between needle and question")
    if plot is not None:
        plot_passkey(out, plot)
        print(f"plot: {plot}")
    store.put_result("exam-passkey", ",".join(ids), out, ids)
